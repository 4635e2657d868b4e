package components

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// CiliumRepository is the Helm repository of the cilium chart.
const CiliumRepository = "https://helm.cilium.io"

// CiliumArgs configures the Cilium install.
type CiliumArgs struct {
	// Version is the cilium chart version. Required.
	Version string
	// Values is the YAML text of src/bootstrap/cilium/values.yaml. Required.
	Values string
	// GatewayAPI holds the CRDs Cilium's Gateway API support needs at start. Required.
	GatewayAPI *GatewayAPI
	// Nodes is the number of nodes; the operator runs at most two replicas, one per node. Required.
	Nodes int
	// Rendering renders the chart. Required.
	Rendering ChartRendering
}

// ComputedValues are the chart values that depend on the stack; the rest is in values.yaml.
func (a *CiliumArgs) ComputedValues() map[string]any {
	return map[string]any{"operator": map[string]any{"replicas": min(2, a.Nodes)}}
}

// Cilium installs the cilium chart into kube-system, alongside the default CNI on a new cluster,
// and waits until every workload of the chart is ready. Pass the Kubernetes provider with
// pulumi.Provider. The Talos handover (Rollout) and the L2 objects wait for it.
type Cilium struct {
	pulumi.ResourceState

	// Chart is the installed chart; it completes only once its workloads are ready.
	Chart *Chart
}

// NewCilium registers the chart.
func NewCilium(ctx *pulumi.Context, name string, args *CiliumArgs, opts ...pulumi.ResourceOption) (*Cilium, error) {
	c := &Cilium{}
	if err := ctx.RegisterComponentResource(ciliumType, name, c, opts...); err != nil {
		return nil, err
	}
	chart, err := newChart(ctx, name, chartSpec{
		repo: CiliumRepository, chart: "cilium", version: args.Version,
		release: "cilium", namespace: "kube-system",
		values: args.Values, computed: args.ComputedValues(), rendering: args.Rendering,
	}, args.GatewayAPI.CRDs, pulumi.Parent(c))
	if err != nil {
		return nil, err
	}
	c.Chart = chart
	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{}); err != nil {
		return nil, err
	}
	return c, nil
}
