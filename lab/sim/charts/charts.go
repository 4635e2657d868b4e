// Package charts renders, for the lab, what `helm template` renders of the cluster's charts: the
// objects the program then applies one by one (components/chart.go). It keeps the names, kinds and
// labels the charts give the objects the program's scripts and checks act on (cilium/cilium
// install/kubernetes/cilium templates: the agent DaemonSet "cilium" with k8s-app=cilium, the
// "cilium-operator" Deployment, the cilium-config ConfigMap; 1Password/connect-helm-charts
// charts/connect: its CRD from crds/, the Connect and operator Deployments, which read the
// credentials and token Secrets by the names the values give; argoproj/argo-helm charts/argo-cd:
// its CRDs and Deployments); everything else a chart renders is left out.
//
// Simplifications: every value lands in one ConfigMap per chart (the real charts spread values
// over many objects), so any values change changes exactly one object; Cilium's own CRDs are not
// rendered, as in the real chart: the operator registers them when it starts (see the world).
package charts

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Repositories are the chart repositories the program installs from; fetching a chart from any
// other fails, as `helm pull` fails for a chart its repository does not have.
var Repositories = map[string]string{
	"cilium":  "https://helm.cilium.io",
	"connect": "https://1password.github.io/connect-helm-charts",
	"argo-cd": "https://argoproj.github.io/argo-helm",
}

// crd is a CRD a chart renders: served versions, the first is stored.
type crd struct {
	group, kind, plural string
	namespaced          bool
	versions            []string
}

// CiliumCRDs are the CRDs the cilium operator registers when it starts, as far as the lab uses
// them (pkg/k8s/apis/cilium.io/client/register.go:199, run from operator/cmd/root.go:220).
var CiliumCRDs = []map[string]any{
	crdObject(crd{group: "cilium.io", kind: "CiliumLoadBalancerIPPool", plural: "ciliumloadbalancerippools", versions: []string{"v2", "v2alpha1"}}),
	crdObject(crd{group: "cilium.io", kind: "CiliumL2AnnouncementPolicy", plural: "ciliuml2announcementpolicies", versions: []string{"v2alpha1"}}),
}

// workload is a chart's DaemonSet or Deployment.
type workload struct {
	kind, name string
	labels     map[string]any
	replicas   int64
	// secrets are the Secrets its pods mount, by name.
	secrets []string
}

type chart struct {
	crds      []crd
	configMap string
	workloads func(values map[string]any) []workload
}

var known = map[string]chart{
	"cilium": {
		configMap: "cilium-config",
		workloads: func(values map[string]any) []workload {
			return []workload{
				{kind: "DaemonSet", name: "cilium", labels: map[string]any{"k8s-app": "cilium", "app.kubernetes.io/name": "cilium-agent"}},
				{kind: "Deployment", name: "cilium-operator", labels: map[string]any{"io.cilium/app": "operator", "name": "cilium-operator"},
					replicas: intValue(values, 2, "operator", "replicas")},
			}
		},
	},
	"connect": {
		crds:      []crd{{group: "onepassword.com", kind: "OnePasswordItem", plural: "onepassworditems", namespaced: true, versions: []string{"v1"}}},
		configMap: "onepassword-connect-values",
		workloads: func(values map[string]any) []workload {
			return []workload{
				{kind: "Deployment", name: "onepassword-connect", labels: map[string]any{"app": "onepassword-connect"}, replicas: 1,
					secrets: []string{stringValue(values, "op-credentials", "connect", "credentialsName")}},
				{kind: "Deployment", name: "onepassword-connect-operator", labels: map[string]any{"name": "onepassword-connect"}, replicas: 1,
					secrets: []string{stringValue(values, "onepassword-token", "operator", "token", "name")}},
			}
		},
	},
	"argo-cd": {
		crds: []crd{
			{group: "argoproj.io", kind: "Application", plural: "applications", namespaced: true, versions: []string{"v1alpha1"}},
			{group: "argoproj.io", kind: "AppProject", plural: "appprojects", namespaced: true, versions: []string{"v1alpha1"}},
			{group: "argoproj.io", kind: "ApplicationSet", plural: "applicationsets", namespaced: true, versions: []string{"v1alpha1"}},
		},
		configMap: "argocd-values",
		workloads: func(map[string]any) []workload {
			var out []workload
			for _, n := range []string{"argocd-server", "argocd-repo-server", "argocd-redis", "argocd-applicationset-controller", "argocd-application-controller"} {
				out = append(out, workload{kind: "Deployment", name: n, labels: map[string]any{"app.kubernetes.io/name": n}, replicas: 1})
			}
			return out
		},
	},
}

