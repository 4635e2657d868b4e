package main

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/components"
	"homelab/internal/stackconfig"
	"homelab/internal/talosplan"
)

// talosCluster is the Talos side: identity, image, node installs, bootstrap and access.
type talosCluster struct {
	secrets *components.ClusterSecrets
	image   *components.InstallerImage
	base    components.BaseConfigs
	install *components.Install
	boot    *components.Bootstrap
}

// buildTalos takes the nodes from maintenance mode (or, adopted, as they run) to a bootstrapped,
// healthy cluster and its kubeconfig and talosconfig.
func buildTalos(ctx *pulumi.Context, c stackconfig.Cluster, talos *talosplan.Data, id *identity) (*talosCluster, error) {
	t := &talosCluster{}
	var err error
	if t.secrets, err = components.NewClusterSecrets(ctx, "cluster", &components.ClusterSecretsArgs{
		Contract: c.VersionContract(), Import: id.Import,
	}); err != nil {
		return nil, err
	}
	id.done(t.secrets.Secrets.ID())
	if t.image, err = components.NewInstallerImage(ctx, "installer", &components.InstallerImageArgs{
		Schematic: talos.Schematic, SchematicID: talos.SchematicID, Image: talos.InstallerImage(c),
	}); err != nil {
		return nil, err
	}
	t.base = components.GenerateBaseConfigs(ctx, components.BaseConfigArgs{
		Cluster: c, MachineSecrets: t.secrets.MachineSecrets, Contract: t.secrets.Contract,
	})
	if t.install, err = components.NewInstall(ctx, "install", &components.InstallArgs{
		Cluster: c, Talos: talos, Adopted: c.Adopt, Running: id.Restore, BaseConfigs: t.base,
		ClientConfiguration: t.secrets.ClientConfiguration, Image: t.image,
	}); err != nil {
		return nil, err
	}
	if t.boot, err = components.NewBootstrap(ctx, "bootstrap", &components.BootstrapArgs{
		Cluster: c, Adopted: c.Adopt, ClientConfiguration: t.secrets.ClientConfiguration, Install: t.install,
	}); err != nil {
		return nil, err
	}
	return t, nil
}
