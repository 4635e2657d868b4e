package components

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/internal/manifests"
)

// L2AnnouncementsArgs configures L2 load balancing.
type L2AnnouncementsArgs struct {
	// Objects are the pool (its range from the stack file) and the announcement policy. Required.
	Objects []manifests.Object
	// Cilium is the install whose operator registers the CRDs of these objects. Required.
	Cilium *Cilium
	// After is what must finish first: the rollout of the nodes (NewCNICleanup's command, which
	// waits for every node's gate). Nodes reboot during a rollout, the cluster endpoint's node
	// among them, and the Kubernetes API does not answer while it is down. Required.
	After []pulumi.Resource
}

// L2Announcements gives LoadBalancer services addresses from the stack's pool and announces them
// on the LAN with ARP. Pass the Kubernetes provider with pulumi.Provider.
type L2Announcements struct {
	pulumi.ResourceState
}

// NewL2Announcements registers the pool and the policy.
func NewL2Announcements(ctx *pulumi.Context, name string, args *L2AnnouncementsArgs, opts ...pulumi.ResourceOption) (*L2Announcements, error) {
	l := &L2Announcements{}
	if err := ctx.RegisterComponentResource(l2Type, name, l, opts...); err != nil {
		return nil, err
	}
	for _, o := range args.Objects {
		if _, err := newObject(ctx, name+"-"+o.Name+"-"+o.Kind, o,
			pulumi.Parent(l),
			// The Cilium operator registers the CRDs of these kinds when it starts; After holds
			// them back until the nodes have settled. Neither is a data edge.
			pulumi.DependsOn(append([]pulumi.Resource{args.Cilium.Chart}, args.After...)),
		); err != nil {
			return nil, err
		}
	}
	if err := ctx.RegisterResourceOutputs(l, pulumi.Map{}); err != nil {
		return nil, err
	}
	return l, nil
}
