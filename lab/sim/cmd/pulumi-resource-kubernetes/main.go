// Command pulumi-resource-kubernetes simulates the Kubernetes provider plugin (pulumi-kubernetes
// 4.33.0) for the lab, against the lab's real Kubernetes API server. Source read: pulumi-kubernetes
// v4.32.0 (the proxy refuses the v4.33.0 module), provider/pkg/provider/provider.go unless named:
//
//   - Configure (:850-1030): a kubeconfig that does not parse, or a cluster whose API does not
//     answer discovery, marks the cluster unreachable; that is not an error. Create and Update then
//     fail with "configured Kubernetes cluster is unreachable" outside a preview (:1706, :2339);
//     Check and Diff work offline from the inputs (:1172-1330, :1431-1620).
//   - DiffConfig (:480-558) replaces the provider when the kubeconfig's active cluster changes,
//     unless clusterIdentifier stays the same (replaceConfig).
//   - Objects registered by type token kubernetes:<apiVersion>:<kind> are server-side applied
//     (field manager pulumi-kubernetes), so a kind whose CRD is missing fails as on a real cluster,
//     after the provider's retries; DaemonSets, Deployments and StatefulSets are then awaited until
//     ready (await/awaiters.go:185-191; 10 minutes, compressed).
//   - The kubernetes:helm:template invoke (:1076-1120, invoke_helm_template.go) renders a chart
//     (lab/sim/charts) from the repository URL in fetch_opts.repo; a URL in the top-level "repo"
//     is refused (invoke_helm_template.go:171-175). It needs no cluster.
//
// What the engine does with an unknown provider config (no Configure, invokes answered empty) is
// the real engine's own behaviour and needs nothing here. Simplification: charts are rendered from
// nothing but their name, repository and values (lab/sim/charts), never fetched.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
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
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"homelab/lab/sim/charts"
	"homelab/lab/simkit/labevent"
	"homelab/lab/simkit/labtime"
	"homelab/lab/simkit/simprov"
)

var cluster struct {
	sync.Mutex
	cfg *rest.Config
	dyn dynamic.Interface
	rm  *restmapper.DeferredDiscoveryRESTMapper
	// unreachable says why the cluster cannot be reached, when it cannot.
	unreachable string
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
		Resources:     map[string]simprov.Resource{},
		Fallback:      object,
		Configure:     configure,
		ReplaceConfig: replaceConfig,
		Functions:     map[string]func(resource.PropertyMap) (resource.PropertyMap, error){"kubernetes:helm:template": helmTemplate},
	})
}

// replaceConfig is DiffConfig's choice of replacement (provider.go:480-558): a changed
// clusterIdentifier replaces the provider (:490-491), the same identifier on both sides replaces
// nothing (:495-500); otherwise an unknown kubeconfig, context or cluster replaces (:503-515), and
// so does a change of the active cluster, the kubeconfig's whole cluster entry (server, CA and the
// rest, compared with reflect.DeepEqual, :551-558; found as util.go:201-225 finds it), for each of
// kubeconfig, context and cluster that changed. The engine then replaces every object of the
// provider (pulumi step_generator.go, providerChanged): moving a cluster's endpoint without a
// clusterIdentifier recreates everything.
func replaceConfig(olds, news resource.PropertyMap, changed []string) []string {
	const id = "clusterIdentifier"
	oldID, newID := simprov.Str(olds, id), simprov.Str(news, id)
	if slices.Contains(changed, id) && oldID != "" && newID != "" {
		return []string{id}
	}
	if oldID != "" && oldID == newID {
		return nil
	}
	var replaces []string
	keys := []string{"kubeconfig", "context", "cluster"}
	for _, k := range keys {
		if news[resource.PropertyKey(k)].ContainsUnknowns() {
			replaces = append(replaces, k)
		}
	}
	if len(replaces) > 0 {
		return replaces
	}
	oldCluster, oldFound := activeCluster(olds)
	newCluster, newFound := activeCluster(news)
	if oldFound && newFound && !reflect.DeepEqual(oldCluster, newCluster) {
		for _, k := range keys {
			if slices.Contains(changed, k) {
				replaces = append(replaces, k)
			}
		}
	}
	return replaces
}

