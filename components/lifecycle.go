package components

import (
	"fmt"

	"github.com/pulumi/pulumi-command/sdk/go/command/local"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/internal/lifecycle"
	"homelab/internal/stackconfig"
)

// KubernetesUpgradeArgs configures the Kubernetes upgrade.
type KubernetesUpgradeArgs struct {
	// Cluster is the validated cluster config; its kubernetesVersion is the target. Required.
	Cluster stackconfig.Cluster
	// Script is the text of src/talos/upgrade-k8s.sh. Required.
	Script string
	// Talosconfig reaches the first control plane (secret). Required.
	Talosconfig pulumi.StringInput
	// Kubeconfig is the admin kubeconfig, gated on the cluster's health (secret). Required.
	Kubeconfig pulumi.StringInput
}

// KubernetesUpgrade keeps Kubernetes at the stack's kubernetesVersion: when the version changes, or
// when the cluster runs another one, `talosctl upgrade-k8s` upgrades the control plane and every
// kubelet, before any node config that carries the new version is staged (Rollout waits for it).
// It reboots no node. A preview shows KUBERNETES_VERSION changing, in clear text.
type KubernetesUpgrade struct {
	pulumi.ResourceState

	// Command runs the upgrade.
	Command *local.Command
}

// NewKubernetesUpgrade registers the upgrade.
func NewKubernetesUpgrade(ctx *pulumi.Context, name string, args *KubernetesUpgradeArgs, opts ...pulumi.ResourceOption) (*KubernetesUpgrade, error) {
	u := &KubernetesUpgrade{}
	if err := ctx.RegisterComponentResource(kubernetesUpgradeType, name, u, opts...); err != nil {
		return nil, err
	}
	cmd, err := local.NewCommand(ctx, name, &local.CommandArgs{
		Create: pulumi.String(args.Script),
		Update: pulumi.String(args.Script),
		Environment: pulumi.StringMap{
			"KUBERNETES_VERSION": pulumi.String(args.Cluster.KubernetesVersion),
			"ENDPOINT":           pulumi.String(args.Cluster.ControlPlanes()[0].Address),
			"TIMEOUT":            pulumi.String(NodeTimeout),
			"TALOSCTL_MINOR":     pulumi.String(args.Cluster.TalosMinor()),
			"TALOSCONFIG_DATA":   pulumi.ToSecret(args.Talosconfig).(pulumi.StringOutput),
			"KUBECONFIG_DATA":    pulumi.ToSecret(args.Kubeconfig).(pulumi.StringOutput),
		},
	}, pulumi.Parent(u))
	if err != nil {
		return nil, fmt.Errorf("registering the Kubernetes upgrade: %w", err)
	}
	u.Command = cmd
	if err := ctx.RegisterResourceOutputs(u, pulumi.Map{}); err != nil {
		return nil, err
	}
	return u, nil
}

// NodeRemovalArgs configures the removal of nodes.
type NodeRemovalArgs struct {
	// Cluster is the validated cluster config (the nodes that stay). Required.
	Cluster stackconfig.Cluster
	// Removed are the nodes the last deployment had and the config no longer lists. Required.
	Removed []lifecycle.Node
	// Script is the text of src/talos/remove.sh. Required.
	Script string
	// Talosconfig reaches the removed nodes and the control planes that stay (secret). Required.
	Talosconfig pulumi.StringInput
	// Kubeconfig is the admin kubeconfig, not gated on health (secret). Required.
	Kubeconfig pulumi.StringInput
}

// NodeRemoval takes nodes that left the stack file out of the cluster, before the health gate:
// each is drained, a control plane leaves etcd, and its Kubernetes Node is deleted, so Talos's
// health checks no longer expect it. The other nodes are untouched. A removal exists for the one
// run that removes the node; its resources go with it (and, with resetOnDestroy, a reset).
type NodeRemoval struct {
	pulumi.ResourceState

	// Commands are the removals, by node name.
	Commands map[string]*local.Command
}

// NewNodeRemoval registers one removal per removed node.
func NewNodeRemoval(ctx *pulumi.Context, name string, args *NodeRemovalArgs, opts ...pulumi.ResourceOption) (*NodeRemoval, error) {
	r := &NodeRemoval{Commands: map[string]*local.Command{}}
	if err := ctx.RegisterComponentResource(nodeRemovalType, name, r, opts...); err != nil {
		return nil, err
	}
	for _, n := range args.Removed {
		cmd, err := local.NewCommand(ctx, name+"-"+n.Name, &local.CommandArgs{
			Create: pulumi.String(args.Script),
			Environment: pulumi.StringMap{
				"NODE_NAME":        pulumi.String(n.Name),
				"NODE_ADDRESS":     pulumi.String(n.Address),
				"ROLE":             pulumi.String(n.Role),
				"ENDPOINT":         pulumi.String(args.Cluster.ControlPlanes()[0].Address),
				"TIMEOUT":          pulumi.String(NodeTimeout),
				"TALOSCTL_MINOR":   pulumi.String(args.Cluster.TalosMinor()),
				"TALOSCONFIG_DATA": pulumi.ToSecret(args.Talosconfig).(pulumi.StringOutput),
				"KUBECONFIG_DATA":  pulumi.ToSecret(args.Kubeconfig).(pulumi.StringOutput),
			},
		}, pulumi.Parent(r))
		if err != nil {
			return nil, fmt.Errorf("registering the removal of node %s: %w", n.Name, err)
		}
		r.Commands[n.Name] = cmd
	}
	if err := ctx.RegisterResourceOutputs(r, pulumi.Map{}); err != nil {
		return nil, err
	}
	return r, nil
}

// Resources are the removal commands, for what must wait for them.
func (r *NodeRemoval) Resources() []pulumi.Resource {
	out := make([]pulumi.Resource, 0, len(r.Commands))
	for _, c := range r.Commands {
		out = append(out, c)
	}
	return out
}
