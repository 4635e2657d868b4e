package components

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumiverse/pulumi-talos/sdk/go/talos/client"
	"github.com/pulumiverse/pulumi-talos/sdk/go/talos/cluster"
	"github.com/pulumiverse/pulumi-talos/sdk/go/talos/machine"

	"homelab/internal/stackconfig"
)

// BootstrapArgs configures etcd bootstrap and cluster access.
type BootstrapArgs struct {
	// Cluster is the validated cluster config. Required.
	Cluster stackconfig.Cluster
	// Adopted is true when etcd already runs (an adopted cluster): then no bootstrap resource exists.
	Adopted bool
	// ClientConfiguration is the Talos admin client certificate (secret). Required.
	ClientConfiguration machine.ClientConfigurationOutput
	// Install holds the nodes' first applies; bootstrap waits for every control plane's. Required.
	Install *Install
	// BeforeHealth registers what must happen before the health gate, given the talosconfig and
	// the kubeconfig not gated on health (such as removing nodes the gate must no longer expect),
	// and returns it for the gate to wait for. Optional.
	BeforeHealth func(talosconfig, kubeconfig pulumi.StringOutput) ([]pulumi.Resource, error)
}

// Bootstrap bootstraps etcd once on the first control plane, fetches the admin kubeconfig and
// builds the talosconfig. During `pulumi up` it also runs the health gate: Kubeconfig resolves only
// once the whole cluster is healthy, so everything built from it waits for that. A preview skips
// the gate and contacts no node.
type Bootstrap struct {
	pulumi.ResourceState

	// Bootstrap is the etcd bootstrap; nil for an adopted cluster.
	Bootstrap *machine.Bootstrap
	// KubeconfigResource fetches the admin kubeconfig from the first control plane.
	KubeconfigResource *cluster.Kubeconfig
	// Kubeconfig is the admin kubeconfig (secret), gated on cluster health during `pulumi up`.
	Kubeconfig pulumi.StringOutput
	// Talosconfig is the talosctl client config for every node (secret).
	Talosconfig pulumi.StringOutput
	// RawKubeconfig is the admin kubeconfig before the health gate (secret), for what the gate
	// itself waits for.
	RawKubeconfig pulumi.StringOutput
}

