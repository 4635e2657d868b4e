// Package cluster is the Pulumi program of one cluster's stack (Pulumi.<cluster>.yaml): Run reads
// and checks the stack file, src/, the last deployment and the vault, then builds the Talos side
// (talos.go) and the Kubernetes side (platform.go) from the components, and exports the outputs.
// main.go at the repository root runs it; the tests run it under mocks, the lab as an inline
// program against simulated nodes.
package cluster

import (
	"io/fs"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/components"
	"homelab/internal/lifecycle"
)

// Run wires the program and returns the stack outputs it exported. Everything that can be wrong in
// the stack file, src/ or the vault is checked before the first registration:
//
//	config ─ last deployment ─ data and plan (validate.Stack) ─ vault ─ tools and nodes answer
//	─ identity ─► Talos (talos.go) ─► Kubernetes (platform.go) ─► outputs
func Run(ctx *pulumi.Context, data fs.FS) (_ pulumi.Map, err error) {
	cfg, err := loadConfig(ctx)
	if err != nil {
		return nil, err
	}
	prev, err := readDeployed(ctx)
	if err != nil {
		return nil, err
	}
	in, err := loadData(data, cfg, prev)
	if err != nil {
		return nil, err
	}
	id := planIdentity(ctx, cfg.Cluster.Adopt, prev)
	secrets, err := readVault(ctx, cfg, id, in.plan.Backup)
	if err != nil {
		return nil, err
	}
	if err := checkTools(ctx, lifecycle.NeedTools(prev, cfg.Cluster)); err != nil {
		return nil, err
	}
	if err := reachable(ctx, cfg.Cluster.Nodes); err != nil {
		return nil, err
	}
	// The identity file a restore writes goes again when the run stops before the provider has
	// imported it (identity.done removes it once imported).
	defer func() {
		if err != nil {
			id.discard()
		}
	}()
	if err := id.prepare(ctx, secrets.Backup); err != nil {
		return nil, err
	}
	talos, err := buildTalos(ctx, cfg.Cluster, in.talos, &id, in.plan)
	if err != nil {
		return nil, err
	}
	if err := buildPlatform(ctx, cfg, in, talos, secrets); err != nil {
		return nil, err
	}

	outputs := pulumi.Map{
		"kubeconfig":     talos.boot.Kubeconfig,
		"talosconfig":    talos.boot.Talosconfig,
		"installerImage": pulumi.String(talos.image.Image),
		"schematicId":    talos.image.SchematicID,
		// The identity in talosctl's secrets.yaml form (secret), for cmd/drift and cmd/render.
		"talosSecrets": pulumi.ToSecret(talos.secrets.MachineSecrets.ApplyT(components.SecretsYAML)),
		deployedOutput: record(cfg, in.plan, secrets.BackupVaultUUID),
	}
	for name, value := range outputs {
		ctx.Export(name, value)
	}
	return outputs, nil
}
