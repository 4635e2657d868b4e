package components

import (
	"fmt"

	"github.com/pulumi/pulumi-command/sdk/go/command/local"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// CNICleanupArgs configures the clean-up after the CNI handover.
type CNICleanupArgs struct {
	// Script is the text of src/bootstrap/cni-cleanup.sh. Required.
	Script string
	// Kubeconfig is the admin kubeconfig (secret). Required.
	Kubeconfig pulumi.StringInput
	// Rollout is the node rollout; the clean-up waits until every node runs its final config. Required.
	Rollout *Rollout
}

// CNICleanup deletes the Flannel and kube-proxy objects Talos leaves behind after the handover and
// proves that only Cilium remains. It runs during `pulumi up` only, and again only if its inputs
// change; on a cluster without those objects it only checks.
type CNICleanup struct {
	pulumi.ResourceState

	// Command runs the clean-up and the check.
	Command *local.Command
}

// NewCNICleanup registers the clean-up.
func NewCNICleanup(ctx *pulumi.Context, name string, args *CNICleanupArgs, opts ...pulumi.ResourceOption) (*CNICleanup, error) {
	c := &CNICleanup{}
	if err := ctx.RegisterComponentResource(cniCleanupType, name, c, opts...); err != nil {
		return nil, err
	}
	cmd, err := local.NewCommand(ctx, name, &local.CommandArgs{
		Create: pulumi.String(args.Script),
		Update: pulumi.String(args.Script),
		Environment: pulumi.StringMap{
			"TIMEOUT":         pulumi.String(NodeTimeout),
			"KUBECONFIG_DATA": pulumi.ToSecret(args.Kubeconfig).(pulumi.StringOutput),
		},
	},
		pulumi.Parent(c),
		// Flannel and kube-proxy must keep running until the last node has rebooted onto Cilium.
		pulumi.DependsOn(args.Rollout.Done),
	)
	if err != nil {
		return nil, fmt.Errorf("registering the CNI clean-up: %w", err)
	}
	c.Command = cmd
	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{}); err != nil {
		return nil, err
	}
	return c, nil
}