// Render returns the objects of chart name from repo, for release in namespace with values.
func Render(name, repo, namespace string, values map[string]any) ([]map[string]any, error) {
	c, ok := known[name]
	if !ok || Repositories[name] != repo {
		return nil, fmt.Errorf("failed to pull chart: chart %q not found in %s repository", name, repo)
	}
	var out []map[string]any
	for _, d := range c.crds {
		out = append(out, crdObject(d))
	}
	data := map[string]any{}
	flatten("", values, data)
	out = append(out, map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": c.configMap, "namespace": namespace}, "data": data})
	for _, w := range c.workloads(values) {
		var volumes, mounts []any
		for _, s := range w.secrets {
			volumes = append(volumes, map[string]any{"name": s, "secret": map[string]any{"secretName": s}})
			mounts = append(mounts, map[string]any{"name": s, "mountPath": "/secrets/" + s})
		}
		podSpec := map[string]any{
			"tolerations": []any{map[string]any{"operator": "Exists"}},
			"containers":  []any{map[string]any{"name": w.name, "image": "lab.invalid/" + name + "/" + w.name}}}
		if len(volumes) > 0 {
			podSpec["volumes"] = volumes
			podSpec["containers"].([]any)[0].(map[string]any)["volumeMounts"] = mounts
		}
		spec := map[string]any{
			"selector": map[string]any{"matchLabels": w.labels},
			"template": map[string]any{"metadata": map[string]any{"labels": w.labels}, "spec": podSpec},
		}
		if w.kind == "Deployment" {
			spec["replicas"] = w.replicas
		}
		out = append(out, map[string]any{"apiVersion": "apps/v1", "kind": w.kind,
			"metadata": map[string]any{"name": w.name, "namespace": namespace, "labels": w.labels}, "spec": spec})
	}
	return out, nil
}

func crdObject(d crd) map[string]any {
	scope := "Cluster"
	if d.namespaced {
		scope = "Namespaced"
	}
	var versions []any
	for i, v := range d.versions {
		versions = append(versions, map[string]any{"name": v, "served": true, "storage": i == 0,
			"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}})
	}
	return map[string]any{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": d.plural + "." + d.group},
		"spec": map[string]any{"group": d.group, "scope": scope, "versions": versions,
			"names": map[string]any{"kind": d.kind, "plural": d.plural, "singular": strings.ToLower(d.kind), "listKind": d.kind + "List"}}}
}

// flatten writes every leaf of values as "a.b.c": "<value>".
func flatten(prefix string, v any, out map[string]any) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			flatten(p, x[k], out)
		}
	default:
		out[prefix] = fmt.Sprint(v)
	}
}

func lookup(values map[string]any, path ...string) any {
	var cur any = values
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[p]
	}
	return cur
}

func intValue(values map[string]any, def int64, path ...string) int64 {
	switch v := lookup(values, path...).(type) {
	case float64:
		return int64(v)
	case int:
		return int64(v)
	case int64:
		return v
	}
	return def
}

func stringValue(values map[string]any, def string, path ...string) string {
	if s, ok := lookup(values, path...).(string); ok && s != "" {
		return s
	}
	return def
}

// Ready is the readiness the Kubernetes provider awaits after applying a workload (pulumi-kubernetes
// v4.32.0 provider/pkg/await/awaiters.go:185-191): a DaemonSet's scheduled pods all ready, a
// Deployment's or StatefulSet's replicas all ready and updated, for the current generation. Other
// kinds are ready once applied.
func Ready(u *unstructured.Unstructured) bool {
	switch u.GetKind() {
	case "DaemonSet", "Deployment", "StatefulSet":
	default:
		return true
	}
	gen, _, _ := unstructured.NestedInt64(u.Object, "metadata", "generation")
	obs, _, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
	if obs < gen {
		return false
	}
	if u.GetKind() == "DaemonSet" {
		desired, _, _ := unstructured.NestedInt64(u.Object, "status", "desiredNumberScheduled")
		readyN, _, _ := unstructured.NestedInt64(u.Object, "status", "numberReady")
		return desired > 0 && readyN == desired
	}
	want, _, _ := unstructured.NestedInt64(u.Object, "spec", "replicas")
	readyN, _, _ := unstructured.NestedInt64(u.Object, "status", "readyReplicas")
	updated, _, _ := unstructured.NestedInt64(u.Object, "status", "updatedReplicas")
	return readyN == want && updated == want
}