// activeCluster is the kubeconfig's cluster entry the provider talks to: the one of the context
// input, or the current context, unless the cluster input names one.
func activeCluster(config resource.PropertyMap) (*clientcmdapi.Cluster, bool) {
	kc, err := clientcmd.Load([]byte(simprov.Str(config, "kubeconfig")))
	if err != nil {
		return nil, false
	}
	ctxName := simprov.Str(config, "context")
	if ctxName == "" {
		ctxName = kc.CurrentContext
	}
	name := simprov.Str(config, "cluster")
	if name == "" {
		c, ok := kc.Contexts[ctxName]
		if !ok {
			return nil, false
		}
		name = c.Cluster
	}
	c, ok := kc.Clusters[name]
	return c, ok
}

// configure keeps the kubeconfig the provider is given and finds out whether the cluster
// answers, as the real provider does; an unreachable cluster is not an error here.
func configure(args resource.PropertyMap) error {
	text := simprov.Str(args, "kubeconfig")
	if text == "" {
		return nil
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig([]byte(text))
	if err != nil {
		cluster.Lock()
		cluster.unreachable = "failed to parse kubeconfig data in `kubernetes:config:kubeconfig`- " + err.Error()
		cluster.Unlock()
		return nil
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
	if _, err := dc.ServerGroups(); err != nil {
		cluster.unreachable = "unable to load schema information from the API server: " + err.Error()
		return nil
	}
	cluster.cfg, cluster.dyn = cfg, dyn
	cluster.rm = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	return nil
}

func connected() (dynamic.Interface, *restmapper.DeferredDiscoveryRESTMapper, error) {
	cluster.Lock()
	defer cluster.Unlock()
	if cluster.dyn == nil {
		reason := cluster.unreachable
		if reason == "" {
			reason = "the provider has no kubeconfig"
		}
		return nil, nil, errors.New("configured Kubernetes cluster is unreachable: " + reason)
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
	u := &unstructured.Unstructured{Object: simprov.Plain(r.News)}
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
	start := time.Now()
	if _, err := ri.Patch(context.Background(), u.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: "pulumi-kubernetes", Force: &force}); err != nil {
		return nil, err
	}
	for deadline := time.Now().Add(labtime.Lab(10 * time.Minute)); ; time.Sleep(200 * time.Millisecond) {
		live, err := ri.Get(context.Background(), u.GetName(), metav1.GetOptions{})
		if err == nil && charts.Ready(live) {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("resource %s/%s was not ready within 10 minutes", u.GetNamespace(), u.GetName())
		}
	}
	labevent.Log(labevent.Dir(), labevent.Event{Actor: "kubernetes-provider", Op: "apply", Start: start, End: time.Now(), Detail: u.GetKind() + "/" + u.GetName()})
	return r.News.Copy(), nil
}

// helmTemplate renders a chart, as the provider's kubernetes:helm:template does; it needs no
// cluster.
func helmTemplate(args resource.PropertyMap) (resource.PropertyMap, error) {
	var opts struct {
		Chart     string         `json:"chart"`
		Repo      string         `json:"repo"`
		Namespace string         `json:"namespace"`
		Values    map[string]any `json:"values"`
		Fetch     struct {
			Repo string `json:"repo"`
		} `json:"fetch_opts"`
	}
	if err := json.Unmarshal([]byte(simprov.Str(args, "jsonOpts")), &opts); err != nil {
		return nil, fmt.Errorf("failed to unmarshal 'jsonOpts': %w", err)
	}
	if strings.HasPrefix(opts.Repo, "http") {
		return nil, errors.New("failed to generate YAML for specified Helm chart: 'repo' option specifies the name of the Helm Chart repo, not the URL." +
			"Use 'fetchOpts.repo' to specify a URL for a remote Chart")
	}
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	objects, err := charts.Render(opts.Chart, opts.Fetch.Repo, opts.Namespace, opts.Values)
	if err != nil {
		return nil, fmt.Errorf("failed to generate YAML for specified Helm chart: %w", err)
	}
	result := make([]any, len(objects))
	for i, o := range objects {
		result[i] = o
	}
	return resource.NewPropertyMapFromMap(map[string]any{"result": result}), nil
}
