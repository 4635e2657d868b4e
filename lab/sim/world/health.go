package world

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cosi-project/runtime/pkg/safe"
	"github.com/siderolabs/talos/pkg/cluster"
	"github.com/siderolabs/talos/pkg/cluster/check"
	"github.com/siderolabs/talos/pkg/conditions"
	"github.com/siderolabs/talos/pkg/grpc/middleware/authz"
	clusterapi "github.com/siderolabs/talos/pkg/machinery/api/cluster"
	"github.com/siderolabs/talos/pkg/machinery/client"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
	"github.com/siderolabs/talos/pkg/machinery/constants"
	clusterres "github.com/siderolabs/talos/pkg/machinery/resources/cluster"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// clusterServer is machined's ClusterService. HealthCheck runs Talos's own checks
// (pkg/cluster/check.DefaultClusterChecks, the same code a real node runs) on the node itself, as
// internal/app/machined/internal/server/v1alpha1/v1alpha1_cluster.go:34-79 does: its Talos client
// goes through the node's own API socket, so requests for other nodes are forwarded by this
// node's apid (refused on a worker), and its Kubernetes client uses the kubeconfig this node
// serves (refused on a worker).
type clusterServer struct {
	clusterapi.UnimplementedClusterServiceServer
	rt *bootRuntime
}

func (s *clusterServer) HealthCheck(in *clusterapi.HealthCheckRequest, srv clusterapi.ClusterService_HealthCheckServer) error {
	cp := &socketClientProvider{socket: filepath.Join(s.rt.n.dir, "apid.sock")}
	defer cp.Close() //nolint:errcheck
	k8sProvider := &cluster.KubernetesClient{ClientProvider: cp, ForceEndpoint: in.GetClusterInfo().GetForceEndpoint()}
	defer k8sProvider.K8sClose() //nolint:errcheck
	ctx, cancel := context.WithTimeout(srv.Context(), in.GetWaitTimeout().AsDuration())
	defer cancel()
	md := metadata.New(nil)
	authz.SetMetadata(md, authz.GetRoles(srv.Context()))
	ctx = metadata.NewOutgoingContext(ctx, md)
	info, err := s.buildClusterInfo(ctx, in, *k8sProvider)
	if err != nil {
		return err
	}
	state := struct {
		cluster.ClientProvider
		cluster.K8sProvider
		cluster.Info
	}{cp, k8sProvider, info}
	var ips []string
	for _, ni := range info.Nodes() {
		ips = append(ips, ni.InternalIP.String())
	}
	if err := srv.Send(&clusterapi.HealthCheckProgress{Message: fmt.Sprintf("discovered nodes: %q", ips)}); err != nil {
		return err
	}
	s.rt.n.mu.Lock()
	rel := s.rt.n.release()
	s.rt.n.mu.Unlock()
	return check.Wait(ctx, &state, append(clusterChecks(rel), check.ExtraClusterChecks()...), &healthReporter{srv: srv})
}

// clusterChecks are the checks a node of release r runs. From 1.13 they skip the nodes' and
// CoreDNS's readiness while the bootstrap CNI is none (a CNI the cluster installs itself), reading
// BootstrapManifestsConfig (pkg/cluster/check/default.go at v1.13.0, commit 57599fb87); up to 1.12
// they assert both (default.go:18-66 at v1.12.6, the same at v1.11.5), which this composes from the
// check package's own assertions. Talos 1.12's conditions also had a timeout each; here the health
// request's own timeout bounds them all.
func clusterChecks(r release) []check.ClusterCheck {
	if r.atLeast(1, 13) {
		return check.DefaultClusterChecks()
	}
	present := func(kind, selector string) func(ctx context.Context, cluster check.ClusterInfo) error {
		return func(ctx context.Context, cluster check.ClusterInfo) error {
			var ok bool
			var replicas int
			var err error
			if kind == "daemonset" {
				ok, replicas, err = check.DaemonSetPresent(ctx, cluster, "kube-system", selector)
			} else {
				ok, replicas, err = check.DeploymentPresent(ctx, cluster, "kube-system", selector)
			}
			if err != nil {
				return err
			}
			if !ok {
				return conditions.ErrSkipAssertion
			}
			return check.K8sPodReadyAssertion(ctx, cluster, replicas, "kube-system", selector)
		}
	}
	return slices.Concat(check.PreBootSequenceChecks(), check.K8sComponentsReadinessChecks(), []check.ClusterCheck{
		func(cluster check.ClusterInfo) conditions.Condition {
			return conditions.PollingCondition("all k8s nodes to report ready", func(ctx context.Context) error {
				return check.K8sAllNodesReadyAssertion(ctx, cluster)
			}, 5*time.Second)
		},
		func(cluster check.ClusterInfo) conditions.Condition {
			return conditions.PollingCondition("kube-proxy to report ready", func(ctx context.Context) error {
				return present("daemonset", "k8s-app=kube-proxy")(ctx, cluster)
			}, 5*time.Second)
		},
		func(cluster check.ClusterInfo) conditions.Condition {
			return conditions.PollingCondition("coredns to report ready", func(ctx context.Context) error {
				return present("deployment", "k8s-app=kube-dns")(ctx, cluster)
			}, 5*time.Second)
		},
		func(cluster check.ClusterInfo) conditions.Condition {
			return conditions.PollingCondition("all k8s nodes to report schedulable", func(ctx context.Context) error {
				return check.K8sAllNodesSchedulableAssertion(ctx, cluster)
			}, 5*time.Second)
		},
	})
}

