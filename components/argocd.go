package components

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/internal/manifests"
)

// ArgoCDRepository is the Helm repository of the argo-cd chart.
const ArgoCDRepository = "https://argoproj.github.io/argo-helm"

// ArgoCDArgs configures Argo CD.
type ArgoCDArgs struct {
	// Version is the argo-cd chart version. Required.
	Version string
	// Data is the namespace, values, admin secret and root application from src/bootstrap/argocd/. Required.
	Data *manifests.ArgoCD
	// Connect is the 1Password operator that syncs argocd-secret. Required.
	Connect *OnePasswordConnect
	// Cilium is the CNI install. Required.
	Cilium *Cilium
	// Rendering renders the chart. Required.
	Rendering ChartRendering
	// After is what must finish first: the rollout of the nodes (NewCNICleanup's command, which
	// waits for every node's gate). Nodes reboot during a rollout, the cluster endpoint's node
	// among them, and the Kubernetes API does not answer while it is down. Required.
	After []pulumi.Resource
}

// ArgoCD installs Argo CD into namespace argocd and its root application, which syncs the child
// applications under src/apps/ from Git. Its admin secret is a OnePasswordItem: the value comes
// from the vault through the operator, never from values files. Pass the Kubernetes provider with
// pulumi.Provider.
type ArgoCD struct {
	pulumi.ResourceState

	// Chart is the installed chart; RootApp the app of apps.
	Chart   *Chart
	RootApp pulumi.Resource
}

// NewArgoCD registers the namespace, the admin secret, the chart and the root application.
func NewArgoCD(ctx *pulumi.Context, name string, args *ArgoCDArgs, opts ...pulumi.ResourceOption) (*ArgoCD, error) {
	a := &ArgoCD{}
	if err := ctx.RegisterComponentResource(argoCDType, name, a, opts...); err != nil {
		return nil, err
	}
	ns, err := newObject(ctx, name+"-namespace", args.Data.Namespace, pulumi.Parent(a),
		// No data edge to the rollout: the platform waits until the nodes have settled.
		pulumi.DependsOn(args.After))
	if err != nil {
		return nil, err
	}
	admin, err := newObject(ctx, name+"-admin-secret", args.Data.AdminSecret,
		pulumi.Parent(a),
		// The OnePasswordItem kind comes with the connect chart, and lives in the namespace.
		pulumi.DependsOn([]pulumi.Resource{ns, args.Connect.Chart}))
	if err != nil {
		return nil, err
	}
	chart, err := newChart(ctx, name, chartSpec{
		repo: ArgoCDRepository, chart: "argo-cd", version: args.Version,
		release: "argocd", namespace: args.Data.Namespace.Name, values: args.Data.Values,
		rendering: args.Rendering,
	},
		// argocd-server starts only with argocd-secret, which the operator syncs; pods need the CNI.
		[]pulumi.Resource{ns, admin, args.Cilium.Chart},
		pulumi.Parent(a),
	)
	if err != nil {
		return nil, err
	}
	root, err := newObject(ctx, name+"-root-app", args.Data.RootApp,
		pulumi.Parent(a),
		// The Application kind is a CRD of the argo-cd chart.
		pulumi.DependsOn([]pulumi.Resource{chart}))
	if err != nil {
		return nil, err
	}
	a.Chart, a.RootApp = chart, root
	if err := ctx.RegisterResourceOutputs(a, pulumi.Map{}); err != nil {
		return nil, err
	}
	return a, nil
}
