package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// completeFrom runs a completion against the server the environment
// names; without one, or when the server does not answer in time, the
// shell offers nothing rather than file names.
func completeFrom(cmd *cobra.Command, list func(ctx context.Context, c *api.Client) ([]cobra.Completion, error)) ([]cobra.Completion, cobra.ShellCompDirective) {
	c, err := clientFromEnv()
	if err != nil {
		cobra.CompErrorln("HAVEN_ENDPOINT: " + err.Error())
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := list(ctx, c)
	if err != nil {
		cobra.CompErrorln(err.Error())
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

func fixedCompletion(choices ...string) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return choices, cobra.ShellCompDirectiveNoFileComp
	}
}

// firstArg completes a command's first argument and nothing after it.
func firstArg(f cobra.CompletionFunc) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return f(cmd, args, toComplete)
	}
}

var (
	completeAssets = firstArg(assetNames)
	completePoints = firstArg(pointIDs)
	completeJobs   = firstArg(jobIDs)
	completeTokens = firstArg(tokenNames)
	completeDRRuns = firstArg(drRunIDs)
)

// assetNames completes the names of filesets, NAS shares and protected VMs.
func assetNames(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return completeFrom(cmd, func(ctx context.Context, c *api.Client) ([]cobra.Completion, error) {
		sets, err := c.Filesets().ListAll(ctx)
		if err != nil {
			return nil, err
		}
		vms, err := c.ProtectedVMs().ListAll(ctx)
		if err != nil {
			return nil, err
		}
		shares, err := c.NASShares().ListAll(ctx)
		if err != nil {
			return nil, err
		}
		var out []cobra.Completion
		for _, s := range sets {
			out = append(out, cobra.CompletionWithDesc(s.Name, "fileset"))
		}
		for _, s := range shares {
			out = append(out, cobra.CompletionWithDesc(s.Name, "NAS share"))
		}
		for _, v := range vms {
			out = append(out, cobra.CompletionWithDesc(v.Name, "protected VM"))
		}
		return out, nil
	})
}

// pointIDs completes recovery point ids, described by asset and time.
func pointIDs(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return completeFrom(cmd, func(ctx context.Context, c *api.Client) ([]cobra.Completion, error) {
		page, err := c.FindPoints(ctx, api.PointFilter{}, "", 100)
		if err != nil {
			return nil, err
		}
		out := make([]cobra.Completion, 0, len(page.Items))
		for _, p := range page.Items {
			out = append(out, cobra.CompletionWithDesc(p.ID, p.AssetName+" "+p.Kind+" "+p.CompletedAt.Local().Format(time.RFC3339)))
		}
		return out, nil
	})
}

// jobIDs completes the ids of recent jobs.
func jobIDs(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return completeFrom(cmd, func(ctx context.Context, c *api.Client) ([]cobra.Completion, error) {
		page, err := c.ListJobs(ctx, api.JobFilter{}, "", 50)
		if err != nil {
			return nil, err
		}
		out := make([]cobra.Completion, 0, len(page.Items))
		for _, j := range page.Items {
			out = append(out, cobra.CompletionWithDesc(j.ID, j.Kind+" "+j.State))
		}
		return out, nil
	})
}

// tokenNames completes the names of live tokens.
func tokenNames(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return completeFrom(cmd, func(ctx context.Context, c *api.Client) ([]cobra.Completion, error) {
		all, err := listTokens(ctx, c)
		var out []cobra.Completion
		for _, t := range all {
			if t.RevokedAt == nil {
				out = append(out, cobra.CompletionWithDesc(t.Name, t.Role))
			}
		}
		return out, err
	})
}

// drRunIDs completes the ids of recent DR runs, described by kind, plan
// and state.
func drRunIDs(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return completeFrom(cmd, func(ctx context.Context, c *api.Client) ([]cobra.Completion, error) {
		runs, err := c.DRRuns(ctx, "", "")
		out := make([]cobra.Completion, 0, len(runs))
		for _, r := range runs {
			out = append(out, cobra.CompletionWithDesc(r.ID, r.Kind+" of "+r.PlanName+" "+r.State))
		}
		return out, err
	})
}
