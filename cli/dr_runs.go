package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// drRunFlags names the flag behind each field of a DR run's request that
// the server can refuse.
var drRunFlags = map[string]string{
	"points": "--point", "keep_minutes": "--keep-minutes", "ready_timeout_minutes": "--ready-timeout-minutes",
	"confirm": "--confirm", "plan_id": "--plan", "kind": "--kind",
	"test_network": "the plan's test_network: haven dr-plans update",
}

const drRunWaitHelp = "\nWith --wait, follow the run's job to its end and print how the run came out: its state, whether it passed,\n" +
	"the RTO achieved, each machine (instance id, private IP, instance type) and anything a cleanup left behind\n" +
	"(-o json or yaml: the run); exit 1 unless the job succeeded.\n\n" + exitCodesHelp

// drRunOptions are the flags that a DR test and a failover share.
type drRunOptions struct {
	points       []string
	readyTimeout int
	w            waitFlags
}

// pointMap reads the --point MACHINE=POINT_ID flags.
func (o drRunOptions) pointMap() (map[string]string, error) {
	if len(o.points) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(o.points))
	for _, p := range o.points {
		machine, point, ok := strings.Cut(p, "=")
		if !ok || machine == "" || point == "" {
			return nil, usageErrorf("--point %q: want MACHINE=POINT_ID, such as db-01=6f1c…", p)
		}
		out[machine] = point
	}
	return out, nil
}

// drPlanRunCommands are a plan's test and failover verbs.
func drPlanRunCommands(e *clientEnv) []*cobra.Command {
	var keep int
	test := drRunStartCommand(e, "test",
		"start a DR test of a plan: its VMs launched in its test network, checked, then removed",
		"Start a DR test (drill) of a DR plan: each machine is launched from its copy in AWS (or from --point's\n"+
			"recovery point, replicated first) into the plan's test network, boot group by boot group, and checked;\n"+
			"then everything the test created is removed, passed or failed, unless --keep-minutes keeps it running\n"+
			"for inspection (haven dr-runs cleanup RUN removes it sooner). Prints the run; haven dr-runs show RUN\n"+
			"follows it.\n",
		func(ctx context.Context, plan string, points map[string]string, readyTimeout int) (*api.DRRun, error) {
			return e.client.StartDRTest(ctx, plan, api.DRTestRequest{Points: points, KeepMinutes: keep, ReadyTimeoutMinutes: readyTimeout})
		})
	test.Flags().IntVar(&keep, "keep-minutes", 0, fmt.Sprintf("keep the test's instances running this long once they pass (at most %d); 0 removes them at once", api.MaxDRKeepMinutes))
	var confirm bool
	failover := drRunStartCommand(e, "failover",
		"fail a DR plan over: its VMs launched as production instances in AWS (needs --confirm)",
		"Fail a DR plan over: each machine is launched from its copy in AWS (or from --point's recovery point,\n"+
			"replicated first) as a production instance, boot group by boot group, and checked. What it launches\n"+
			"stays; a failover that did not finish is continued by running it again. --confirm is required: without\n"+
			"it the server refuses. Prints the run; haven dr-runs show RUN follows it.\n",
		func(ctx context.Context, plan string, points map[string]string, readyTimeout int) (*api.DRRun, error) {
			return e.client.StartDRFailover(ctx, plan, api.DRFailoverRequest{Confirm: confirm, Points: points, ReadyTimeoutMinutes: readyTimeout})
		})
	failover.Flags().BoolVar(&confirm, "confirm", false, "confirm the failover: it launches the plan's VMs as production instances")
	return []*cobra.Command{test, failover}
}

// drRunStartCommand is a verb that starts a DR run of a plan through
// start, with the flags every run takes.
func drRunStartCommand(e *clientEnv, verb, short, long string,
	start func(ctx context.Context, plan string, points map[string]string, readyTimeout int) (*api.DRRun, error)) *cobra.Command {
	var o drRunOptions
	cmd := &cobra.Command{
		Use: verb + " ID|NAME", Short: short, Long: long + drRunWaitHelp,
		Args: usageArgs(cobra.ExactArgs(1)), ValidArgsFunction: drPlanKind.complete,
		RunE: func(cmd *cobra.Command, args []string) error {
			points, err := o.pointMap()
			if err != nil {
				return err
			}
			run, err := start(cmd.Context(), args[0], points, o.readyTimeout)
			if err != nil {
				return flagError(err, drRunFlags)
			}
			if !o.w.wait {
				if e.output != "table" {
					return e.show(run, nil)
				}
				fmt.Fprintf(e.out, "DR %s run %s of plan %s %s (job %s)\n", run.Kind, run.ID, run.PlanName, run.State, run.JobID)
				return nil
			}
			j, err := e.client.GetJob(cmd.Context(), run.JobID)
			if err != nil {
				return err
			}
			return e.finishRun(cmd.Context(), run.ID, j, o.w, e.printRun)
		},
	}
	cmd.Flags().StringArrayVar(&o.points, "point", nil, "launch MACHINE from this older recovery point instead of its copy, as MACHINE=POINT_ID (repeatable)")
	cmd.Flags().IntVar(&o.readyTimeout, "ready-timeout-minutes", 0,
		fmt.Sprintf("how long one machine may take from launch to passing its checks (at most %d; 0: %d)", api.MaxDRReadyTimeoutMinutes, api.DefaultDRReadyTimeoutMinutes))
	o.w.add(cmd)
	return cmd
}

