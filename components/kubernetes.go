package components

import (
	"fmt"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/internal/manifests"
)

// NewClusterProvider builds the one Kubernetes provider every Kubernetes component uses (pass it
// with pulumi.Provider), from the cluster's own admin kubeconfig, never from the user's home.
//
// During `pulumi up` its kubeconfig is Bootstrap.Kubeconfig, which resolves only after the health
// gate. During a preview its kubeconfig is withheld (unknown), so the provider plans offline from
// the last deployment's inputs and contacts no cluster; a preview therefore lists the provider
// itself as updated. ClusterIdentifier (the cluster name) keeps a kubeconfig change, such as a
// renewed client certificate, from replacing every object the provider manages.
func NewClusterProvider(ctx *pulumi.Context, name, clusterName string, kubeconfig pulumi.StringOutput) (*kubernetes.Provider, error) {
	kubeconfig = pulumi.ToSecret(kubeconfig).(pulumi.StringOutput)
	if ctx.DryRun() {
		kubeconfig = pulumi.UnsafeUnknownOutput(nil).ApplyT(func(any) string { return "" }).(pulumi.StringOutput)
	}
	p, err := kubernetes.NewProvider(ctx, name, &kubernetes.ProviderArgs{
		Kubeconfig:            kubeconfig,
		ClusterIdentifier:     pulumi.String(clusterName),
		EnableServerSideApply: pulumi.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("registering the Kubernetes provider: %w", err)
	}
	return p, nil
}

// newObject registers one manifest object as a generic Kubernetes resource. Removing it from the
// program, or `pulumi destroy`, leaves the object in the cluster (retainOnDelete): a destroy forgets
// the cluster's CRDs, pools and applications, it never deletes them.
func newObject(ctx *pulumi.Context, name string, o manifests.Object, opts ...pulumi.ResourceOption) (*apiextensions.CustomResource, error) {
	meta := &metav1.ObjectMetaArgs{
		Name:        pulumi.String(o.Name),
		Labels:      pulumi.ToStringMap(o.Labels),
		Annotations: pulumi.ToStringMap(o.Annotations),
	}
	if o.Namespace != "" {
		meta.Namespace = pulumi.String(o.Namespace)
	}
	res, err := apiextensions.NewCustomResource(ctx, name, &apiextensions.CustomResourceArgs{
		ApiVersion:  pulumi.String(o.APIVersion),
		Kind:        pulumi.String(o.Kind),
		Metadata:    meta,
		OtherFields: o.Fields,
	}, append(opts, pulumi.RetainOnDelete(true))...)
	if err != nil {
		return nil, fmt.Errorf("registering %s %s from src/%s: %w", o.Kind, o.Name, o.Source, err)
	}
	return res, nil
}
