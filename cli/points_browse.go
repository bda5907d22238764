package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// browseCommands are the points verbs that read what a point holds: ls,
// find, diff and dump. Paths are absolute as backed up; one that is not
// valid UTF-8 is written Go-quoted, as ls prints it.
func browseCommands(e *clientEnv) []*cobra.Command {
	var recursive, long bool
	ls := &cobra.Command{
		Use:   "ls POINT [PATH]",
		Short: "list the files in a recovery point under PATH (default /); for a VM point, its disks",
		Args:  usageArgs(cobra.RangeArgs(1, 2)), ValidArgsFunction: completePoints,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := api.EntriesQuery{Recursive: recursive}
			if len(args) > 1 {
				q.Path = args[1]
			}
			all, err := allPages(func(token string) (*api.List[api.PointEntry], error) {
				return e.client.PointEntries(cmd.Context(), args[0], q, token, 1000)
			})
			if err != nil {
				return err
			}
			if !long && e.output == "table" {
				for _, en := range all {
					fmt.Fprintln(e.out, entryName(en))
				}
				return nil
			}
			return printTable(e, all, []string{"TYPE", "MODE", "SIZE", "MODIFIED", "PATH"}, entryRow)
		},
	}
	ls.Flags().BoolVarP(&recursive, "recursive", "R", false, "list everything below PATH, not only its children")
	ls.Flags().BoolVarP(&long, "long", "l", false, "show type, mode, size and modification time")

	var asset, since string
	find := &cobra.Command{
		Use:   "find PATTERN",
		Short: "show which recovery points, newest first, hold paths matching a glob (*, ?, [..], ** and {a,b}; matched against paths and names)",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			q := api.FindQuery{Pattern: args[0]}
			if asset != "" {
				var err error
				if q.AssetID, err = assetFilter(ctx, e.client, asset); err != nil {
					return err
				}
			}
			if since != "" {
				t, err := timeOrAgo(since, time.Now())
				if err != nil {
					return usageErrorf("--since: %v", err)
				}
				q.Since = &t
			}
			all, err := allPages(func(token string) (*api.List[api.PointMatches], error) {
				return e.client.FindInPoints(ctx, q, token, 0)
			})
			if err != nil {
				return err
			}
			if e.output != "table" {
				return e.show(all, nil)
			}
			type match struct {
				point api.PointMatches
				entry api.PointEntry
			}
			var rows []match
			for _, m := range all {
				for _, en := range m.Entries {
					rows = append(rows, match{m, en})
				}
			}
			return printTable(e, rows, []string{"POINT", "COMPLETED", "TYPE", "SIZE", "PATH"}, func(r match) []any {
				return []any{r.point.PointID, r.point.CompletedAt.Local().Format(time.RFC3339), r.entry.Type, humanBytes(r.entry.Size), r.entry.Path}
			})
		},
	}
	find.Flags().StringVar(&asset, "asset", "", "only points of this asset: a fileset, by id or name")
	_ = find.RegisterFlagCompletionFunc("asset", assetNames)
	find.Flags().StringVar(&since, "since", "", "only points made at or after this time (RFC 3339, or a duration ago such as 24h)")

	diff := &cobra.Command{
		Use:   "diff FROM TO",
		Short: "show the entries added (+), removed (-) and changed (~) from one recovery point to another",
		Args:  usageArgs(cobra.ExactArgs(2)), ValidArgsFunction: completePoints,
		RunE: func(cmd *cobra.Command, args []string) error {
			all, err := allPages(func(token string) (*api.List[api.PointChange], error) {
				return e.client.DiffPoints(cmd.Context(), args[0], args[1], token, 1000)
			})
			if err != nil {
				return err
			}
			if e.output != "table" {
				return e.show(all, nil)
			}
			mark := map[string]string{api.ChangeAdded: "+", api.ChangeRemoved: "-", api.ChangeChanged: "~"}
			for _, c := range all {
				fmt.Fprintf(e.out, "%s %s\n", mark[c.Change], c.Path)
			}
			return nil
		},
	}

	dump := &cobra.Command{
		Use:   "dump POINT PATH",
		Short: "write one file of a recovery point to stdout, streamed",
		Args:  usageArgs(cobra.ExactArgs(2)), ValidArgsFunction: completePoints,
		RunE: func(cmd *cobra.Command, args []string) error {
			rc, err := e.client.PointContent(cmd.Context(), args[0], args[1])
			if err != nil {
				return err
			}
			defer rc.Close()
			if _, err := io.Copy(e.out, rc); err != nil {
				return fmt.Errorf("%s: the file's bytes ended early: %w", args[1], err)
			}
			return nil
		},
	}
	return []*cobra.Command{ls, find, diff, dump}
}

