package components

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumiverse/pulumi-talos/sdk/go/talos/machine"

	"homelab/internal/stackconfig"
	"homelab/internal/talosplan"
)

// InstallArgs configures the first apply of every node.
type InstallArgs struct {
	// Cluster is the validated cluster config; one install per node. Required.
	Cluster stackconfig.Cluster
	// Talos is the patch data from src/talos. Required.
	Talos *talosplan.Data
	// Adopted is true when the nodes already run the cluster (homelab:cluster.adopt): nodes then
	// install their final config. Otherwise a new cluster's nodes install the bring-up config
	// (Talos's default CNI), and the Rollout hands them over to Cilium.
	Adopted bool
	// Running is true when the listed nodes already run (a restore into an empty state): their
	// first managed config is staged, never applied in mode auto, which would reboot a node in the
	// background whenever the config needs it and break the one-node-at-a-time rollout; the node's
	// gate then reboots it if Talos cannot apply the config live. Optional; default false: nodes
	// come up in maintenance mode, which accepts only auto, reboot and try.
	Running bool
	// BaseConfigs are the generated configs per role. Required.
	BaseConfigs BaseConfigs
	// ClientConfiguration is the Talos admin client certificate. Required.
	ClientConfiguration machine.ClientConfigurationInput
	// Image is the installer image component; nodes wait for its factory registration. Required.
	Image *InstallerImage
}

// Install gives every node its first config. A node in maintenance mode installs Talos to its disk
// and reboots into the cluster. Later config changes are the Rollout's: an install is never
// updated, so its config input is ignored once created.
type Install struct {
	pulumi.ResourceState

	// Applies holds each node's install, by node name.
	Applies map[string]*machine.ConfigurationApply
	// Phase is the config the nodes were installed with.
	Phase talosplan.Phase
}

// NewInstall registers one install per node, all in parallel: a node in maintenance mode installs
// and reboots on its own, and a running node only gets its config staged.
func NewInstall(ctx *pulumi.Context, name string, args *InstallArgs, opts ...pulumi.ResourceOption) (*Install, error) {
	in := &Install{Applies: map[string]*machine.ConfigurationApply{}, Phase: talosplan.BringUp}
	if args.Adopted {
		in.Phase = talosplan.Final
	}
	if err := ctx.RegisterComponentResource(installType, name, in, opts...); err != nil {
		return nil, err
	}
	for _, n := range args.Cluster.RollOrder() {
		patches := args.Talos.NodePatches(args.Cluster, n, in.Phase)
		// The factory must serve the installer image before a node in maintenance mode pulls it.
		deps := []pulumi.Resource{args.Image.Schematic}
		apply, err := machine.NewConfigurationApply(ctx, name+"-"+n.Name, &machine.ConfigurationApplyArgs{
			Node:                      pulumi.String(n.Address),
			Endpoint:                  pulumi.String(n.Address),
			ClientConfiguration:       args.ClientConfiguration,
			MachineConfigurationInput: args.BaseConfigs[n.Role],
			ConfigPatches:             pulumi.ToStringArray(talosplan.Contents(patches)),
			ApplyMode:                 pulumi.String(installMode(args.Running)),
			OnDestroy:                 keepNodeOnDestroy(),
			Timeouts:                  nodeTimeouts(),
		},
			pulumi.Parent(in),
			pulumi.DependsOn(deps),
			// Installed once; the Rollout applies every later change. Every input is ignored: an
			// update would re-send this first config in mode auto (a renewed client certificate is
			// enough to cause one), rolling a running node back to it, on every node at once.
			pulumi.IgnoreChanges(installInputs),
		)
		if err != nil {
			return nil, fmt.Errorf("registering the install of node %s: %w", n.Name, err)
		}
		in.Applies[n.Name] = apply
	}
	if err := ctx.RegisterResourceOutputs(in, pulumi.Map{}); err != nil {
		return nil, err
	}
	return in, nil
}

// ControlPlaneApplies returns the installs of the control planes, in stack order.
func (in *Install) ControlPlaneApplies(c stackconfig.Cluster) []pulumi.Resource {
	return in.of(c.ControlPlanes())
}

// AllApplies returns the installs of every node, in roll order.
func (in *Install) AllApplies(c stackconfig.Cluster) []pulumi.Resource {
	return in.of(c.RollOrder())
}

func (in *Install) of(nodes []stackconfig.Node) []pulumi.Resource {
	out := make([]pulumi.Resource, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, in.Applies[n.Name])
	}
	return out
}

// installMode is the first apply's mode: maintenance mode accepts only auto, reboot and try, and
// auto installs and reboots once (internal/app/maintenance/server.go:90-98 in Talos v1.11.5); a
// running node gets its config staged.
func installMode(running bool) string {
	if running {
		return "staged"
	}
	return "auto"
}

// installInputs are every input of an install, all ignored after creation.
var installInputs = []string{"node", "endpoint", "clientConfiguration", "machineConfigurationInput", "configPatches", "applyMode", "onDestroy", "timeouts"}

// keepNodeOnDestroy makes removing an apply from the program leave the node as it is: no reset,
// no wipe. Resetting a node is a deliberate talosctl reset, never a side effect of pulumi destroy.
func keepNodeOnDestroy() *machine.ConfigurationApplyOnDestroyArgs {
	return &machine.ConfigurationApplyOnDestroyArgs{Reset: pulumi.Bool(false), Graceful: pulumi.Bool(true), Reboot: pulumi.Bool(false)}
}

func nodeTimeouts() *machine.TimeoutArgs {
	return &machine.TimeoutArgs{
		Create: pulumi.String(NodeTimeout),
		Update: pulumi.String(NodeTimeout),
		Delete: pulumi.String(NodeTimeout),
	}
}