// NewBootstrap registers the bootstrap, the kubeconfig and the health gate.
func NewBootstrap(ctx *pulumi.Context, name string, args *BootstrapArgs, opts ...pulumi.ResourceOption) (*Bootstrap, error) {
	b := &Bootstrap{}
	if err := ctx.RegisterComponentResource(bootstrapType, name, b, opts...); err != nil {
		return nil, err
	}
	first := args.Cluster.ControlPlanes()[0]
	cc := args.ClientConfiguration
	// etcd needs every control plane configured; an adopted cluster's etcd already runs.
	apiReady := args.Install.ControlPlaneApplies(args.Cluster)
	if !args.Adopted {
		boot, err := machine.NewBootstrap(ctx, name+"-etcd", &machine.BootstrapArgs{
			Node:                pulumi.String(first.Address),
			Endpoint:            pulumi.String(first.Address),
			ClientConfiguration: cc,
			Timeouts:            &machine.BootstrapTimeoutsArgs{Create: pulumi.String(NodeTimeout)},
		},
			pulumi.Parent(b),
			// Bootstrap etcd only once every control plane has its config.
			pulumi.DependsOn(apiReady),
		)
		if err != nil {
			return nil, fmt.Errorf("registering the etcd bootstrap on %s: %w", first.Name, err)
		}
		b.Bootstrap = boot
		apiReady = []pulumi.Resource{boot}
	}

	kc, err := cluster.NewKubeconfig(ctx, name+"-kubeconfig", &cluster.KubeconfigArgs{
		Node:     pulumi.String(first.Address),
		Endpoint: pulumi.String(first.Address),
		ClientConfiguration: &cluster.KubeconfigClientConfigurationArgs{
			CaCertificate:     cc.CaCertificate(),
			ClientCertificate: cc.ClientCertificate(),
			ClientKey:         cc.ClientKey(),
		},
		Timeouts: &cluster.KubeconfigTimeoutsArgs{Create: pulumi.String(NodeTimeout), Update: pulumi.String(NodeTimeout)},
	},
		pulumi.Parent(b),
		// The API server exists only after bootstrap (or, when adopted, once the nodes are managed).
		pulumi.DependsOn(apiReady),
		// The SDK encrypts only kubeconfigRaw; the same client key is in this output too.
		pulumi.AdditionalSecretOutputs([]string{"kubernetesClientConfiguration"}),
	)
	if err != nil {
		return nil, fmt.Errorf("registering the kubeconfig: %w", err)
	}
	b.KubeconfigResource = kc
	// Talos writes the endpoint of its config at the time into the kubeconfig, and the provider keeps
	// the kubeconfig it fetched until its certificate nears expiry: the stack's endpoint decides.
	endpoint := args.Cluster.Endpoint
	b.Kubeconfig = pulumi.ToSecret(kc.KubeconfigRaw.ApplyT(func(raw string) (string, error) {
		return WithServer(raw, endpoint)
	})).(pulumi.StringOutput)
	b.RawKubeconfig = b.Kubeconfig
	talosconfig := client.GetConfigurationOutput(ctx, client.GetConfigurationOutputArgs{
		ClusterName: pulumi.String(args.Cluster.Name),
		ClientConfiguration: &client.GetConfigurationClientConfigurationArgs{
			CaCertificate:     cc.CaCertificate(),
			ClientCertificate: cc.ClientCertificate(),
			ClientKey:         cc.ClientKey(),
		},
		Endpoints: pulumi.ToStringArray(stackconfig.Addresses(args.Cluster.ControlPlanes())),
		Nodes:     pulumi.ToStringArray(stackconfig.Addresses(args.Cluster.Nodes)),
	}, pulumi.Parent(b))
	b.Talosconfig = pulumi.ToSecret(talosconfig.TalosConfig()).(pulumi.StringOutput)

	healthAfter := append([]pulumi.Resource{kc}, args.Install.AllApplies(args.Cluster)...)
	if args.BeforeHealth != nil {
		before, err := args.BeforeHealth(b.Talosconfig, b.RawKubeconfig)
		if err != nil {
			return nil, err
		}
		healthAfter = append(healthAfter, before...)
	}
	if !ctx.DryRun() {
		health := cluster.GetHealthOutput(ctx, cluster.GetHealthOutputArgs{
			ClientConfiguration: &cluster.GetHealthClientConfigurationArgs{
				CaCertificate:     cc.CaCertificate(),
				ClientCertificate: cc.ClientCertificate(),
				ClientKey:         cc.ClientKey(),
			},
			Endpoints:         pulumi.ToStringArray(stackconfig.Addresses(args.Cluster.ControlPlanes())),
			ControlPlaneNodes: pulumi.ToStringArray(stackconfig.Addresses(args.Cluster.ControlPlanes())),
			WorkerNodes:       pulumi.ToStringArray(stackconfig.Addresses(args.Cluster.Workers())),
			Timeouts:          &cluster.GetHealthTimeoutsArgs{Read: pulumi.String(NodeTimeout)},
		},
			pulumi.Parent(b),
			// Check health once the API server is up, every node (workers too) has its config, and
			// nodes leaving the stack are out of the cluster.
			pulumi.DependsOn(healthAfter),
		)
		kubeconfig := b.Kubeconfig
		b.Kubeconfig = health.Id().ApplyT(func(string) pulumi.StringOutput { return kubeconfig }).(pulumi.StringOutput)
	}

	if err := ctx.RegisterResourceOutputs(b, pulumi.Map{
		"kubeconfig":  b.Kubeconfig,
		"talosconfig": b.Talosconfig,
	}); err != nil {
		return nil, err
	}
	return b, nil
}
