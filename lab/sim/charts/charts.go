// Package charts creates in the lab's Kubernetes API what the cluster's Helm charts would: their
// CRDs and their workloads (as objects the scheduler places and KWOK runs), so the program's
// scripts and checks act on real objects. The objects carry the names and labels the charts give
// them (cilium/cilium install/kubernetes/cilium templates: the agent DaemonSet "cilium" with
// k8s-app=cilium, the "cilium-operator" Deployment; 1Password/connect-helm-charts charts/connect;
// argoproj/argo-helm charts/argo-cd); everything else a chart renders is left out.
package charts

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

var (
	crdGVR        = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	daemonSetGVR  = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "daemonsets"}
	deploymentGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
)

// crd is a CRD the chart brings: served versions, the first is stored.
type crd struct {
	group, kind, plural string
	namespaced          bool
	versions            []string
}

// workload is a chart's DaemonSet or Deployment.
type workload struct {
	kind, name string
	labels     map[string]any
	replicas   int64
}

type chart struct {
	crds      []crd
	workloads func(values map[string]any) []workload
}

var known = map[string]chart{
	"cilium": {
		crds: []crd{
			{group: "cilium.io", kind: "CiliumLoadBalancerIPPool", plural: "ciliumloadbalancerippools", versions: []string{"v2", "v2alpha1"}},
			{group: "cilium.io", kind: "CiliumL2AnnouncementPolicy", plural: "ciliuml2announcementpolicies", versions: []string{"v2alpha1"}},
		},
		workloads: func(values map[string]any) []workload {
			return []workload{
				{kind: "DaemonSet", name: "cilium", labels: map[string]any{"k8s-app": "cilium", "app.kubernetes.io/name": "cilium-agent"}},
				{kind: "Deployment", name: "cilium-operator", labels: map[string]any{"io.cilium/app": "operator", "name": "cilium-operator"},
					replicas: intValue(values, 2, "operator", "replicas")},
			}
		},
	},
	"connect": {
		crds: []crd{{group: "onepassword.com", kind: "OnePasswordItem", plural: "onepassworditems", namespaced: true, versions: []string{"v1"}}},
		workloads: func(map[string]any) []workload {
			return []workload{
				{kind: "Deployment", name: "onepassword-connect", labels: map[string]any{"app": "onepassword-connect"}, replicas: 1},
				{kind: "Deployment", name: "onepassword-connect-operator", labels: map[string]any{"name": "onepassword-connect"}, replicas: 1},
			}
		},
	},
	"argo-cd": {
		crds: []crd{
			{group: "argoproj.io", kind: "Application", plural: "applications", namespaced: true, versions: []string{"v1alpha1"}},
			{group: "argoproj.io", kind: "AppProject", plural: "appprojects", namespaced: true, versions: []string{"v1alpha1"}},
			{group: "argoproj.io", kind: "ApplicationSet", plural: "applicationsets", namespaced: true, versions: []string{"v1alpha1"}},
		},
		workloads: func(map[string]any) []workload {
			var out []workload
			for _, n := range []string{"argocd-server", "argocd-repo-server", "argocd-redis", "argocd-applicationset-controller", "argocd-application-controller"} {
				out = append(out, workload{kind: "Deployment", name: n, labels: map[string]any{"app.kubernetes.io/name": n}, replicas: 1})
			}
			return out
		},
	},
}

func intValue(values map[string]any, def int64, path ...string) int64 {
	var cur any = values
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return def
		}
		cur = m[p]
	}
	switch v := cur.(type) {
	case float64:
		return int64(v)
	case int:
		return int64(v)
	case int64:
		return v
	}
	return def
}

// Install creates a chart's CRDs and workloads in namespace, then waits up to timeout until the
// workloads are ready.
func Install(ctx context.Context, dyn dynamic.Interface, name, namespace string, values map[string]any, timeout time.Duration) error {
	c, ok := known[name]
	if !ok {
		return fmt.Errorf("the lab knows no chart %q", name)
	}
	apply := func(ri dynamic.ResourceInterface, o map[string]any) error {
		u := &unstructured.Unstructured{Object: o}
		body, err := json.Marshal(o)
		if err != nil {
			return err
		}
		force := true
		_, err = ri.Patch(ctx, u.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "helm", Force: &force})
		return err
	}
	for _, d := range c.crds {
		scope := "Cluster"
		if d.namespaced {
			scope = "Namespaced"
		}
		var versions []any
		for i, v := range d.versions {
			versions = append(versions, map[string]any{"name": v, "served": true, "storage": i == 0,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}})
		}
		o := map[string]any{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
			"metadata": map[string]any{"name": d.plural + "." + d.group},
			"spec": map[string]any{"group": d.group, "scope": scope, "versions": versions,
				"names": map[string]any{"kind": d.kind, "plural": d.plural, "singular": lower(d.kind), "listKind": d.kind + "List"}}}
		if err := apply(dyn.Resource(crdGVR), o); err != nil {
			return fmt.Errorf("CRD %s.%s: %w", d.plural, d.group, err)
		}
	}
	ws := c.workloads(values)
	for _, w := range ws {
		spec := map[string]any{
			"selector": map[string]any{"matchLabels": w.labels},
			"template": map[string]any{"metadata": map[string]any{"labels": w.labels}, "spec": map[string]any{
				"tolerations": []any{map[string]any{"operator": "Exists"}},
				"containers":  []any{map[string]any{"name": w.name, "image": "lab.invalid/" + name + "/" + w.name}}}},
		}
		gvr := daemonSetGVR
		if w.kind == "Deployment" {
			spec["replicas"] = w.replicas
			gvr = deploymentGVR
		}
		o := map[string]any{"apiVersion": "apps/v1", "kind": w.kind,
			"metadata": map[string]any{"name": w.name, "namespace": namespace, "labels": w.labels}, "spec": spec}
		if err := apply(dyn.Resource(gvr).Namespace(namespace), o); err != nil {
			return fmt.Errorf("%s %s: %w", w.kind, w.name, err)
		}
	}
	deadline := time.Now().Add(timeout)
	for {
		pending := ""
		for _, w := range ws {
			gvr := daemonSetGVR
			if w.kind == "Deployment" {
				gvr = deploymentGVR
			}
			u, err := dyn.Resource(gvr).Namespace(namespace).Get(ctx, w.name, metav1.GetOptions{})
			if err != nil || !ready(u) {
				pending = w.kind + " " + w.name
				break
			}
		}
		if pending == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s to be ready", pending)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ready is the readiness Pulumi awaits: every scheduled DaemonSet pod ready, every Deployment
// replica ready and updated.
func ready(u *unstructured.Unstructured) bool {
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

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}
