// Command homelab is the Pulumi program of a bare-metal Talos cluster: `pulumi up` takes nodes in
// maintenance mode to a bootstrapped cluster running Cilium, and keeps their config in step with
// src/ and the stack file; `pulumi preview` shows what would change without contacting any node.
package main

import (
	"errors"
	"io/fs"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/components"
	"homelab/internal/manifests"
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
// the lab as an inline program. Every input is loaded and checked before the first registration.
func run(ctx *pulumi.Context, data fs.FS) (pulumi.Map, error) {
	cfg, err := loadConfig(ctx)
	if err != nil {
		return nil, err
	}
	talos, talosErr := talosplan.Load(data)
	net, netErr := manifests.Load(data, cfg.Networking)
	if err := errors.Join(talosErr, netErr); err != nil {
		return nil, err
	}
	cluster := cfg.Cluster

	secrets, err := components.NewClusterSecrets(ctx, "cluster", &components.ClusterSecretsArgs{Contract: cluster.VersionContract()})
	if err != nil {
		return nil, err
	}
	image, err := components.NewInstallerImage(ctx, "installer", &components.InstallerImageArgs{
		Schematic: talos.Schematic, SchematicID: talos.SchematicID, Image: talos.InstallerImage(cluster)})
	if err != nil {
		return nil, err
	}
	base := components.GenerateBaseConfigs(ctx, components.BaseConfigArgs{Cluster: cluster, MachineSecrets: secrets.MachineSecrets, Contract: secrets.Contract})
	install, err := components.NewInstall(ctx, "install", &components.InstallArgs{Cluster: cluster, Talos: talos,
		Adopted: cluster.Adopt, BaseConfigs: base, ClientConfiguration: secrets.ClientConfiguration, Image: image})
	if err != nil {
		return nil, err
	}
	boot, err := components.NewBootstrap(ctx, "bootstrap", &components.BootstrapArgs{Cluster: cluster,
		Adopted: cluster.Adopt, ClientConfiguration: secrets.ClientConfiguration, Install: install})
	if err != nil {
		return nil, err
	}

	k8s, err := components.NewClusterProvider(ctx, "kubernetes", cluster.Name, boot.Kubeconfig)
	if err != nil {
		return nil, err
	}
	gateway, err := components.NewGatewayAPI(ctx, "gateway-api", &components.GatewayAPIArgs{CRDs: net.GatewayAPICRDs}, pulumi.Provider(k8s))
	if err != nil {
		return nil, err
	}
	cilium, err := components.NewCilium(ctx, "cilium", &components.CiliumArgs{Version: cfg.Networking.Cilium.Version,
		Values: net.CiliumValues, GatewayAPI: gateway, Nodes: len(cluster.Nodes)}, pulumi.Provider(k8s))
	if err != nil {
		return nil, err
	}
	if len(net.L2) > 0 {
		if _, err := components.NewL2Announcements(ctx, "l2", &components.L2AnnouncementsArgs{Objects: net.L2, Cilium: cilium}, pulumi.Provider(k8s)); err != nil {
			return nil, err
		}
	}
	rollout, err := components.NewRollout(ctx, "config", &components.RolloutArgs{Cluster: cluster, Talos: talos, BaseConfigs: base,
		ClientConfiguration: secrets.ClientConfiguration, Install: install, Kubeconfig: boot.Kubeconfig,
		After: []pulumi.Resource{cilium.Chart}, CheckCilium: true})
	if err != nil {
		return nil, err
	}
	if _, err := components.NewCNICleanup(ctx, "cni-cleanup", &components.CNICleanupArgs{Script: net.CleanupScript, Kubeconfig: boot.Kubeconfig, Rollout: rollout}); err != nil {
		return nil, err
	}

	outputs := pulumi.Map{"kubeconfig": boot.Kubeconfig, "talosconfig": boot.Talosconfig,
		"installerImage": pulumi.String(image.Image), "schematicId": image.SchematicID}
	for name, value := range outputs {
		ctx.Export(name, value)
	}
	return outputs, nil
}