// finishRun follows a run's job (its launch, its cleanup or a failback
// pass) to its end and prints how the run came out with print (-o json or
// yaml: the run); it fails unless the job succeeded.
func (e *clientEnv) finishRun(ctx context.Context, runID string, j *api.Job, w waitFlags, print func(*api.DRRun, *api.Job) error) error {
	done, err := e.waitJob(ctx, j, w, "")
	if err != nil {
		return err
	}
	run, err := e.client.DRRun(ctx, runID)
	if err != nil {
		return err
	}
	if e.output != "table" {
		if err := e.show(run, nil); err != nil {
			return err
		}
	} else if err := print(run, done); err != nil {
		return err
	}
	if done.State != api.JobSucceeded {
		return fmt.Errorf("job %s %s: %s", done.ID, done.State, done.Error)
	}
	return nil
}

// printRun prints how a run stands after its job j: state, outcome and
// RTO, its machines, what a cleanup left behind, and why it failed.
func (e *clientEnv) printRun(run *api.DRRun, j *api.Job) error {
	fmt.Fprintf(e.out, "DR %s run %s of plan %s %s", run.Kind, run.ID, run.PlanName, run.State)
	if r := runResult(run); r != "-" {
		fmt.Fprintf(e.out, ", %s", r)
	}
	if run.RTOSeconds != nil {
		fmt.Fprintf(e.out, ", RTO %s", runRTO(run))
	}
	fmt.Fprintf(e.out, " (job %s %s)\n", j.ID, j.State)
	for _, w := range j.Warnings {
		fmt.Fprintln(e.out, "  note:", w)
	}
	if len(run.Machines) > 0 {
		if err := printTable(e, run.Machines, []string{"MACHINE", "INSTANCE", "PRIVATE IP", "TYPE", "POINT"}, func(m api.DRRunMachine) []any {
			return []any{m.Name, orDash(m.InstanceID), orDash(m.PrivateIP), m.InstanceType, m.PointID}
		}); err != nil {
			return err
		}
	}
	if run.State == api.DRRunReady && run.CleanAfter != nil {
		fmt.Fprintf(e.out, "kept until %s; haven dr-runs cleanup %s removes it sooner\n", run.CleanAfter.Local().Format(time.RFC3339), run.ID)
	}
	for _, l := range run.Leftovers {
		fmt.Fprintf(e.out, "left behind: %s %s (%s)\n", l.Kind, l.ID, orDash(l.Machine))
	}
	if run.Error != "" {
		fmt.Fprintln(e.out, "error:", run.Error)
	}
	return nil
}

// runResult says whether a run's machines all passed their checks, once
// its launch has ended.
func runResult(run *api.DRRun) string {
	switch {
	case run.Passed == nil:
		return "-"
	case *run.Passed:
		return "passed"
	}
	return "failed"
}

