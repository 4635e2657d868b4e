package world

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"homelab/lab/sim/charts"
	"homelab/lab/simkit/labevent"
)

// The Cilium 1.18.3 features the cluster uses for LoadBalancer addresses, as far as the lab checks
// them (cilium/cilium v1.18.3, commit c16016890116):
//
//   - LB-IPAM gives a LoadBalancer Service an address from a CiliumLoadBalancerIPPool whose
//     serviceSelector matches it (operator/pkg/lbipam/lbipam.go:844-900); it has no node logic.
//   - The L2 announcer on each node takes part in announcing a Service's address when a
//     CiliumL2AnnouncementPolicy selects the Service (serviceSelector, loadBalancerIPs) and the
//     node: its nodeSelector matched against the node's labels, every node when it has none
//     (pkg/l2announcer/l2announcer.go:451-477,858-915). The winner of the lease
//     cilium-l2announce-<namespace>-<service> in kube-system (:799-805) answers ARP for it.
//
// No Cilium code honours node.kubernetes.io/exclude-from-external-load-balancers here (only its
// Node IPAM does, operator/pkg/nodeipam/node_predicates.go:28-30), so the simulation does not either.
// Simplifications: the lease goes to the first candidate by name, without a real election, and the
// controller runs only while the cilium DaemonSet exists.
var (
	poolGVR   = schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumloadbalancerippools"}
	policyGVR = schema.GroupVersionResource{Group: "cilium.io", Version: "v2alpha1", Resource: "ciliuml2announcementpolicies"}
)

// runCilium reconciles LoadBalancer Services until ctx ends. It reads as Cilium's informers do,
// from the API server's watch cache (resourceVersion "0"), which costs the API server far less
// than a read from etcd, twice a second.
func (w *World) runCilium(ctx context.Context) {
	var registered types.UID
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
		if k := w.kubeClient(); k != nil {
			registered = w.registerCiliumCRDs(ctx, k, registered)
			_ = w.reconcileL2(ctx, k)
		}
	}
}

// cached reads from the API server's watch cache.
var cached = metav1.GetOptions{ResourceVersion: "0"}

// registerCiliumCRDs does what the cilium operator does when it starts: it registers Cilium's
// CRDs (pkg/k8s/apis/cilium.io/client/register.go:199, from operator/cmd/root.go:220). The chart
// does not carry them, so they exist only once an operator runs. Once per operator Deployment
// (by UID, given as done, returned once registered): a running operator does not register them
// again.
func (w *World) registerCiliumCRDs(ctx context.Context, k *kube, done types.UID) types.UID {
	op, err := k.client.AppsV1().Deployments("kube-system").Get(ctx, "cilium-operator", cached)
	if err != nil || op.Status.ReadyReplicas == 0 || op.UID == done {
		return done
	}
	dyn, err := dynamic.NewForConfig(k.rest)
	if err != nil {
		return done
	}
	for _, crd := range charts.CiliumCRDs {
		if err := applyAs(ctx, dyn, "cilium-operator", crd); err != nil {
			return done
		}
	}
	return op.UID
}

func (w *World) reconcileL2(ctx context.Context, k *kube) error {
	if _, err := k.client.AppsV1().DaemonSets("kube-system").Get(ctx, "cilium", cached); err != nil {
		return nil
	}
	dyn, err := dynamic.NewForConfig(k.rest)
	if err != nil {
		return err
	}
	list := metav1.ListOptions{ResourceVersion: "0"}
	pools, err := dyn.Resource(poolGVR).List(ctx, list)
	if err != nil {
		return nil
	}
	policies, err := dyn.Resource(policyGVR).List(ctx, list)
	if err != nil {
		return nil
	}
	services, err := k.client.CoreV1().Services("").List(ctx, list)
	if err != nil {
		return err
	}
	nodes, err := k.client.CoreV1().Nodes().List(ctx, list)
	if err != nil {
		return err
	}
	for i := range services.Items {
		svc := &services.Items[i]
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		if len(svc.Status.LoadBalancer.Ingress) == 0 {
			ip := allocate(pools.Items, services.Items, svc)
			if ip == "" {
				continue
			}
			svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip}}
			if _, err := k.client.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
				continue
			}
			labevent.Log(w.Dir, labevent.Event{Actor: "cilium", Op: "lb-ipam", Detail: svc.Namespace + "/" + svc.Name + " " + ip})
		}
		var candidates []string
		for _, p := range policies.Items {
			if !selects(p, "serviceSelector", svc.Labels) {
				continue
			}
			if lb, _, _ := unstructured.NestedBool(p.Object, "spec", "loadBalancerIPs"); !lb {
				continue
			}
			for _, n := range nodes.Items {
				if selects(p, "nodeSelector", n.Labels) && ready(&n) {
					candidates = append(candidates, n.Name)
				}
			}
		}
		sort.Strings(candidates)
		w.holdLease(ctx, k, svc, candidates)
	}
	return nil
}

// selects matches a policy's label selector (absent: everything).
func selects(p unstructured.Unstructured, field string, set map[string]string) bool {
	raw, found, _ := unstructured.NestedMap(p.Object, "spec", field)
	if !found {
		return true
	}
	var sel metav1.LabelSelector
	if err := runtimeConvert(raw, &sel); err != nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(&sel)
	return err == nil && s.Matches(labels.Set(set))
}

func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// allocate picks the first free address of a pool that selects the Service.
func allocate(pools []unstructured.Unstructured, services []corev1.Service, svc *corev1.Service) string {
	used := map[string]bool{}
	for _, s := range services {
		for _, in := range s.Status.LoadBalancer.Ingress {
			used[in.IP] = true
		}
	}
	for _, p := range pools {
		if !selects(p, "serviceSelector", svc.Labels) {
			continue
		}
		blocks, _, _ := unstructured.NestedSlice(p.Object, "spec", "blocks")
		for _, b := range blocks {
			m, _ := b.(map[string]any)
			start, err1 := netip.ParseAddr(fmt.Sprint(m["start"]))
			stop, err2 := netip.ParseAddr(fmt.Sprint(m["stop"]))
			if err1 != nil || err2 != nil {
				continue
			}
			for a := start; a.Compare(stop) <= 0; a = a.Next() {
				if !used[a.String()] {
					return a.String()
				}
			}
		}
	}
	return ""
}

// holdLease gives the announcement lease to the first candidate, keeping a holder that still is one.
func (w *World) holdLease(ctx context.Context, k *kube, svc *corev1.Service, candidates []string) {
	name := fmt.Sprintf("cilium-l2announce-%s-%s", svc.Namespace, svc.Name)
	leases := k.client.CoordinationV1().Leases("kube-system")
	cur, err := leases.Get(ctx, name, metav1.GetOptions{})
	if err == nil && cur.Spec.HolderIdentity != nil {
		for _, c := range candidates {
			if c == *cur.Spec.HolderIdentity {
				return
			}
		}
	}
	if len(candidates) == 0 {
		if err == nil {
			_ = leases.Delete(ctx, name, metav1.DeleteOptions{})
		}
		return
	}
	holder := candidates[0]
	lease := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder}}
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, lease, metav1.CreateOptions{})
	} else if err == nil {
		cur.Spec.HolderIdentity = &holder
		_, err = leases.Update(ctx, cur, metav1.UpdateOptions{})
	}
	if err == nil {
		labevent.Log(w.Dir, labevent.Event{Actor: "cilium", Op: "l2-announce", Detail: svc.Namespace + "/" + svc.Name + " by " + holder})
	}
}

func runtimeConvert(in map[string]any, out *metav1.LabelSelector) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructured(in, out)
}
