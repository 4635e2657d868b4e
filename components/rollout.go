package components

import (
	"fmt"

	"github.com/pulumi/pulumi-command/sdk/go/command/local"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumiverse/pulumi-talos/sdk/go/talos/client"
	"github.com/pulumiverse/pulumi-talos/sdk/go/talos/machine"

	"homelab/internal/stackconfig"
	"homelab/internal/talosplan"
)

// RolloutArgs configures how config changes reach running nodes.
type RolloutArgs struct {
	// Cluster is the validated cluster config. Required.
	Cluster stackconfig.Cluster
	// Talos is the patch data from src/talos. Required.
	Talos *talosplan.Data
	// BaseConfigs are the generated configs per role. Required.
	BaseConfigs BaseConfigs
	// ClientConfiguration is the Talos admin client certificate. Required.
	ClientConfiguration machine.ClientConfigurationOutput
	// Install holds the nodes' first applies: staging needs an installed node. Required.
	Install *Install
	// Kubeconfig lets each node's gate check the Kubernetes node (secret). Required.
	Kubeconfig pulumi.StringInput
	// After are resources that must exist before any node gets its final config staged: the
	// Cilium install ahead of the CNI handover, a Kubernetes upgrade ahead of configs that carry
	// its version. Optional.
	After []pulumi.Resource
	// CheckCilium makes each gate also wait for the Cilium agent on the node. Optional.
	CheckCilium bool
	// ResetOnDestroy resets a node back to maintenance mode when it leaves the stack file, or at
	// `pulumi destroy` (STATE and EPHEMERAL wiped, graceful for control planes). Optional; default
	// false: nodes are left as they are.
	ResetOnDestroy bool
	// Budgets bound each node's upgrade and reboot (homelab:rollout). Required.
	Budgets stackconfig.Rollout
}

// Rollout applies the final config to every node and keeps it there. Per node, in roll order
// (control planes, then workers):
//
//   - <name>-stage-<node> stages the full config (apply mode staged): nothing changes on the node yet;
//   - <name>-gate-<node> upgrades the node when it does not run the config's installer image (or
//     its kernel arguments changed), reboots it when a setting Talos cannot apply live changed
//     (src/talos/reboot.yaml, or Talos refuses the staged config live, as after a contract move),
//     then waits until the cluster is healthy; the gates go in batches (stackconfig.RollBatches):
//     each control plane alone, then the workers Budgets.MaxUnavailable at a time, each batch's
//     gates waiting for every gate of the batch before, so at most one control plane, or one batch
//     of workers, is down, and a failed gate stops the rollout before the next batch;
//   - <name>-apply-<node> applies the same config live (apply mode no_reboot): a change that
//     needs no reboot reaches every node in parallel, and a node that rebooted already runs it;
//   - <name>-reset-<node>, with ResetOnDestroy, resets the node when it is deleted.
//
// A preview shows each gate's IMAGE (an upgrade), KERNEL_ARGS (an upgrade), REBOOT_SETTINGS and
// CONTRACT (a reboot) changing, in clear text, and each apply's patches.
type Rollout struct {
	pulumi.ResourceState

	// Stages, Gates and Applies hold each node's resources, by node name.
	Stages  map[string]*machine.ConfigurationApply
	Gates   map[string]*local.Command
	Applies map[string]*machine.ConfigurationApply
	// Done is every resource later work must wait for: each node's live apply and the last gate.
	Done []pulumi.Resource
}

