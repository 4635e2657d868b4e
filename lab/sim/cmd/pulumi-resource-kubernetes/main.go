// Command pulumi-resource-kubernetes simulates the Kubernetes provider plugin (pulumi-kubernetes
// 4.33.0) for the lab, against the lab's real Kubernetes API server: objects registered as
// CustomResource (kubernetes:<apiVersion>:<kind>) are server-side applied, so a kind whose CRD is
// missing fails as on a real cluster, after the provider's retries; helm.sh/v4 Chart components
// create in the cluster the workloads and CRDs the chart would (the cilium DaemonSet labelled
// k8s-app=cilium and its operator, Connect and its operator, Argo CD), and complete when those
// workloads are ready, as the chart's await does.
//
// Source read: pulumi/pulumi-kubernetes v4.32.0 and main (provider/pkg/provider/provider.go; the
// proxy refuses the v4.33.0 module). What the engine does with an unknown kubeconfig during a
// preview (no Configure, every Diff "unavailable") is the real engine's behaviour and needs
// nothing here. Simplifications: a chart's objects are created directly, not registered as the
// chart's child resources; a chart is rendered from nothing but its name, version and the
// computed values, never from a chart repository.
package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/internals"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi/provider"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"

	"homelab/lab/sim/charts"
	"homelab/lab/sim/labevent"
	"homelab/lab/sim/labtime"
	"homelab/lab/sim/simprov"
)

var cluster struct {
	sync.Mutex
	cfg *rest.Config
	dyn dynamic.Interface
	rm  *restmapper.DeferredDiscoveryRESTMapper
}

func main() {
	object := &simprov.Resource{
		Replaces: []string{"apiVersion", "kind"},
		Create: func(r simprov.Request) (string, resource.PropertyMap, error) {
			out, err := apply(r)
			return objectName(r.News), out, err
		},
		Update: apply,
	}
	simprov.Main(simprov.Provider{
		Name: "kubernetes", Version: "4.33.0",
		Resources: map[string]simprov.Resource{},
		Fallback:  object,
		Construct: construct,
		Configure: configure,
	})
}

// configure keeps the kubeconfig the provider is given. An unreachable cluster is not an error
// here: the real provider marks it unreachable and fails only the operations that need it.
func configure(args resource.PropertyMap) error {
	text := simprov.Str(args, "kubeconfig")
	if text == "" {
		return nil
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig([]byte(text))
	if err != nil {
		return fmt.Errorf("failed to parse kubeconfig: %w", err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	cfg.Timeout = 10 * time.Second
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	cluster.Lock()
	defer cluster.Unlock()
	cluster.cfg, cluster.dyn = cfg, dyn
	cluster.rm = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	return nil
}

func connected() (dynamic.Interface, *restmapper.DeferredDiscoveryRESTMapper, error) {
	cluster.Lock()
	defer cluster.Unlock()
	if cluster.dyn == nil {
		return nil, nil, errors.New("configured Kubernetes cluster is unreachable: the provider has no kubeconfig")
	}
	return cluster.dyn, cluster.rm, nil
}

func objectName(m resource.PropertyMap) string {
	meta := m["metadata"]
	if meta.IsObject() {
		return simprov.Str(meta.ObjectValue(), "name")
	}
	return ""
}

// apply server-side applies one object. A kind the API does not serve (its CRD is missing) is
// retried for about a minute, compressed, then fails with the provider's message.
func apply(r simprov.Request) (resource.PropertyMap, error) {
	dyn, rm, err := connected()
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: r.News.Mappable()}
	gvk := schema.FromAPIVersionAndKind(u.GetAPIVersion(), u.GetKind())
	deadline := time.Now().Add(labtime.Lab(time.Minute))
	var mapping *meta.RESTMapping
	for {
		mapping, err = rm.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err == nil {
			break
		}
		if !meta.IsNoMatchError(err) {
			return nil, fmt.Errorf("configured Kubernetes cluster is unreachable: %w", err)
		}
		if time.Now().After(deadline) {
			labevent.Log(labevent.Dir(), labevent.Event{Actor: "kubernetes-provider", Op: "apply-refused", Detail: u.GetKind() + "/" + u.GetName()})
			return nil, fmt.Errorf("creation of resource %s/%s failed because the Kubernetes API server reported that the apiVersion for this resource does not exist. Verify that any required CRDs have been created: no matches for kind %q in version %q",
				u.GetNamespace(), u.GetName(), gvk.Kind, gvk.GroupVersion().String())
		}
		rm.Reset()
		time.Sleep(labtime.Lab(5 * time.Second))
	}
	ri := dynamic.ResourceInterface(dyn.Resource(mapping.Resource))
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := u.GetNamespace()
		if ns == "" {
			ns = "default"
		}
		ri = dyn.Resource(mapping.Resource).Namespace(ns)
	}
	body, err := u.MarshalJSON()
	if err != nil {
		return nil, err
	}
	force := true
	if _, err := ri.Patch(context.Background(), u.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "pulumi-kubernetes", Force: &force}); err != nil {
		return nil, err
	}
	labevent.Log(labevent.Dir(), labevent.Event{Actor: "kubernetes-provider", Op: "apply", Detail: u.GetKind() + "/" + u.GetName()})
	return r.News.Copy(), nil
}

type chart struct {
	pulumi.ResourceState
}

// construct installs a helm.sh/v4 Chart: its objects are created in the cluster during an update
// (never in a preview) and the component completes once its workloads are ready.
func construct(ctx *pulumi.Context, typ, name string, inputs provider.ConstructInputs, options pulumi.ResourceOption) (*provider.ConstructResult, error) {
	c := &chart{}
	if err := ctx.RegisterComponentResource(typ, name, c, options); err != nil {
		return nil, err
	}
	m, err := inputs.Map()
	if err != nil {
		return nil, err
	}
	chartName, version := plain(m["chart"]), plain(m["version"])
	values := map[string]any{}
	if v, ok := m["values"]; ok {
		if res, err := internals.UnsafeAwaitOutput(context.Background(), pulumi.ToOutput(v)); err == nil && res.Known {
			values, _ = res.Value.(map[string]any)
		}
	}
	if !ctx.DryRun() {
		dyn, _, err := connected()
		if err != nil {
			return nil, err
		}
		start := time.Now()
		if err := charts.Install(context.Background(), dyn, chartName, plain(m["namespace"]), values, labtime.Lab(10*time.Minute)); err != nil {
			return nil, fmt.Errorf("chart %s %s: %w", chartName, version, err)
		}
		labevent.Log(labevent.Dir(), labevent.Event{Actor: "kubernetes-provider", Op: "chart", Start: start, End: time.Now(), Detail: chartName + " " + version})
	}
	if err := ctx.RegisterResourceOutputs(c, pulumi.Map{"resources": pulumi.Array{}}); err != nil {
		return nil, err
	}
	return provider.NewConstructResult(c)
}

// plain resolves an input to its string value.
func plain(in pulumi.Input) string {
	if in == nil {
		return ""
	}
	res, err := internals.UnsafeAwaitOutput(context.Background(), pulumi.ToOutput(in))
	if err != nil || !res.Known {
		return ""
	}
	return strings.TrimSpace(fmt.Sprint(res.Value))
}
