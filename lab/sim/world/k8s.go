package world

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/constants"
	"github.com/siderolabs/talos/pkg/machinery/resources/k8s"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/util/retry"

	"github.com/siderolabs/go-kubernetes/kubernetes/ssa"
	"github.com/siderolabs/go-kubernetes/kubernetes/ssa/object"

	"homelab/lab/simkit/labevent"
	"homelab/lab/simkit/labtime"
)

// Marks the world puts on Kubernetes objects of a node that is down; the lab's KWOK stages turn
// them into Ready=False (kube.go).
const (
	downLabel      = "lab.homelab.dev/down"
	kwokAnnotation = "kwok.x-k8s.io/node"
	ownedLabels    = "talos.dev/owned-labels" // constants.go:965-972
	cordonedBy     = "talos.dev/cordoned"
)

func (w *World) kubeClient() *kube {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.kube
}

// kubeletUp is the node's kubelet registering and reporting: the Node exists with its name,
// addresses, Talos's labels and taints, and the kubelet's version; a control plane's static pods
// run. Talos adds node-role.kubernetes.io/control-plane itself and machine.nodeLabels from the
// config, owning what it set (node_label_spec.go:77-107, node_apply.go:356-464), and taints a
// control plane unless allowSchedulingOnControlPlanes (node_taint_spec.go:72-78).
func (w *World) kubeletUp(n *Node) {
	k := w.kubeClient()
	if k == nil {
		return
	}
	n.mu.Lock()
	cfg, bootID, rt := n.active, n.bootID, n.rt
	n.mu.Unlock()
	if cfg == nil || rt == nil {
		return
	}
	ctx := context.Background()
	name := cfg.hostname()
	labels := map[string]string{}
	for k, v := range cfg.p.Machine().NodeLabels() {
		labels[k] = v
	}
	if cfg.controlPlane() {
		labels[constants.LabelNodeRoleControlPlane] = ""
	}
	owned := make([]string, 0, len(labels))
	for k := range labels {
		owned = append(owned, k)
	}
	sort.Strings(owned)
	ownedJSON, _ := json.Marshal(owned)
	var taints []corev1.Taint
	if cfg.controlPlane() && !cfg.p.Cluster().ScheduleOnControlPlanes() {
		taints = append(taints, corev1.Taint{Key: constants.LabelNodeRoleControlPlane, Effect: corev1.TaintEffectNoSchedule})
	}
	maxPods := int64(110)
	if v, ok := cfg.p.Machine().Kubelet().ExtraConfig()["maxPods"]; ok {
		if f, ok := v.(int); ok {
			maxPods = int64(f)
		} else if f, ok := v.(float64); ok {
			maxPods = int64(f)
		}
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse("8"), corev1.ResourceMemory: resource.MustParse("32Gi"),
		corev1.ResourcePods: *resource.NewQuantity(maxPods, resource.DecimalSI),
	}
	nodeInfo := corev1.NodeSystemInfo{
		KubeletVersion: cfg.kubeletVersion(), OSImage: "Talos (" + n.image.Version + ")", BootID: bootID,
		ContainerRuntimeVersion: "containerd://2.1.5", KernelVersion: "6.12.57-talos", OperatingSystem: "linux", Architecture: "amd64",
	}
	nodes := k.client.CoreV1().Nodes()
	var err error
	_ = w.retry(func() error {
		_, err = nodes.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
	switch {
	case apierrors.IsNotFound(err):
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
				"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
			}, Annotations: map[string]string{kwokAnnotation: "fake", ownedLabels: string(ownedJSON)}},
			Spec: corev1.NodeSpec{Taints: taints},
			Status: corev1.NodeStatus{
				Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.Addr}, {Type: corev1.NodeHostName, Address: name}},
				NodeInfo:  nodeInfo, Capacity: capacity, Allocatable: capacity,
			},
		}
		for k, v := range labels {
			node.Labels[k] = v
		}
		if _, err := nodes.Create(ctx, node, metav1.CreateOptions{}); err != nil {
			w.kubeErr("register node", n, err)
			return
		}
		labevent.Log(w.Dir, labevent.Event{Actor: "kubelet", Op: "register", Node: n.Addr, Detail: name})
	case err != nil:
		w.kubeErr("get node", n, err)
		return
	default:
		// A conflict is tried again at once; any other failure after a moment, as a kubelet does.
		err := w.retry(func() error {
			return retry.RetryOnConflict(retry.DefaultRetry, func() error {
				cur, err := nodes.Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				node := cur.DeepCopy()
				var previous []string
				_ = json.Unmarshal([]byte(node.Annotations[ownedLabels]), &previous)
				for _, key := range previous {
					if _, keep := labels[key]; !keep {
						delete(node.Labels, key) // node_apply.go:385-391
					}
				}
				for k, v := range labels {
					node.Labels[k] = v
				}
				delete(node.Labels, downLabel)
				node.Annotations[ownedLabels] = string(ownedJSON)
				node.Spec.Taints = taints
				if node.Annotations[cordonedBy] == "true" {
					node.Spec.Unschedulable = false // node_apply.go:479-485
					delete(node.Annotations, cordonedBy)
				}
				updated, err := nodes.Update(ctx, node, metav1.UpdateOptions{})
				if err != nil {
					return err
				}
				updated.Status.NodeInfo = nodeInfo
				updated.Status.Capacity, updated.Status.Allocatable = capacity, capacity
				_, err = nodes.UpdateStatus(ctx, updated, metav1.UpdateOptions{})
				return err
			})
		})
		if err != nil {
			w.kubeErr("update node", n, err)
			return
		}
	}
	w.markPods(n, name, false)
	if cfg.controlPlane() {
		w.syncStaticPods(n, rt, cfg)
	}
}