func runRTO(run *api.DRRun) string {
	if run.RTOSeconds == nil {
		return "-"
	}
	d := time.Duration(*run.RTOSeconds * float64(time.Second))
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func drRunCommands(e *clientEnv) *cobra.Command {
	noun := group("dr-runs", "list and show DR runs (failovers and tests), fail failovers back to vCenter and clean runs up", "dr-run")
	var plan, kind string
	list := &cobra.Command{
		Use: "list", Short: "list DR runs, newest first (--plan, --kind filter)", Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			runs, err := e.client.DRRuns(cmd.Context(), plan, kind)
			if err != nil {
				return flagError(err, drRunFlags)
			}
			return printTable(e, runs, []string{"ID", "PLAN", "KIND", "STATE", "RESULT", "RTO", "MACHINES", "CREATED"}, func(r api.DRRun) []any {
				return []any{r.ID, r.PlanName, r.Kind, r.State, runResult(&r), runRTO(&r), len(r.Machines), r.CreatedAt.Local().Format(time.RFC3339)}
			})
		},
	}
	list.Flags().StringVar(&plan, "plan", "", "only runs of this DR plan, by id or name")
	_ = list.RegisterFlagCompletionFunc("plan", drPlanKind.complete)
	choiceFlag(list, &kind, "kind", "only runs of this kind", api.DRRunFailover, api.DRRunTest)
	show := &cobra.Command{
		Use: "show RUN", Short: "show one DR run: its machines, steps, RTO and the resources it created", Args: usageArgs(cobra.ExactArgs(1)),
		ValidArgsFunction: completeDRRuns,
		RunE: func(cmd *cobra.Command, args []string) error {
			return e.show(e.client.DRRun(cmd.Context(), args[0]))
		},
	}
	var confirm bool
	var w waitFlags
	cleanup := &cobra.Command{
		Use:   "cleanup RUN [--confirm]",
		Short: "queue the removal of everything a DR run created in AWS (a failover's needs --confirm)",
		Long: "Queue the removal of everything a DR run created in AWS: a kept test's instances, or what a failed run left.\n" +
			"Cleaning up a failover terminates its production instances (after a failback, say), so it needs --confirm;\n" +
			"without it the server refuses. Prints the cleanup's job.\n" + drRunWaitHelp,
		Args: usageArgs(cobra.ExactArgs(1)), ValidArgsFunction: completeDRRuns,
		RunE: func(cmd *cobra.Command, args []string) error {
			j, err := e.client.CleanupDRRun(cmd.Context(), args[0], confirm)
			if err != nil {
				return flagError(err, drRunFlags)
			}
			if !w.wait {
				return e.finishJob(cmd.Context(), j, w)
			}
			return e.finishRun(cmd.Context(), args[0], j, w, e.printRun)
		},
	}
	cleanup.Flags().BoolVar(&confirm, "confirm", false, "confirm the cleanup of a failover: it terminates the instances the failover launched")
	w.add(cleanup)
	noun.AddCommand(list, show, cleanup, drFailbackCommand(e))
	return noun
}

// drFailbackFlags names the flag behind each field of a failback request.
var drFailbackFlags = map[string]string{
	"vcenter_id": "--vcenter", "datastore": "--datastore", "resource_pool": "--resource-pool", "host": "--host",
	"folder": "--folder", "network_map": "--network-map", "names": "--name", "final": "--final", "power_on": "--power-on",
}

// drFailbackOptions are the flags of dr-runs failback.
type drFailbackOptions struct {
	req      api.DRFailbackRequest
	networks []string
	names    []string
	w        waitFlags
}

// request reads the repeatable KEY=VALUE flags into the request.
func (o *drFailbackOptions) request() (api.DRFailbackRequest, error) {
	req := o.req
	if req.VCenterID == "" {
		return req, usageErrorf("--vcenter is required: the vCenter (name or id) the VMs are written to")
	}
	var err error
	if req.NetworkMap, err = pairs("--network-map", "SRC=DST, such as \"VM Network=dr-net\"", o.networks); err != nil {
		return req, err
	}
	req.Names, err = pairs("--name", "MACHINE=VM_NAME, such as db-01=db-01-back", o.names)
	return req, err
}

// pairs reads a repeatable flag of KEY=VALUE values.
func pairs(flag, want string, values []string) (map[string]string, error) {
	if len(values) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(values))
	for _, v := range values {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" || val == "" {
			return nil, usageErrorf("%s %q: want %s", flag, v, want)
		}
		out[k] = val
	}
	return out, nil
}