// allPages follows a listing's page tokens to its end.
func allPages[T any](page func(token string) (*api.List[T], error)) ([]T, error) {
	var all []T
	token := ""
	for {
		p, err := page(token)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Items...)
		if token = p.NextPageToken; token == "" {
			return all, nil
		}
	}
}

// entryName is an entry as plain ls prints it: its path, with a symlink's
// target and a disk's label.
func entryName(en api.PointEntry) string {
	switch {
	case en.Type == "disk":
		return fmt.Sprintf("%s\t%s\t%s", en.Path, en.Label, humanBytes(en.CapacityBytes))
	case en.Type == "dir":
		return en.Path + "/"
	case en.Target != "":
		return en.Path + " -> " + en.Target
	}
	return en.Path
}

// entryRow is an entry as ls --long prints it.
func entryRow(en api.PointEntry) []any {
	modified := "-"
	if en.Mtime != nil {
		modified = en.Mtime.Local().Format(time.RFC3339)
	}
	mode := en.Mode
	if mode == "" {
		mode = "-"
	}
	name := en.Path
	if en.Target != "" {
		name += " -> " + en.Target
	}
	if en.Type == "disk" {
		name += fmt.Sprintf(" (key %d, %s)", en.DiskKey, en.Label)
	}
	return []any{en.Type, mode, humanBytes(en.Size), modified, name}
}

// planRestore is a restore's dry run: the plan at once for a target on
// the Haven host, or, for one on an agent's host, the plan of the job in
// which the agent computes it, waited for (within --timeout) with its
// progress on stderr, so that stdout holds the plan alone.
func (e *clientEnv) planRestore(ctx context.Context, req api.RestoreRequest, w waitFlags) (*api.RestorePlan, error) {
	plan, j, err := e.client.PlanRestore(ctx, req)
	if err != nil || plan != nil {
		return plan, err
	}
	if w.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, w.timeout)
		defer cancel()
	}
	done, err := e.follow(ctx, j, e.progressViewOn(e.errOut, "files", w.progressEvery))
	if err != nil {
		return nil, err
	}
	if done.State != api.JobSucceeded {
		return nil, fmt.Errorf("dry run job %s %s: %s", done.ID, done.State, done.Error)
	}
	return e.client.JobPlan(ctx, done.ID)
}

// printPlan prints a restore's dry run.
func printPlan(e *clientEnv, plan *api.RestorePlan) error {
	if e.output != "table" {
		return e.show(plan, nil)
	}
	for _, it := range plan.Items {
		line := fmt.Sprintf("%-9s %s", it.Action, it.Path)
		if it.Dest != "" && it.Dest != it.Path {
			line += " -> " + it.Dest
		}
		if it.Reason != "" {
			line += ": " + it.Reason
		}
		fmt.Fprintln(e.out, line)
	}
	if plan.Truncated {
		fmt.Fprintf(e.out, "(only the first %d entries are listed)\n", len(plan.Items))
	}
	fmt.Fprintf(e.out, "would write %d, overwrite %d, rename %d, skip %d, refuse %d entries: %s\n",
		plan.Writes, plan.Overwrites, plan.Renames, plan.Skips, plan.Refusals, humanBytes(plan.Bytes))
	return nil
}