// healthReporter sends each changed check line (v1alpha1_cluster.go:81-96).
type healthReporter struct {
	srv      clusterapi.ClusterService_HealthCheckServer
	lastLine string
}

func (r *healthReporter) Update(c conditions.Condition) {
	line := fmt.Sprintf("waiting for %s", c)
	if line != r.lastLine {
		_ = r.srv.Send(&clusterapi.HealthCheckProgress{Message: strings.TrimSpace(line)})
		r.lastLine = line
	}
}

type clusterState struct {
	nodes  []cluster.NodeInfo
	byType map[machine.Type][]cluster.NodeInfo
}

func (c *clusterState) Nodes() []cluster.NodeInfo                     { return c.nodes }
func (c *clusterState) NodesByType(t machine.Type) []cluster.NodeInfo { return c.byType[t] }

// buildClusterInfo follows v1alpha1_cluster.go:122-195: the nodes given in the request, else the
// discovered cluster members, else the Kubernetes nodes.
func (s *clusterServer) buildClusterInfo(ctx context.Context, in *clusterapi.HealthCheckRequest, cli cluster.KubernetesClient) (cluster.Info, error) {
	cps, workers := in.GetClusterInfo().GetControlPlaneNodes(), in.GetClusterInfo().GetWorkerNodes()
	if len(cps) != 0 || len(workers) != 0 {
		cpInfos, err := cluster.IPsToNodeInfos(cps)
		if err != nil {
			return nil, err
		}
		wInfos, err := cluster.IPsToNodeInfos(workers)
		if err != nil {
			return nil, err
		}
		return &clusterState{nodes: slices.Concat(cpInfos, wInfos),
			byType: map[machine.Type][]cluster.NodeInfo{machine.TypeControlPlane: cpInfos, machine.TypeWorker: wInfos}}, nil
	}
	members, _ := safe.StateListAll[*clusterres.Member](ctx, s.rt.st)
	if members.Len() > 0 {
		return check.NewDiscoveredClusterInfo(safe.ToSlice(members, func(m *clusterres.Member) *clusterres.Member { return m }))
	}
	k8s, err := cli.K8sClient(ctx)
	if err != nil {
		return nil, err
	}
	list, err := k8s.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	st := &clusterState{byType: map[machine.Type][]cluster.NodeInfo{}}
	for _, node := range list.Items {
		ni := k8sNodeInfo(&node)
		typ := machine.TypeWorker
		if _, ok := node.Labels[constants.LabelNodeRoleControlPlane]; ok {
			typ = machine.TypeControlPlane
		}
		st.byType[typ] = append(st.byType[typ], ni)
		st.nodes = append(st.nodes, ni)
	}
	return st, nil
}

func k8sNodeInfo(node *corev1.Node) cluster.NodeInfo {
	var ni cluster.NodeInfo
	for _, a := range node.Status.Addresses {
		ip, err := netip.ParseAddr(a.Address)
		if err != nil {
			continue
		}
		switch a.Type {
		case corev1.NodeInternalIP:
			ni.InternalIP = ip
			ni.IPs = append(ni.IPs, ip)
		case corev1.NodeExternalIP:
			ni.IPs = append(ni.IPs, ip)
		}
	}
	return ni
}

// socketClientProvider is Talos's LocalClientProvider (pkg/cluster/local.go) on this node's API
// socket instead of /system/run/apid/apid.sock.
type socketClientProvider struct {
	socket string
	c      *client.Client
}

func (p *socketClientProvider) Client(endpoints ...string) (*client.Client, error) {
	if len(endpoints) > 0 {
		return nil, errors.New("custom endpoints not supported with LocalClientProvider")
	}
	var err error
	if p.c == nil {
		p.c, err = client.New(context.TODO(), client.WithUnixSocket(p.socket),
			client.WithGRPCDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
	}
	return p.c, err
}

func (p *socketClientProvider) Close() error {
	if p.c != nil {
		err := p.c.Close()
		p.c = nil
		return err
	}
	return nil
}
