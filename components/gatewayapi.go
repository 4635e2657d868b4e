package components

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/internal/manifests"
)

// GatewayAPIArgs configures the Gateway API CRDs.
type GatewayAPIArgs struct {
	// CRDs are the vendored, lock-checked CRDs of the pinned release. Required.
	CRDs []manifests.Object
}

// GatewayAPI applies the Gateway API CRDs from src/bootstrap/gateway-api/, never from a URL. Cilium
// needs them before its Gateway API support starts. Pass the Kubernetes provider with pulumi.Provider.
type GatewayAPI struct {
	pulumi.ResourceState

	// CRDs are the applied CRDs.
	CRDs []pulumi.Resource
}

// NewGatewayAPI registers one resource per CRD.
func NewGatewayAPI(ctx *pulumi.Context, name string, args *GatewayAPIArgs, opts ...pulumi.ResourceOption) (*GatewayAPI, error) {
	g := &GatewayAPI{}
	if err := ctx.RegisterComponentResource(gatewayAPIType, name, g, opts...); err != nil {
		return nil, err
	}
	for _, crd := range args.CRDs {
		res, err := newObject(ctx, name+"-"+crd.Name, crd, pulumi.Parent(g))
		if err != nil {
			return nil, err
		}
		g.CRDs = append(g.CRDs, res)
	}
	if err := ctx.RegisterResourceOutputs(g, pulumi.Map{}); err != nil {
		return nil, err
	}
	return g, nil
}