// NewRollout registers the stage, gate and live apply of every node.
func NewRollout(ctx *pulumi.Context, name string, args *RolloutArgs, opts ...pulumi.ResourceOption) (*Rollout, error) {
	r := &Rollout{
		Stages:  map[string]*machine.ConfigurationApply{},
		Gates:   map[string]*local.Command{},
		Applies: map[string]*machine.ConfigurationApply{},
	}
	if err := ctx.RegisterComponentResource(rolloutType, name, r, opts...); err != nil {
		return nil, err
	}
	var previousReset pulumi.Resource
	var previousBatch, batch []pulumi.Resource
	batchOf := map[string]int{}
	for i, b := range stackconfig.RollBatches(args.Cluster, args.Budgets.Batch()) {
		for _, n := range b {
			batchOf[n.Name] = i
		}
	}
	current := 0
	for _, n := range args.Cluster.RollOrder() {
		if batchOf[n.Name] != current {
			current, previousBatch, batch = batchOf[n.Name], batch, nil
		}
		patches := args.Talos.NodePatches(args.Cluster, n, talosplan.Final)
		config := func(mode string) *machine.ConfigurationApplyArgs {
			return &machine.ConfigurationApplyArgs{
				Node:                      pulumi.String(n.Address),
				Endpoint:                  pulumi.String(n.Address),
				ClientConfiguration:       args.ClientConfiguration,
				MachineConfigurationInput: args.BaseConfigs[n.Role],
				ConfigPatches:             pulumi.ToStringArray(talosplan.Contents(patches)),
				ApplyMode:                 pulumi.String(mode),
				OnDestroy:                 keepNodeOnDestroy(),
				Timeouts:                  nodeTimeouts(),
			}
		}
		// Staging needs an installed node, and whatever args.After names (the CNI the config expects).
		stageAfter := append([]pulumi.Resource{args.Install.Applies[n.Name]}, args.After...)
		stage, err := machine.NewConfigurationApply(ctx, name+"-stage-"+n.Name, config("staged"),
			pulumi.Parent(r), pulumi.DependsOn(stageAfter))
		if err != nil {
			return nil, fmt.Errorf("registering the staged config of node %s: %w", n.Name, err)
		}

		// The gate's talosconfig names only its own node, so adding a node changes no other gate (its
		// CA and client certificate serve for every node of the cluster).
		talosconfig := nodeTalosconfig(ctx, r, args.Cluster.Name, args.ClientConfiguration, n.Address)
		settings := args.Talos.RebootSettingsOf(patches)
		gateAfter := append([]pulumi.Resource{stage}, previousBatch...)
		gate, err := local.NewCommand(ctx, name+"-gate-"+n.Name, &local.CommandArgs{
			Create: pulumi.String(args.Talos.Scripts.Gate),
			Update: pulumi.String(args.Talos.Scripts.Gate),
			Environment: pulumi.StringMap{
				"NODE_NAME":        pulumi.String(n.Name),
				"NODE_ADDRESS":     pulumi.String(n.Address),
				"HEALTH_ENDPOINT":  pulumi.String(healthEndpoint(args.Cluster, n)),
				"IMAGE":            pulumi.String(args.Talos.InstallerImage(args.Cluster)),
				"TALOS_VERSION":    pulumi.String(args.Cluster.TalosVersion),
				"TALOSCTL_MINOR":   pulumi.String(args.Cluster.TalosMinor()),
				"SCHEMATIC":        pulumi.String(args.Talos.SchematicID),
				"KERNEL_ARGS":      pulumi.String(args.Talos.KernelArgsOf(patches)),
				"REBOOT_SETTINGS":  pulumi.String(settings),
				"ROLL_MARK":        pulumi.String(talosplan.Mark(settings)),
				"CONTRACT":         pulumi.String(args.Cluster.VersionContract()),
				"FIRST_RUN":        pulumi.String(firstRun(args.Install.Phase)),
				"UPGRADE_TIMEOUT":  pulumi.String(args.Budgets.UpgradeTimeout),
				"REBOOT_TIMEOUT":   pulumi.String(args.Budgets.RebootTimeout),
				"TIMEOUT":          pulumi.String(NodeTimeout),
				"CHECK_CILIUM":     pulumi.Sprintf("%t", args.CheckCilium),
				"TALOSCONFIG_DATA": talosconfig,
				"KUBECONFIG_DATA":  pulumi.ToSecret(args.Kubeconfig).(pulumi.StringOutput),
			},
		},
			pulumi.Parent(r),
			// Act only on a staged config, and only once the previous batch is healthy again.
			pulumi.DependsOn(gateAfter),
			// The gate was named <name>-reboot-<node> before it also upgraded nodes.
			pulumi.Aliases([]pulumi.Alias{{Name: pulumi.String(name + "-reboot-" + n.Name)}}),
		)
		if err != nil {
			return nil, fmt.Errorf("registering the gate of node %s: %w", n.Name, err)
		}

		apply, err := machine.NewConfigurationApply(ctx, name+"-apply-"+n.Name, config("no_reboot"),
			pulumi.Parent(r),
			// Apply live only after the gate: the node then already runs whatever needed a reboot.
			pulumi.DependsOn([]pulumi.Resource{gate}))
		if err != nil {
			return nil, fmt.Errorf("registering the live config of node %s: %w", n.Name, err)
		}
		if args.ResetOnDestroy {
			if previousReset, err = newReset(ctx, r, name, args, n, talosconfig, previousReset); err != nil {
				return nil, err
			}
		}
		r.Stages[n.Name], r.Gates[n.Name], r.Applies[n.Name] = stage, gate, apply
		r.Done = append(r.Done, apply)
		batch = append(batch, gate)
	}
	r.Done = append(r.Done, batch...)
	if err := ctx.RegisterResourceOutputs(r, pulumi.Map{}); err != nil {
		return nil, err
	}
	return r, nil
}