func drFailbackCommand(e *clientEnv) *cobra.Command {
	var o drFailbackOptions
	cmd := &cobra.Command{
		Use: "failback RUN --vcenter VCENTER [--datastore DS] [--resource-pool P] [--host H] [--folder F] " +
			"[--network-map SRC=DST]... [--name MACHINE=VM_NAME]... [--final [--power-on]]",
		Short: "copy a failover's instances back into VMs on a vCenter: passes while they run, then --final cuts over",
		Long: "Queue a failback pass of a failover: each machine's instance in AWS is snapshotted, read with the EBS direct\n" +
			"APIs and written into a VM on --vcenter (a name or id), recorded on the way as a recovery point of the\n" +
			"machine's protected VM. The first pass creates the VMs, powered off and sized from the instances, named\n" +
			"MACHINE-failback unless --name names them, placed by --datastore, --resource-pool, --host, --folder and\n" +
			"--network-map (default: as the original VM was), while the instances keep running. Each later pass copies\n" +
			"only the blocks that changed since the one before into the same VMs. --final stops the instances first, so\n" +
			"the last copy is complete and small, and --power-on (only with --final) starts the VMs after it; the run\n" +
			"is then failed_back, and haven dr-runs cleanup RUN --confirm terminates the stopped instances.\n" +
			"Prints the pass's job.\n" +
			"\nWith --wait, follow the pass to its end and print how the failback stands: its state (synced or completed),\n" +
			"the passes run and each machine's VM with what the pass read from EBS (-o json or yaml: the run); exit 1\n" +
			"unless the job succeeded.\n\n" + exitCodesHelp,
		Args: usageArgs(cobra.ExactArgs(1)), ValidArgsFunction: completeFailovers,
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := o.request()
			if err != nil {
				return err
			}
			j, err := e.client.FailbackDRRun(cmd.Context(), args[0], req)
			if err != nil {
				return flagError(err, drFailbackFlags)
			}
			if !o.w.wait {
				if e.output != "table" {
					return e.show(j, nil)
				}
				fmt.Fprintf(e.out, "failback pass of DR run %s %s (job %s); haven dr-runs show %s follows it\n", args[0], j.State, j.ID, args[0])
				return nil
			}
			return e.finishRun(cmd.Context(), args[0], j, o.w, func(run *api.DRRun, j *api.Job) error { return e.printFailback(run, j, req.VCenterID) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.req.VCenterID, "vcenter", "", "the vCenter the VMs are written to, by name or id (required)")
	_ = cmd.RegisterFlagCompletionFunc("vcenter", func(cmd *cobra.Command, _ []string, s string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return vcenterKind.complete(cmd, nil, s)
	})
	f.StringVar(&o.req.Datastore, "datastore", "", "datastore of the new VMs' disks (default: the original VM's)")
	f.StringVar(&o.req.ResourcePool, "resource-pool", "", "inventory path of the new VMs' resource pool (default: the original VM's)")
	f.StringVar(&o.req.Host, "host", "", "inventory path of the new VMs' ESXi host (default: the original VM's)")
	f.StringVar(&o.req.Folder, "folder", "", "inventory path of the new VMs' folder (default: the original VM's)")
	f.StringArrayVar(&o.networks, "network-map", nil, "connect the new VMs' network SRC to DST, as SRC=DST (repeatable)")
	f.StringArrayVar(&o.names, "name", nil, "name MACHINE's new VM, as MACHINE=VM_NAME (repeatable; default: MACHINE-failback)")
	f.BoolVar(&o.req.Final, "final", false, "the cut-over: stop the instances, copy what changed since the last pass, mark the run failed_back")
	f.BoolVar(&o.req.PowerOn, "power-on", false, "with --final, power the VMs on after the copy")
	o.w.add(cmd)
	return cmd
}

// printFailback prints how a failover's failback stands after a pass (job
// j) to vcenter: its state and passes, each machine's VM, and what comes
// next.
func (e *clientEnv) printFailback(run *api.DRRun, j *api.Job, vcenter string) error {
	fb := run.Failback
	if fb == nil {
		fmt.Fprintf(e.out, "DR %s run %s of plan %s %s: no failback pass ran (job %s %s)\n", run.Kind, run.ID, run.PlanName, run.State, j.ID, j.State)
		return nil
	}
	passes := "passes"
	if fb.Passes == 1 {
		passes = "pass"
	}
	fmt.Fprintf(e.out, "DR %s run %s of plan %s %s: failback %s after %d %s (job %s %s)\n",
		run.Kind, run.ID, run.PlanName, run.State, fb.State, fb.Passes, passes, j.ID, j.State)
	for _, w := range j.Warnings {
		fmt.Fprintln(e.out, "  note:", w)
	}
	if len(fb.VMs) > 0 {
		if err := printTable(e, fb.VMs, []string{"MACHINE", "VM NAME", "BLOCKS READ", "BYTES READ", "POWERED ON"}, func(v api.DRFailbackVM) []any {
			on := "no"
			if v.PoweredOn {
				on = "yes"
			}
			return []any{v.Machine, v.VMName, v.BlocksRead, humanBytes(v.BytesRead), on}
		}); err != nil {
			return err
		}
	}
	switch fb.State {
	case api.DRFailbackSynced:
		fmt.Fprintf(e.out, "the instances still run; haven dr-runs failback %s --vcenter %s --final stops them and copies what changed since\n", run.ID, vcenter)
	case api.DRFailbackCompleted:
		fmt.Fprintf(e.out, "the instances are stopped; haven dr-runs cleanup %s --confirm terminates them\n", run.ID)
	}
	if fb.Error != "" {
		fmt.Fprintln(e.out, "error:", fb.Error)
	}
	return nil
}

// completeFailovers completes the ids of the failovers that can be failed
// back: those whose machines are all up.
var completeFailovers = firstArg(func(cmd *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return completeFrom(cmd, func(ctx context.Context, c *api.Client) ([]cobra.Completion, error) {
		runs, err := c.DRRuns(ctx, "", api.DRRunFailover)
		var out []cobra.Completion
		for _, r := range runs {
			if r.State == api.DRRunReady {
				out = append(out, cobra.CompletionWithDesc(r.ID, "failover of "+r.PlanName+" "+r.State))
			}
		}
		return out, err
	})
})