// kubeletDown marks a node that went down: its Node and pods become not ready.
func (w *World) kubeletDown(n *Node) {
	k := w.kubeClient()
	if k == nil {
		return
	}
	n.mu.Lock()
	cfg := n.active
	n.mu.Unlock()
	if cfg == nil {
		return
	}
	name := cfg.hostname()
	patch := []byte(fmt.Sprintf(`{"metadata":{"labels":{%q:"true"}}}`, downLabel))
	if _, err := k.client.CoreV1().Nodes().Patch(context.Background(), name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
		w.kubeErr("mark node down", n, err)
	}
	w.markPods(n, name, true)
}

// markPods annotates (down) or un-annotates the pods on a node. Like a kubelet, which syncs its
// pods until it succeeds, it tries again after a failed call.
func (w *World) markPods(n *Node, nodeName string, down bool) {
	k := w.kubeClient()
	ctx := context.Background()
	value := "null"
	if down {
		value = `"true"`
	}
	patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%s}}}`, downLabel, value))
	if err := w.retry(func() error {
		pods, err := k.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + nodeName})
		if err != nil {
			return err
		}
		for _, p := range pods.Items {
			if _, has := p.Annotations[downLabel]; has == down {
				continue
			}
			if _, err := k.client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return err
			}
		}
		return nil
	}); err != nil {
		w.kubeErr(map[bool]string{true: "mark pods down", false: "mark pods up"}[down], n, err)
	}
}

// kubeletRetry paces the simulated kubelet's calls after a failure: 20 tries a quarter of a
// second apart (wall time: the API server's own pace, not the hardware's).
var kubeletRetry = wait.Backoff{Steps: 20, Duration: 250 * time.Millisecond, Factor: 1}

// retry calls f until it succeeds or kubeletRetry runs out, and returns its last error.
func (w *World) retry(f func() error) error {
	return retry.OnError(kubeletRetry, func(error) bool { return true }, f)
}

func (w *World) kubeErr(what string, n *Node, err error) {
	labevent.Log(w.Dir, labevent.Event{Actor: "kubelet", Op: "error", Node: n.Addr, Detail: what + ": " + err.Error()})
}

// syncStaticPods keeps a control plane's mirror pods in step with its config: Talos renders the
// API server, controller manager and scheduler pods from .cluster with the config resource's
// version in talos.dev/config-version (control_plane_static_pod.go:460-485,641-656,831-846), and
// the kubelet replaces a mirror pod whose static pod changed.
func (w *World) syncStaticPods(n *Node, rt *bootRuntime, cfg *machineConfig) {
	k := w.kubeClient()
	if k == nil {
		return
	}
	ctx := context.Background()
	node := cfg.hostname()
	pods := k.client.CoreV1().Pods("kube-system")
	var owner *corev1.Node
	if err := w.retry(func() (err error) {
		owner, err = k.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		return err
	}); err != nil {
		w.kubeErr("static pods", n, err)
		return
	}
	for _, c := range controlPlaneConfigs(cfg) {
		name := c.id + "-" + node
		version := rt.configVersion(c.id)
		// The kubelet keeps at its mirror pod until it matches: a failed call is tried again.
		err := w.retry(func() error {
			cur, err := pods.Get(ctx, name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				return err
			case cur.Annotations[constants.AnnotationStaticPodConfigVersion] == version && cur.Spec.Containers[0].Image == c.image:
				return nil
			default:
				if err := pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil && !apierrors.IsNotFound(err) {
					return err
				}
				if err := waitGone(ctx, func() error { _, err := pods.Get(ctx, name, metav1.GetOptions{}); return err }); err != nil {
					return err
				}
			}
			return createMirrorPod(ctx, pods, name, node, version, owner, c)
		})
		if err != nil {
			w.kubeErr("static pod "+name, n, err)
		}
	}
}

// createMirrorPod creates a control plane's mirror pod of component c.
func createMirrorPod(ctx context.Context, pods typedcorev1.PodInterface, name, node, version string, owner *corev1.Node, c controlPlaneConfig) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system",
			Labels: map[string]string{"tier": "control-plane", "k8s-app": c.id, "component": c.id,
				"app.kubernetes.io/name": c.id, "app.kubernetes.io/version": strings.TrimPrefix(imageTag(c.image), "v"),
				"app.kubernetes.io/component": "control-plane", "app.kubernetes.io/managed-by": "Talos"},
			Annotations: map[string]string{constants.AnnotationStaticPodConfigVersion: version, constants.AnnotationStaticPodSecretsVersion: "1",
				"kubernetes.io/config.mirror": version, "kubernetes.io/config.source": "http"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: node, UID: owner.UID, Controller: ptr(true)}},
		},
		Spec: corev1.PodSpec{NodeName: node, HostNetwork: true, PriorityClassName: "system-cluster-critical",
			Containers:  []corev1.Container{{Name: c.id, Image: c.image}},
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}},
	}
	_, err := pods.Create(ctx, pod, metav1.CreateOptions{})
	return err
}

func ptr[T any](v T) *T { return &v }

func waitGone(ctx context.Context, get func() error) error {
	for i := 0; i < 100; i++ {
		if err := get(); apierrors.IsNotFound(err) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("still present")
}

// applyManifests is Talos's bootstrap-manifest controller on a control plane. Up to 1.12 each
// object the config renders is created if it is missing, never updated or deleted
// (internal/app/machined/pkg/controllers/k8s/manifest_apply.go:266-278 at v1.11.5). From 1.13 it
// keeps an inventory (the ConfigMap kube-system/talos-bootstrap-manifests-inventory, read and
// written with go-kubernetes's ssa.GetInventory): an object in it is left alone, one that exists
// is added to it, and a missing one is server-side applied with the field manager "talos" and the
// annotation config.k8s.io/owning-inventory, then added (manifest_apply.go:200-378 at v1.13.9).
func (w *World) applyManifests(n *Node) {
	k := w.kubeClient()
	if k == nil {
		return
	}
	n.mu.Lock()
	cfg, rel := n.active, n.release()
	n.mu.Unlock()
	dyn, err := dynamic.NewForConfig(k.rest)
	if err != nil {
		return
	}
	ctx := context.Background()
	var inv ssa.Inventory
	var contents object.ObjMetadataSet
	if rel.appliesManifestsWithSSA() {
		if inv, err = ssa.GetInventory(ctx, k.client, "kube-system", bootstrapInventory); err != nil {
			w.kubeErr("manifest inventory", n, err)
			return
		}
		contents = inv.Get()
	}
	for _, set := range bootstrapManifests(cfg) {
		for _, o := range set.objects {
			u := &unstructured.Unstructured{Object: o}
			ri, err := resourceFor(dyn, u)
			if err != nil {
				continue
			}
			id, _ := object.RuntimeToObjMeta(u)
			if inv != nil && contents.Contains(id) {
				continue
			}
			if _, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{}); err == nil {
				if inv != nil {
					contents = contents.Union(object.ObjMetadataSet{id})
				}
				continue
			}
			if inv == nil {
				_, err = ri.Create(ctx, u, metav1.CreateOptions{FieldManager: "talos"})
			} else {
				u = u.DeepCopy()
				annotations := u.GetAnnotations()
				if annotations == nil {
					annotations = map[string]string{}
				}
				annotations[ssa.InventoryAnnotationKey] = bootstrapInventory
				u.SetAnnotations(annotations)
				if _, err = ri.Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: "talos"}); err == nil {
					contents = contents.Union(object.ObjMetadataSet{id})
				}
			}
			if err == nil {
				labevent.Log(w.Dir, labevent.Event{Actor: "talos-node", Op: "manifest", Node: n.Addr, Detail: u.GetKind() + "/" + u.GetName()})
			}
		}
	}
	if inv != nil {
		inv.Update(contents)
		if err := inv.Write(ctx); err != nil {
			w.kubeErr("manifest inventory", n, err)
		}
	}
}

// bootstrapInventory is Talos's inventory of its bootstrap manifests (constants.go:1128-1135 at v1.13.9).
const bootstrapInventory = "talos-bootstrap-manifests-inventory"

// resourceFor maps the kinds of the bootstrap manifests to their API resources.
func resourceFor(dyn dynamic.Interface, u *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gv, err := schema.ParseGroupVersion(u.GetAPIVersion())
	if err != nil {
		return nil, err
	}
	plural := map[string]string{
		"ServiceAccount": "serviceaccounts", "ConfigMap": "configmaps", "Service": "services", "DaemonSet": "daemonsets",
		"Deployment": "deployments", "ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings",
		"CustomResourceDefinition": "customresourcedefinitions", "Namespace": "namespaces", "Secret": "secrets",
	}[u.GetKind()]
	if plural == "" {
		return nil, fmt.Errorf("no resource for kind %s", u.GetKind())
	}
	r := dyn.Resource(gv.WithResource(plural))
	if ns := u.GetNamespace(); ns != "" {
		return r.Namespace(ns), nil
	}
	return r, nil
}

// Talos's drain bounds (pkg/kubernetes/kubernetes.go:38,256,271 at v1.11.5; :40,306,321-342 at
// v1.13.9, the same values): the whole drain runs under DrainTimeout; an eviction a
// PodDisruptionBudget refuses (429) is retried every evictRetry; an evicted pod gets a minute to go.
const (
	drainTimeout    = 5 * time.Minute
	evictRetry      = 5 * time.Second
	podDeletionWait = time.Minute
	podDeletionPoll = 3 * time.Second
)

// drain is Talos's cordon and drain before a legacy upgrade or a graceful reset
// (CordonAndDrainNode: v1alpha1_sequencer_tasks.go:822-851 at v1.11.5, :837-870 at v1.13.9): the
// node is cordoned by Talos's node controller (node_cordoned_spec.go:73-81, node_apply.go:466-485),
// then Drain (pkg/kubernetes/kubernetes.go:192-342 at v1.11.5, :239-342 at v1.13.9) evicts every
// pod of the node but mirror pods, pods no controller owns and DaemonSet pods, in parallel; an
// eviction a PodDisruptionBudget refuses is retried every 5 s, and once the drain's 5 minutes are
// up the pod is left with a warning and the upgrade goes on; each evicted pod gets a minute to go.
// It returns how long the drain took on hardware.
func (w *World) drain(n *Node) time.Duration {
	k := w.kubeClient()
	if k == nil {
		return 0
	}
	n.mu.Lock()
	cfg := n.active
	n.mu.Unlock()
	if cfg == nil {
		return 0
	}
	start := time.Now()
	ctx := context.Background()
	name := cfg.hostname()
	patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:"true"}},"spec":{"unschedulable":true}}`, cordonedBy))
	if _, err := k.client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return 0
	}
	pods, err := k.client.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + name})
	if err != nil {
		return 0
	}
	deadline := start.Add(labtime.Lab(drainTimeout))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var warnings []string
	for _, p := range pods.Items {
		if _, mirror := p.Annotations["kubernetes.io/config.mirror"]; mirror {
			continue
		}
		ref := metav1.GetControllerOf(&p)
		if ref == nil || ref.Kind == "DaemonSet" {
			continue
		}
		wg.Add(1)
		go func(p corev1.Pod) {
			defer wg.Done()
			if err := w.evict(ctx, k, p, deadline); err != nil {
				mu.Lock()
				warnings = append(warnings, err.Error())
				mu.Unlock()
			}
		}(p)
	}
	wg.Wait()
	took := labtime.Real(time.Since(start))
	detail := name
	if len(warnings) > 0 {
		sort.Strings(warnings)
		detail += ": WARNING: " + strings.Join(warnings, "; ")
	}
	labevent.Log(w.Dir, labevent.Event{Actor: "talos-node", Op: "drain", Node: n.Addr, Detail: detail, Start: start, End: time.Now(), Real: took})
	return took
}

