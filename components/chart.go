package components

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"gopkg.in/yaml.v3"

	"homelab/internal/manifests"
)

// ChartRendering is how the platform's charts are rendered: by Renderer (NewChartRenderer), for
// the cluster's Kubernetes version and the API versions the program installs beside the built-in
// ones (CRDAPIVersions of the Gateway API CRDs).
type ChartRendering struct {
	Renderer    pulumi.ProviderResource
	KubeVersion string
	APIVersions []string
}

// chartSpec is one pinned Helm chart install: where it comes from, where it goes, its values file
// from src/ and the values computed by the program. Values are never secret: a chart that needs a
// secret reads it from a Secret the program creates itself (see OnePasswordConnect).
type chartSpec struct {
	repo, chart, version string
	release, namespace   string
	values               string
	computed             map[string]any
	rendering            ChartRendering
}

// Chart is one Helm chart, rendered by the Kubernetes provider's `helm template` and applied object
// by object through the cluster's provider, so that a preview diffs each object against the last
// deployment and shows only the objects a change really touches, whether or not the cluster can be
// reached. See NewChartRenderer for why the rendering never needs the cluster.
type Chart struct {
	pulumi.ResourceState

	// Objects are the chart's objects: its CRDs first, then everything else, which waits for them.
	Objects []pulumi.Resource
}

// templateArgs and templateResult are the Kubernetes provider's kubernetes:helm:template invoke
// (pulumi-kubernetes v4.32.0 provider/pkg/provider/provider.go:1076-1120, HelmChartOpts in
// invoke_helm_template.go:66-82): the chart options as JSON in, the rendered objects out.
type templateArgs struct {
	JSONOpts string `pulumi:"jsonOpts"`
}

type templateResult struct {
	Result []map[string]any `pulumi:"result"`
}

// newChart renders the chart with c.rendering and registers its objects under a Chart component;
// every object waits for after (a component's DependsOn does not reach its children).
// Objects are retained on delete, like every object the program manages: `pulumi destroy`
// forgets the platform, it never uninstalls it; an object a newer chart version no longer renders
// stays in the cluster until removed by hand (kubectl delete), which the README says.
func newChart(ctx *pulumi.Context, name string, c chartSpec, after []pulumi.Resource, opts ...pulumi.ResourceOption) (*Chart, error) {
	values := map[string]any{}
	if err := yaml.Unmarshal([]byte(c.values), &values); err != nil {
		return nil, fmt.Errorf("the values of the %s chart: %w", c.chart, err)
	}
	mergeValues(values, c.computed)
	jsonOpts, err := json.Marshal(map[string]any{
		// The repository URL goes in fetch_opts.repo; the top-level "repo" is a repository's name
		// (invoke_helm_template.go:171-175 refuses a URL there).
		"chart": c.chart, "version": c.version,
		"fetch_opts":   map[string]any{"repo": c.repo, "version": c.version},
		"release_name": c.release, "namespace": c.namespace, "values": values,
		"kube_version": c.rendering.KubeVersion, "api_versions": c.rendering.APIVersions,
	})
	if err != nil {
		return nil, fmt.Errorf("the options of the %s chart: %w", c.chart, err)
	}
	ch := &Chart{}
	if err := ctx.RegisterComponentResource(chartType, name, ch, opts...); err != nil {
		return nil, err
	}
	var rendered templateResult
	if err := ctx.Invoke("kubernetes:helm:template", &templateArgs{JSONOpts: string(jsonOpts)}, &rendered, pulumi.Provider(c.rendering.Renderer)); err != nil {
		return nil, fmt.Errorf("rendering the %s chart %s from %s: %w", c.chart, c.version, c.repo, err)
	}
	source := fmt.Sprintf("the %s chart %s", c.chart, c.version)
	var crds, rest []manifests.Object
	for i, doc := range rendered.Result {
		o, err := manifests.ToObject(source, doc)
		if err != nil {
			return nil, fmt.Errorf("%s, object %d: %w", source, i+1, err)
		}
		if o.Namespace == "" && !clusterScoped(o) {
			o.Namespace = c.namespace
		}
		if o.Kind == "CustomResourceDefinition" {
			crds = append(crds, o)
		} else {
			rest = append(rest, o)
		}
	}
	for _, list := range [][]manifests.Object{crds, rest} {
		sort.SliceStable(list, func(i, j int) bool { return objectKey(list[i]) < objectKey(list[j]) })
	}
	var crdResources []pulumi.Resource
	for _, o := range append(crds, rest...) {
		deps := after
		if o.Kind == "Secret" {
			// A chart's Secret holds whatever the chart generated; its data never shows.
			o.Fields = secretFields(o.Fields)
		}
		if o.Kind != "CustomResourceDefinition" {
			// The chart's own custom resources need its CRDs served first.
			deps = append(append([]pulumi.Resource{}, after...), crdResources...)
		}
		res, err := newObject(ctx, name+":"+objectKey(o), o, pulumi.Parent(ch), pulumi.DependsOn(deps))
		if err != nil {
			return nil, err
		}
		if o.Kind == "CustomResourceDefinition" {
			crdResources = append(crdResources, res)
		}
		ch.Objects = append(ch.Objects, res)
	}
	if err := ctx.RegisterResourceOutputs(ch, pulumi.Map{"objects": pulumi.Int(len(ch.Objects))}); err != nil {
		return nil, err
	}
	return ch, nil
}

