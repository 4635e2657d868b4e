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
	// Kubeconfig lets each node's reboot gate check the Kubernetes node (secret). Required.
	Kubeconfig pulumi.StringInput
	// After are resources that must exist before any node gets its final config staged, such as
	// the Cilium install ahead of the CNI handover. Optional.
	After []pulumi.Resource
	// CheckCilium makes each reboot gate also wait for the Cilium agent on the node. Optional.
	CheckCilium bool
	// ResetOnDestroy makes `pulumi destroy` (or removing a node from the stack) reset the node:
	// wipe its STATE and EPHEMERAL partitions. Optional; default false: nodes are left as they are.
	ResetOnDestroy bool
}

// Rollout applies the final config to every node and keeps it there. Per node, in roll order
// (control planes, then workers):
//
//   - <name>-stage-<node> stages the full config (apply mode staged): nothing changes on the node yet;
//   - <name>-reboot-<node> is the node's gate: it reboots the node only when the node's reboot
//     settings (src/talos/reboot.yaml) changed, then waits until it is healthy; each gate waits for
//     the previous node's, so at most one node reboots at a time;
//   - <name>-apply-<node> applies the same config live (apply mode no_reboot). A change that needs
//     no reboot reaches every node in parallel; one that Talos says needs a reboot fails here.
//
// A preview shows the reboot settings of every node whose gate will reboot it, in clear text.
type Rollout struct {
	pulumi.ResourceState

	// Stages, Reboots and Applies hold each node's resources, by node name.
	Stages  map[string]*machine.ConfigurationApply
	Reboots map[string]*local.Command
	Applies map[string]*machine.ConfigurationApply
	// Done is every resource later work must wait for: each node's live apply and the last gate.
	Done []pulumi.Resource
}

// NewRollout registers the stage, reboot gate and live apply of every node.
func NewRollout(ctx *pulumi.Context, name string, args *RolloutArgs, opts ...pulumi.ResourceOption) (*Rollout, error) {
	r := &Rollout{
		Stages:  map[string]*machine.ConfigurationApply{},
		Reboots: map[string]*local.Command{},
		Applies: map[string]*machine.ConfigurationApply{},
	}
	if err := ctx.RegisterComponentResource(rolloutType, name, r, opts...); err != nil {
		return nil, err
	}
	var previousGate pulumi.Resource
	for _, n := range args.Cluster.RollOrder() {
		patches := args.Talos.NodePatches(args.Cluster, n, talosplan.Final)
		config := func(mode string, onDestroy *machine.ConfigurationApplyOnDestroyArgs) *machine.ConfigurationApplyArgs {
			return &machine.ConfigurationApplyArgs{
				Node:                      pulumi.String(n.Address),
				Endpoint:                  pulumi.String(n.Address),
				ClientConfiguration:       args.ClientConfiguration,
				MachineConfigurationInput: args.BaseConfigs[n.Role],
				ConfigPatches:             pulumi.ToStringArray(talosplan.Contents(patches)),
				ApplyMode:                 pulumi.String(mode),
				OnDestroy:                 onDestroy,
				Timeouts:                  nodeTimeouts(),
			}
		}
		// Staging needs an installed node, and whatever args.After names (the CNI the config expects).
		stageAfter := append([]pulumi.Resource{args.Install.Applies[n.Name]}, args.After...)
		stage, err := machine.NewConfigurationApply(ctx, name+"-stage-"+n.Name, config("staged", keepNodeOnDestroy()),
			pulumi.Parent(r), pulumi.DependsOn(stageAfter))
		if err != nil {
			return nil, fmt.Errorf("registering the staged config of node %s: %w", n.Name, err)
		}

		// The gate's talosconfig names only its own node, so adding a node changes no other gate (its
		// CA and client certificate serve for every node of the cluster).
		talosconfig := client.GetConfigurationOutput(ctx, client.GetConfigurationOutputArgs{
			ClusterName: pulumi.String(args.Cluster.Name),
			ClientConfiguration: &client.GetConfigurationClientConfigurationArgs{
				CaCertificate:     args.ClientConfiguration.CaCertificate(),
				ClientCertificate: args.ClientConfiguration.ClientCertificate(),
				ClientKey:         args.ClientConfiguration.ClientKey(),
			},
			Endpoints: pulumi.ToStringArray([]string{n.Address}),
			Nodes:     pulumi.ToStringArray([]string{n.Address}),
		}, pulumi.Parent(r)).TalosConfig()
		settings := args.Talos.RebootSettingsOf(patches)
		installed := args.Talos.RebootSettingsOf(args.Talos.NodePatches(args.Cluster, n, args.Install.Phase))
		gateAfter := []pulumi.Resource{stage}
		if previousGate != nil {
			gateAfter = append(gateAfter, previousGate)
		}
		gate, err := local.NewCommand(ctx, name+"-reboot-"+n.Name, &local.CommandArgs{
			Create: pulumi.String(args.Talos.RebootScript),
			Update: pulumi.String(args.Talos.RebootScript),
			Environment: pulumi.StringMap{
				"NODE_NAME":        pulumi.String(n.Name),
				"NODE_ADDRESS":     pulumi.String(n.Address),
				"HEALTH_ENDPOINT":  pulumi.String(healthEndpoint(args.Cluster, n)),
				"REBOOT_SETTINGS":  pulumi.String(settings),
				"ROLL_MARK":        pulumi.String(talosplan.Mark(settings)),
				"INSTALLED_MARK":   pulumi.String(talosplan.Mark(installed)),
				"TIMEOUT":          pulumi.String(NodeTimeout),
				"CHECK_CILIUM":     pulumi.Sprintf("%t", args.CheckCilium),
				"TALOSCONFIG_DATA": pulumi.ToSecret(talosconfig).(pulumi.StringOutput),
				"KUBECONFIG_DATA":  pulumi.ToSecret(args.Kubeconfig).(pulumi.StringOutput),
			},
		},
			pulumi.Parent(r),
			// Reboot only into a staged config, and only after the previous node is healthy again.
			pulumi.DependsOn(gateAfter),
		)
		if err != nil {
			return nil, fmt.Errorf("registering the reboot gate of node %s: %w", n.Name, err)
		}

		onDestroy := keepNodeOnDestroy()
		if args.ResetOnDestroy {
			onDestroy.Reset = pulumi.Bool(true)
		}
		apply, err := machine.NewConfigurationApply(ctx, name+"-apply-"+n.Name, config("no_reboot", onDestroy),
			pulumi.Parent(r),
			// Apply live only after the gate: the node then already runs any reboot setting.
			pulumi.DependsOn([]pulumi.Resource{gate}))
		if err != nil {
			return nil, fmt.Errorf("registering the live config of node %s: %w", n.Name, err)
		}
		r.Stages[n.Name], r.Reboots[n.Name], r.Applies[n.Name] = stage, gate, apply
		r.Done = append(r.Done, apply)
		previousGate = gate
	}
	r.Done = append(r.Done, previousGate)
	if err := ctx.RegisterResourceOutputs(r, pulumi.Map{}); err != nil {
		return nil, err
	}
	return r, nil
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