// evict evicts one pod (kubernetes.go:293-316 at v1.13.9, :247-270 at v1.11.5): refused by a
// budget, it sleeps 5 s and tries again, and the first call after the drain's deadline fails with
// it, so a held pod costs at least the whole 5 minutes; evicted, it waits up to a minute for the
// pod to go (:318-342).
func (w *World) evict(ctx context.Context, k *kube, p corev1.Pod, deadline time.Time) error {
	pods := k.client.CoreV1().Pods(p.Namespace)
	grace := int64(60)
	for {
		if time.Now().After(deadline) {
			// The drain's context has run out: the next eviction call fails with it, after the
			// sleep that followed the last refusal (the sleep ignores the context).
			return fmt.Errorf("failed to evict pod %s/%s: %w", p.Namespace, p.Name, context.DeadlineExceeded)
		}
		err := pods.EvictV1(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace},
			DeleteOptions: &metav1.DeleteOptions{GracePeriodSeconds: &grace}})
		switch {
		case apierrors.IsNotFound(err):
			return nil
		case apierrors.IsTooManyRequests(err):
			time.Sleep(labtime.Lab(evictRetry))
			continue
		case err != nil:
			return fmt.Errorf("failed to evict pod %s/%s: %w", p.Namespace, p.Name, err)
		}
		break
	}
	for waited := time.Duration(0); waited < labtime.Lab(podDeletionWait); waited += labtime.Lab(podDeletionPoll) {
		cur, err := pods.Get(ctx, p.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || (err == nil && cur.UID != p.UID) {
			return nil
		}
		time.Sleep(labtime.Lab(podDeletionPoll))
	}
	return fmt.Errorf("failed waiting on pod %s/%s to be deleted: pod is still running on the node", p.Namespace, p.Name)
}

