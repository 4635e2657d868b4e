// Command homelab is the Pulumi program of a bare-metal Talos cluster: `pulumi up` takes nodes in
// maintenance mode to a bootstrapped cluster and keeps their config in step with src/ and the stack
// file; `pulumi preview` shows what would change without contacting any node.
package main

import (
	"fmt"
	"io/fs"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/components"
	"homelab/internal/talosplan"
	"homelab/src"
)

func main() {
	pulumi.Run(func(ctx *pulumi.Context) error {
		_, err := run(ctx, src.FS)
		return err
	})
}

// run wires the components and returns the stack outputs it exported. Tests call it under mocks,
// the lab as an inline program.
func run(ctx *pulumi.Context, data fs.FS) (pulumi.Map, error) {
	cfg, err := loadConfig(ctx)
	if err != nil {
		return nil, err
	}
	talos, err := talosplan.Load(data)
	if err != nil {
		return nil, fmt.Errorf("loading src/talos: %w", err)
	}
	cluster := cfg.Cluster
	installPhase := talosplan.BringUp
	if cluster.Adopt {
		installPhase = talosplan.Final
	}

	secrets, err := components.NewClusterSecrets(ctx, "cluster", &components.ClusterSecretsArgs{
		Contract: cluster.VersionContract(),
	})
	if err != nil {
		return nil, err
	}
	image, err := components.NewInstallerImage(ctx, "installer", &components.InstallerImageArgs{
		Schematic: talos.Schematic, SchematicID: talos.SchematicID, Image: talos.InstallerImage(cluster),
	})
	if err != nil {
		return nil, err
	}
	base := components.GenerateBaseConfigs(ctx, components.BaseConfigArgs{
		Cluster: cluster, MachineSecrets: secrets.MachineSecrets, Contract: secrets.Contract,
	})
	install, err := components.NewInstall(ctx, "install", &components.InstallArgs{
		Cluster: cluster, Talos: talos, Phase: installPhase, BaseConfigs: base,
		ClientConfiguration: secrets.ClientConfiguration, Image: image,
	})
	if err != nil {
		return nil, err
	}
	boot, err := components.NewBootstrap(ctx, "bootstrap", &components.BootstrapArgs{
		Cluster: cluster, Adopted: cluster.Adopt, ClientConfiguration: secrets.ClientConfiguration, Install: install,
	})
	if err != nil {
		return nil, err
	}
	if _, err := components.NewRollout(ctx, "config", &components.RolloutArgs{
		Cluster: cluster, Talos: talos, BaseConfigs: base, ClientConfiguration: secrets.ClientConfiguration,
		Install: install, Talosconfig: boot.Talosconfig, Kubeconfig: boot.Kubeconfig,
	}); err != nil {
		return nil, err
	}

	outputs := pulumi.Map{
		"kubeconfig":     boot.Kubeconfig,
		"talosconfig":    boot.Talosconfig,
		"installerImage": pulumi.String(image.Image),
		"schematicId":    image.SchematicID,
	}
	for name, value := range outputs {
		ctx.Export(name, value)
	}
	return outputs, nil
}