// newReset registers the command whose delete resets the node (src/talos/reset.sh). Resets are
// chained, so deletes (in reverse order) reset one node at a time, control planes last.
func newReset(ctx *pulumi.Context, r *Rollout, name string, args *RolloutArgs, n stackconfig.Node, talosconfig pulumi.StringOutput, previous pulumi.Resource) (pulumi.Resource, error) {
	opts := []pulumi.ResourceOption{pulumi.Parent(r)}
	if previous != nil {
		// Reset one node at a time: a delete waits for the resources that depend on it.
		opts = append(opts, pulumi.DependsOn([]pulumi.Resource{previous}))
	}
	reset, err := local.NewCommand(ctx, name+"-reset-"+n.Name, &local.CommandArgs{
		Delete: pulumi.String(args.Talos.Scripts.Reset),
		Environment: pulumi.StringMap{
			"NODE_NAME":        pulumi.String(n.Name),
			"NODE_ADDRESS":     pulumi.String(n.Address),
			"ROLE":             pulumi.String(n.Role),
			"TIMEOUT":          pulumi.String(NodeTimeout),
			"TALOSCTL_MINOR":   pulumi.String(args.Cluster.TalosMinor()),
			"TALOSCONFIG_DATA": talosconfig,
		},
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("registering the reset of node %s: %w", n.Name, err)
	}
	return reset, nil
}

// firstRun is what a gate does the first time it runs: a node installed with the bring-up config
// reboots into the final one (the CNI handover); a node installed with its final config, or
// adopted, reboots only if Talos refuses its staged config live.
func firstRun(installed talosplan.Phase) string {
	if installed == talosplan.BringUp {
		return "reboot"
	}
	return "check"
}

// nodeTalosconfig is a talosconfig that reaches one node (secret).
func nodeTalosconfig(ctx *pulumi.Context, parent pulumi.Resource, cluster string, cc machine.ClientConfigurationOutput, address string) pulumi.StringOutput {
	tc := client.GetConfigurationOutput(ctx, client.GetConfigurationOutputArgs{
		ClusterName: pulumi.String(cluster),
		ClientConfiguration: &client.GetConfigurationClientConfigurationArgs{
			CaCertificate:     cc.CaCertificate(),
			ClientCertificate: cc.ClientCertificate(),
			ClientKey:         cc.ClientKey(),
		},
		Endpoints: pulumi.ToStringArray([]string{address}),
		Nodes:     pulumi.ToStringArray([]string{address}),
	}, pulumi.Parent(parent)).TalosConfig()
	return pulumi.ToSecret(tc).(pulumi.StringOutput)
}

// healthEndpoint is the node a gate asks for the cluster's health: Talos runs the check on that
// node, and only a control plane can reach the other nodes and serve the kubeconfig, so a worker's
// gate asks the first control plane.
func healthEndpoint(c stackconfig.Cluster, n stackconfig.Node) string {
	if n.Role == stackconfig.RoleControlPlane {
		return n.Address
	}
	return c.ControlPlanes()[0].Address
}
