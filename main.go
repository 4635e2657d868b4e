// Command homelab is the Pulumi program of a bare-metal Talos cluster: `pulumi up` takes nodes in
// maintenance mode to a bootstrapped cluster on Cilium with its secrets from 1Password and its
// applications from Git (Argo CD), and keeps it in step with src/ and the stack file;
// `pulumi preview` shows what would change without contacting any node or the cluster.
package main

import (
	"io/fs"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/components"
	"homelab/internal/lifecycle"
	"homelab/src"
)

func main() {
	pulumi.Run(func(ctx *pulumi.Context) error {
		_, err := run(ctx, src.FS)
		return err
	})
}

// run wires the program and returns the stack outputs it exported. Tests call it under mocks, the
// lab as an inline program. Everything that can be wrong in the stack file, src/ or the vault is
// checked before the first registration:
//
//	config ─ data ─ last deployment and plan ─ vault ─ nodes answer ─► Talos (cluster.go) ─►
//	Kubernetes (platform.go) ─► outputs
func run(ctx *pulumi.Context, data fs.FS) (pulumi.Map, error) {
	cfg, err := loadConfig(ctx)
	if err != nil {
		return nil, err
	}
	in, err := loadData(data, cfg)
	if err != nil {
		return nil, err
	}
	prev, err := readDeployed(ctx)
	if err != nil {
		return nil, err
	}
	plan, err := lifecycle.Decide(prev, cfg.Cluster)
	if err != nil {
		return nil, err
	}
	id := planIdentity(ctx, cfg.Cluster.Adopt, prev)
	secrets, err := readVault(ctx, cfg, id)
	if err != nil {
		return nil, err
	}
	if err := id.prepare(ctx, secrets.Backup); err != nil {
		return nil, err
	}
	if err := reachable(ctx, cfg.Cluster.Nodes); err != nil {
		return nil, err
	}
	talos, err := buildTalos(ctx, cfg.Cluster, in.talos, &id, plan)
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
		deployedOutput: record(cfg.Cluster),
	}
	for name, value := range outputs {
		ctx.Export(name, value)
	}
	return outputs, nil
}
