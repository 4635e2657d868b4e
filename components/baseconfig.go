package components

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumiverse/pulumi-talos/sdk/go/talos/machine"

	"homelab/internal/stackconfig"
)

// BaseConfigArgs configures machine-config generation.
type BaseConfigArgs struct {
	// Cluster is the validated cluster config. Required.
	Cluster stackconfig.Cluster
	// MachineSecrets is the cluster's secrets bundle. Required.
	MachineSecrets machine.MachineSecretsOutput
	// Contract is the checked version contract. Required.
	Contract pulumi.StringInput
}

// BaseConfigs holds the generated, unpatched machine config of each role (secret). Patches are not
// applied here: they travel as ConfigPatches on each node's apply, so a preview shows them.
type BaseConfigs map[string]pulumi.StringOutput

// GenerateBaseConfigs generates the base config of every role the cluster has. Generation is local
// to the provider and contacts no node, so it runs in previews too.
func GenerateBaseConfigs(ctx *pulumi.Context, args BaseConfigArgs) BaseConfigs {
	out := BaseConfigs{}
	for _, n := range args.Cluster.Nodes {
		if _, done := out[n.Role]; done {
			continue
		}
		gen := machine.GetConfigurationOutput(ctx, machine.GetConfigurationOutputArgs{
			ClusterName:       pulumi.String(args.Cluster.Name),
			ClusterEndpoint:   pulumi.String(args.Cluster.Endpoint),
			MachineType:       pulumi.String(n.Role),
			MachineSecrets:    args.MachineSecrets,
			TalosVersion:      args.Contract.ToStringOutput().ToStringPtrOutput(),
			KubernetesVersion: pulumi.String(args.Cluster.KubernetesVersion),
			Docs:              pulumi.Bool(false),
			Examples:          pulumi.Bool(false),
		})
		out[n.Role] = pulumi.ToSecret(gen.MachineConfiguration()).(pulumi.StringOutput)
	}
	return out
}