// objectKey names an object within its chart: kind, namespace and name.
func objectKey(o manifests.Object) string {
	if o.Namespace == "" {
		return o.Kind + ":" + o.Name
	}
	return o.Kind + ":" + o.Namespace + "/" + o.Name
}

// clusterScoped lists the cluster-scoped kinds the platform's charts render; everything else the
// provider's decoding leaves without a namespace lands in the chart's namespace, as `helm install`
// puts it.
func clusterScoped(o manifests.Object) bool {
	switch o.Kind {
	case "Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "PriorityClass",
		"StorageClass", "IngressClass", "GatewayClass", "ValidatingWebhookConfiguration",
		"MutatingWebhookConfiguration", "APIService":
		return true
	}
	return false
}

// secretFields marks a Secret's data as secret.
func secretFields(fields map[string]any) map[string]any {
	out := make(map[string]any, len(fields))
	for k, v := range fields {
		if k == "data" || k == "stringData" {
			out[k] = pulumi.ToSecret(pulumi.Any(v))
		} else {
			out[k] = v
		}
	}
	return out
}

// mergeValues merges over into values, as helm merges --set values over a values file.
func mergeValues(values, over map[string]any) {
	for k, v := range over {
		if sub, ok := v.(map[string]any); ok {
			if cur, ok := values[k].(map[string]any); ok {
				mergeValues(cur, sub)
				continue
			}
		}
		values[k] = v
	}
}

// CRDAPIVersions lists what the given CRDs add to the cluster's API, in the form helm's
// .Capabilities.APIVersions holds: "group/version" and "group/version/Kind" of each served
// version. Charts are rendered with it (Cilium creates its GatewayClass only when the Gateway API
// is there).
func CRDAPIVersions(crds []manifests.Object) []string {
	var out []string
	for _, crd := range crds {
		spec, _ := crd.Fields["spec"].(map[string]any)
		group, _ := spec["group"].(string)
		names, _ := spec["names"].(map[string]any)
		kind, _ := names["kind"].(string)
		versions, _ := spec["versions"].([]any)
		for _, v := range versions {
			vm, _ := v.(map[string]any)
			version, _ := vm["name"].(string)
			if served, _ := vm["served"].(bool); !served || group == "" || version == "" {
				continue
			}
			out = append(out, group+"/"+version, group+"/"+version+"/"+kind)
		}
	}
	sort.Strings(out)
	return compact(out)
}

func compact(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
