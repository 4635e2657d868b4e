package cluster

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/components"
	"homelab/internal/lifecycle"
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
	k8s     *components.KubernetesUpgrade
}

// buildTalos takes the nodes from maintenance mode (or, adopted, as they run) to a bootstrapped,
// healthy cluster and its kubeconfig and talosconfig.
func buildTalos(ctx *pulumi.Context, c stackconfig.Cluster, talos *talosplan.Data, id *identity, plan lifecycle.Plan) (*talosCluster, error) {
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
	removeNodes := func(talosconfig, kubeconfig pulumi.StringOutput) ([]pulumi.Resource, error) {
		if len(plan.Removed) == 0 {
			return nil, nil
		}
		r, err := components.NewNodeRemoval(ctx, "remove", &components.NodeRemovalArgs{Cluster: c, Removed: plan.Removed,
			Script: talos.Scripts.Remove, Talosconfig: talosconfig, Kubeconfig: kubeconfig})
		if err != nil {
			return nil, err
		}
		return r.Resources(), nil
	}
	if t.boot, err = components.NewBootstrap(ctx, "bootstrap", &components.BootstrapArgs{
		Cluster: c, Adopted: c.Adopt, ClientConfiguration: t.secrets.ClientConfiguration, Install: t.install,
		BeforeHealth: removeNodes,
	}); err != nil {
		return nil, err
	}
	if t.k8s, err = components.NewKubernetesUpgrade(ctx, "k8s-upgrade", &components.KubernetesUpgradeArgs{Cluster: c,
		Script: talos.Scripts.UpgradeKubernetes, Talosconfig: t.boot.Talosconfig, Kubeconfig: t.boot.Kubeconfig}); err != nil {
		return nil, err
	}
	return t, nil
}
