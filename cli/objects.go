package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// objectKind describes one API collection for the generic list, show,
// create, update and delete commands.
type objectKind[Req, Obj any] struct {
	noun, singular string
	aliases        []string
	coll           func(*api.Client) api.Collection[Req, Obj]
	meta           func(*Obj) api.Meta
	name           func(*Obj) string
	header         []string
	row            func(Obj) []any
	// find resolves what the operator typed (id or name by default).
	find func(ctx context.Context, c *api.Client, ref string) (*Obj, error)
	// noCreate leaves out create and update (the API has none, or the
	// noun adds its own).
	noCreate bool
	// specHelp is what the -f file of create and update holds.
	specHelp string
	// afterCreate prints what a create returns once (a file server's
	// activation token).
	afterCreate func(e *clientEnv, o *Obj)
}

func (k objectKind[Req, Obj]) lookup(ctx context.Context, c *api.Client, ref string) (*Obj, error) {
	if k.find != nil {
		return k.find(ctx, c, ref)
	}
	return k.coll(c).Get(ctx, ref)
}

// complete completes the names of the collection's objects.
func (k objectKind[Req, Obj]) complete(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return completeFrom(cmd, func(ctx context.Context, c *api.Client) ([]cobra.Completion, error) {
		all, err := k.coll(c).ListAll(ctx)
		out := make([]cobra.Completion, 0, len(all))
		for i := range all {
			out = append(out, cobra.CompletionWithDesc(k.name(&all[i]), k.singular+" "+k.meta(&all[i]).ID))
		}
		return out, err
	})
}

// commands builds the noun with its verbs.
func (k objectKind[Req, Obj]) commands(e *clientEnv) *cobra.Command {
	noun := group(k.noun, "manage "+k.noun, k.aliases...)
	ref := "ID|NAME"
	noun.AddCommand(&cobra.Command{
		Use: "list", Short: "list " + k.noun, Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			items, err := k.coll(e.client).ListAll(cmd.Context())
			if err != nil {
				return err
			}
			return printTable(e, items, k.header, k.row)
		},
	}, &cobra.Command{
		Use: "show " + ref, Short: "show one " + k.singular, Args: usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: k.complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.show(k.lookup(cmd.Context(), e.client, args[0]))
		},
	}, &cobra.Command{
		Use: "delete " + ref, Short: "delete a " + k.singular, Args: usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: k.complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			o, err := k.lookup(cmd.Context(), e.client, args[0])
			if err != nil {
				return err
			}
			m := k.meta(o)
			if err := k.coll(e.client).Delete(cmd.Context(), m.ID); err != nil {
				return err
			}
			if e.output != "table" {
				return e.show(map[string]string{"id": m.ID, "name": k.name(o), "deleted": k.singular}, nil)
			}
			fmt.Fprintf(e.out, "%s %s (%s) deleted\n", k.singular, k.name(o), m.ID)
			return nil
		},
	})
	if k.noCreate {
		return noun
	}
	var file string
	create := &cobra.Command{
		Use: "create -f FILE", Short: "create a " + k.singular + " from a JSON or YAML file (- reads stdin)",
		Long: "Create a " + k.singular + " from a JSON or YAML file (- reads stdin) holding " + k.specHelp +
			"\nAs in the API, ids of other objects (storage_id, policy_id, file_server_id, vcenter_id) may be given as names.",
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var req Req
			if err := readSpec(file, &req); err != nil {
				return err
			}
			o, err := k.coll(e.client).Create(cmd.Context(), req)
			if err != nil {
				return err
			}
			if k.afterCreate != nil && e.output == "table" {
				k.afterCreate(e, o)
				return nil
			}
			return e.show(o, nil)
		},
	}
	update := &cobra.Command{
		Use: "update " + ref + " -f FILE", Short: "replace a " + k.singular + "'s spec with a JSON or YAML file (- reads stdin)",
		Long: "Replace a " + k.singular + "'s spec with a JSON or YAML file (- reads stdin) holding " + k.specHelp +
			"\nThe update applies only if nobody changed the object since it was read (or since the file's version).",
		Args: usageArgs(cobra.ExactArgs(1)), ValidArgsFunction: k.complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			cur, err := k.lookup(cmd.Context(), e.client, args[0])
			if err != nil {
				return err
			}
			var req Req
			if err := readSpec(file, &req); err != nil {
				return err
			}
			m := k.meta(cur)
			return e.show(k.coll(e.client).Update(cmd.Context(), m.ID, m.Version, req))
		},
	}
	for _, c := range []*cobra.Command{create, update} {
		c.Flags().StringVarP(&file, "file", "f", "", "JSON or YAML file with the spec; - reads stdin")
		_ = c.MarkFlagRequired("file")
		_ = c.MarkFlagFilename("file", "json", "yaml", "yml")
	}
	noun.AddCommand(create, update)
	return noun
}

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$`)

// readSpec reads a create or update body from a JSON or YAML file into
// req, strictly: an unknown field is an error. Names of referenced objects
// stay names: the server resolves them.
func readSpec(file string, req any) error {
	var raw []byte
	var err error
	if file == "-" {
		raw, err = io.ReadAll(os.Stdin)
	} else {
		raw, err = os.ReadFile(file)
	}
	if err != nil {
		return usageErrorf("--file: %v", err)
	}
	// JSON is YAML; either is read through JSON, by the API's member names.
	if err := yaml.UnmarshalStrict(raw, req); err != nil {
		return usageErrorf("--file %s: %v", file, err)
	}
	return nil
}
