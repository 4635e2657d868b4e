package components

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumiverse/pulumi-talos/sdk/go/talos/machine"

	"homelab/internal/stackconfig"
)

// ClusterSecretsArgs configures the cluster identity.
type ClusterSecretsArgs struct {
	// Contract is the machine-config version contract (vX.Y) the bundle is created with. Required.
	Contract string
	// Import is the path of a talosctl secrets.yaml to import the bundle from, relative to the
	// project directory, instead of creating one: a cluster that already runs keeps its identity.
	// Optional; once imported, the state holds the bundle and the path is no longer read.
	Import string
}

// ClusterSecrets is the cluster's identity: every CA, key and token of the Talos secrets bundle.
// It is created once and protected; losing it or regenerating it destroys the cluster.
type ClusterSecrets struct {
	pulumi.ResourceState

	// Secrets is the protected secrets bundle.
	Secrets *machine.Secrets
	// MachineSecrets feeds machine-config generation (secret).
	MachineSecrets machine.MachineSecretsOutput
	// ClientConfiguration is the admin client certificate for the Talos API (secret).
	ClientConfiguration machine.ClientConfigurationOutput
	// Contract is Args.Contract once checked against the contract the bundle was created with: never older.
	Contract pulumi.StringOutput
}

// NewClusterSecrets creates the secrets bundle, or reads it back from state on every later run.
func NewClusterSecrets(ctx *pulumi.Context, name string, args *ClusterSecretsArgs, opts ...pulumi.ResourceOption) (*ClusterSecrets, error) {
	c := &ClusterSecrets{}
	if err := ctx.RegisterComponentResource(clusterSecretsType, name, c, opts...); err != nil {
		return nil, err
	}
	child := []pulumi.ResourceOption{
		pulumi.Parent(c),
		// Destroying or replacing the bundle destroys the cluster: refuse both.
		pulumi.Protect(true),
		// A lower talosVersion would replace the bundle (new CAs), and a moved contract changes
		// nothing in it; Contract below refuses a contract older than the bundle's.
		pulumi.IgnoreChanges([]string{"talosVersion"}),
		// The provider flags these only in nested schema types; make the state encrypt them.
		pulumi.AdditionalSecretOutputs([]string{"machineSecrets", "clientConfiguration"}),
	}
	if args.Import != "" {
		// The provider reads the file at this path (terraform-provider-talos v0.10.1
		// talos_machine_secrets_resource.go:599-642); its recorded talosVersion differs and is ignored.
		child = append(child, pulumi.Import(pulumi.ID(args.Import)))
	}
	sec, err := machine.NewSecrets(ctx, name+"-secrets", &machine.SecretsArgs{TalosVersion: pulumi.String(args.Contract)}, child...)
	if err != nil {
		return nil, fmt.Errorf("registering the Talos secrets bundle: %w", err)
	}
	c.Secrets = sec
	c.MachineSecrets = sec.MachineSecrets
	c.ClientConfiguration = sec.ClientConfiguration
	c.Contract = sec.TalosVersion.ApplyT(func(stored string) (string, error) {
		return checkContract(stored, args.Contract)
	}).(pulumi.StringOutput)
	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{"contract": c.Contract}); err != nil {
		return nil, err
	}
	return c, nil
}

// checkContract refuses a contract older than the one the bundle was created with: the nodes'
// configs would lose defaults they run with. A newer one is the stack moving its contract, which
// the lifecycle checks allow in a run of its own. Bundles imported from talosctl record v1.2 or
// v1.3, which says nothing about the cluster, so those are not compared.
func checkContract(stored, want string) (string, error) {
	if stored == "" || !stackconfig.ContractOlder(want, stored) || stackconfig.ContractOlder(stored, "v1.4") {
		return want, nil
	}
	return "", fmt.Errorf("homelab:cluster.contract: the cluster secrets were created with contract %s, and the config asks for %s; "+
		"a contract never moves back, so set homelab:cluster.contract: %s (or newer) in the stack file", stored, want, stored)
}