// manifestSet is one of Talos's bootstrap manifests: an ID and the objects it renders.
type manifestSet struct {
	id      string
	objects []map[string]any
}

// bootstrapManifests renders what Talos's manifest controller renders from a config
// (internal/app/machined/pkg/controllers/k8s/manifest.go:150-256 at v1.13.9, the same sets at
// v1.11.5 and v1.12.6): the kubelet bootstrap token, the CSR role bindings, the in-cluster
// kubeconfig, the Talos nodes' RBAC, CoreDNS (11-core-dns, 11-core-dns-svc), Flannel (05-flannel,
// when cluster.network.cni.name is flannel) and kube-proxy (10-kube-proxy, when the proxy is
// enabled), with the names, kinds and the fields the lab's checks read from k8stemplates/{kubelet,
// csr,kubeconfig,talos,coredns,flannel,kube-proxy}.go; the rest of each object is left out.
func bootstrapManifests(cfg *machineConfig) []manifestSet {
	c := cfg.p.Cluster()
	rbac := "rbac.authorization.k8s.io"
	binding := func(name, role string, subjects ...string) map[string]any {
		var subs []any
		for _, s := range subjects {
			subs = append(subs, map[string]any{"kind": "Group", "name": s, "apiGroup": rbac})
		}
		return map[string]any{"apiVersion": rbac + "/v1", "kind": "ClusterRoleBinding", "metadata": map[string]any{"name": name},
			"roleRef": map[string]any{"apiGroup": rbac, "kind": "ClusterRole", "name": role}, "subjects": subs}
	}
	token := c.Token()
	out := []manifestSet{
		{id: "00-kubelet-bootstrapping-token", objects: []map[string]any{{"apiVersion": "v1", "kind": "Secret",
			"metadata": map[string]any{"name": "bootstrap-token-" + token.ID(), "namespace": "kube-system"},
			"type":     "bootstrap.kubernetes.io/token",
			"stringData": map[string]any{"token-id": token.ID(), "token-secret": token.Secret(),
				"usage-bootstrap-authentication": "true", "auth-extra-groups": "system:bootstrappers:nodes"}}}},
		{id: "01-csr-node-bootstrap", objects: []map[string]any{binding("system-bootstrap-node-bootstrapper", "system:node-bootstrapper",
			"system:bootstrappers:nodes", "system:nodes")}},
		{id: "01-csr-approver-role-binding", objects: []map[string]any{binding("system-bootstrap-approve-node-client-csr",
			"system:certificates.k8s.io:certificatesigningrequests:nodeclient", "system:bootstrappers:nodes")}},
		{id: "01-csr-renewal-role-binding", objects: []map[string]any{binding("system-bootstrap-node-renewal",
			"system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", "system:nodes")}},
		{id: "11-kube-config-in-cluster", objects: []map[string]any{{"apiVersion": "v1", "kind": "ConfigMap",
			"metadata": map[string]any{"name": "kubeconfig-in-cluster", "namespace": "kube-system"},
			"data":     map[string]any{"kubeconfig": "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt\n    server: https://127.0.0.1:7445\n  name: local\n"}}}},
		{id: "11-talos-node-rbac-template", objects: []map[string]any{
			binding("system:talos-nodes", "system:talos-nodes", "system:nodes"),
			{"apiVersion": rbac + "/v1", "kind": "ClusterRole", "metadata": map[string]any{"name": "system:talos-nodes",
				"labels": map[string]any{"kubernetes.io/bootstrapping": "rbac-defaults"}},
				"rules": []any{map[string]any{"apiGroups": []any{"discovery.k8s.io"}, "resources": []any{"endpointslices"}, "verbs": []any{"get", "list", "watch"}}}},
		}},
	}
	tolerateAll := []any{map[string]any{"effect": "NoSchedule", "operator": "Exists"}, map[string]any{"effect": "NoExecute", "operator": "Exists"}}
	if c.Network().CNI().Name() == constants.FlannelCNI {
		labels := map[string]any{"k8s-app": "flannel", "tier": "node"}
		out = append(out, manifestSet{id: "05-flannel", objects: []map[string]any{
			{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": map[string]any{"name": "flannel", "labels": map[string]any{"k8s-app": "flannel"}},
				"rules": []any{map[string]any{"apiGroups": []any{""}, "resources": []any{"nodes"}, "verbs": []any{"get", "list", "watch"}}}},
			{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": map[string]any{"name": "flannel", "labels": map[string]any{"k8s-app": "flannel"}},
				"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "flannel"},
				"subjects": []any{map[string]any{"kind": "ServiceAccount", "name": "flannel", "namespace": "kube-system"}}},
			{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": map[string]any{"name": "flannel", "namespace": "kube-system", "labels": map[string]any{"k8s-app": "flannel"}}},
			{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "kube-flannel-cfg", "namespace": "kube-system", "labels": labels},
				"data": map[string]any{"net-conf.json": `{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan"}}`}},
			daemonSet("kube-flannel", labels, "kube-flannel", "ghcr.io/siderolabs/flannel:"+constants.FlannelVersion, "flannel", "system-node-critical", tolerateAll),
		}})
	}
	if c.Proxy().Enabled() {
		labels := map[string]any{"k8s-app": "kube-proxy", "tier": "node"}
		out = append(out, manifestSet{id: "10-kube-proxy", objects: []map[string]any{
			daemonSet("kube-proxy", labels, "kube-proxy", c.Proxy().Image(), "kube-proxy", "system-cluster-critical", tolerateAll),
			{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": map[string]any{"name": "kube-proxy", "namespace": "kube-system"}},
			{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": map[string]any{"name": "kube-proxy"},
				"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:node-proxier"},
				"subjects": []any{map[string]any{"kind": "ServiceAccount", "name": "kube-proxy", "namespace": "kube-system"}}},
		}})
	}
	if c.CoreDNS().Enabled() {
		labels := map[string]any{"k8s-app": "kube-dns"}
		out = append(out, manifestSet{id: "11-core-dns", objects: []map[string]any{
			{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": map[string]any{"name": "coredns", "namespace": "kube-system"}},
			{"apiVersion": rbac + "/v1", "kind": "ClusterRole", "metadata": map[string]any{"name": "system:coredns"},
				"rules": []any{map[string]any{"apiGroups": []any{""}, "resources": []any{"endpoints", "services", "pods", "namespaces"}, "verbs": []any{"list", "watch"}}}},
			{"apiVersion": rbac + "/v1", "kind": "ClusterRoleBinding", "metadata": map[string]any{"name": "system:coredns"},
				"roleRef":  map[string]any{"apiGroup": rbac, "kind": "ClusterRole", "name": "system:coredns"},
				"subjects": []any{map[string]any{"kind": "ServiceAccount", "name": "coredns", "namespace": "kube-system"}}},
			{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "coredns", "namespace": "kube-system"},
				"data": map[string]any{"Corefile": ".:53 {\n    kubernetes cluster.local in-addr.arpa ip6.arpa\n    forward . /etc/resolv.conf\n}\n"}},
			{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "coredns", "namespace": "kube-system",
				"labels": map[string]any{"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}},
				"spec": map[string]any{"replicas": int64(2), "selector": map[string]any{"matchLabels": labels},
					"template": map[string]any{"metadata": map[string]any{"labels": labels}, "spec": map[string]any{
						"serviceAccountName": "coredns", "priorityClassName": "system-cluster-critical",
						"nodeSelector": map[string]any{"kubernetes.io/os": "linux"},
						"tolerations": []any{map[string]any{"key": constants.LabelNodeRoleControlPlane, "effect": "NoSchedule"},
							map[string]any{"key": "node.cloudprovider.kubernetes.io/uninitialized", "effect": "NoSchedule", "value": "true"}},
						"containers": []any{map[string]any{"name": "coredns", "image": c.CoreDNS().Image()}}}}}},
		}}, manifestSet{id: "11-core-dns-svc", objects: []map[string]any{
			{"apiVersion": "v1", "kind": "Service", "metadata": map[string]any{"name": "kube-dns", "namespace": "kube-system",
				"labels": map[string]any{"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}},
				"spec": map[string]any{"selector": labels, "clusterIP": "10.96.0.10",
					"ports": []any{map[string]any{"name": "dns", "port": int64(53), "protocol": "UDP"}, map[string]any{"name": "dns-tcp", "port": int64(53), "protocol": "TCP"}}}},
		}})
	}
	return out
}

func daemonSet(name string, labels map[string]any, container, image, sa, priority string, tolerations []any) map[string]any {
	return map[string]any{"apiVersion": "apps/v1", "kind": "DaemonSet",
		"metadata": map[string]any{"name": name, "namespace": "kube-system", "labels": labels},
		"spec": map[string]any{"selector": map[string]any{"matchLabels": labels},
			"template": map[string]any{"metadata": map[string]any{"labels": labels}, "spec": map[string]any{
				"hostNetwork": true, "serviceAccountName": sa, "priorityClassName": priority, "tolerations": tolerations,
				"containers": []any{map[string]any{"name": container, "image": image}}}}}}
}

var _ = k8s.NamespaceName
