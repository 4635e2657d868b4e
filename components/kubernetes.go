package components

import (
	"fmt"

	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes"
	"github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/apiextensions"
	metav1 "github.com/pulumi/pulumi-kubernetes/sdk/v4/go/kubernetes/meta/v1"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/internal/manifests"
)

// NewClusterProvider builds the one Kubernetes provider every Kubernetes object goes through
// (pass it with pulumi.Provider), from the cluster's own admin kubeconfig, never from the user's
// home.
//
// During `pulumi up` its kubeconfig is Bootstrap.Kubeconfig, which resolves only after the health
// gate. During a preview it is the kubeconfig of the last deployment, known, so the provider diffs
// every object against what was deployed: against the cluster itself when it answers, from the last
// deployment's state when it does not (pulumi-kubernetes v4.32.0 provider.go:985-1000 marks an
// unreachable cluster and carries on; Diff, provider.go:1431-1620, compares offline). A preview
// never writes. ClusterIdentifier (the cluster name) keeps a kubeconfig change, such as a renewed
// client certificate, from replacing every object the provider manages.
func NewClusterProvider(ctx *pulumi.Context, name, clusterName string, kubeconfig pulumi.StringOutput) (*kubernetes.Provider, error) {
	p, err := kubernetes.NewProvider(ctx, name, &kubernetes.ProviderArgs{
		Kubeconfig:            pulumi.ToSecret(kubeconfig).(pulumi.StringOutput),
		ClusterIdentifier:     pulumi.String(clusterName),
		EnableServerSideApply: pulumi.Bool(true),
	})
	if err != nil {
		return nil, fmt.Errorf("registering the Kubernetes provider: %w", err)
	}
	return p, nil
}

// rendererKubeconfig names no cluster: a loopback port nothing listens on.
const rendererKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: none
  cluster:
    server: https://127.0.0.1:1
contexts:
- name: none
  context:
    cluster: none
    user: none
current-context: none
users:
- name: none
  user: {}
`

// NewChartRenderer builds the provider that renders Helm charts (kubernetes:helm:template) and
// does nothing else. Its kubeconfig names no cluster, so it is configured in every run, previews
// included, finds no cluster at once (provider.go:985-1000) and renders from the chart's repository
// with the Kubernetes version and the API versions the program gives, skipping discovery
// (invoke_helm_template.go:255-277): the same objects in a preview on a machine far from the
// nodes, in a preview next to them and in `pulumi up`, and no chart waits for the cluster to be
// rendered. Rendering needs the chart repositories (HTTPS); nothing else.
func NewChartRenderer(ctx *pulumi.Context, name string) (*kubernetes.Provider, error) {
	p, err := kubernetes.NewProvider(ctx, name, &kubernetes.ProviderArgs{
		Kubeconfig:        pulumi.String(rendererKubeconfig),
		ClusterIdentifier: pulumi.String("chart-renderer"),
	})
	if err != nil {
		return nil, fmt.Errorf("registering the chart renderer: %w", err)
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
