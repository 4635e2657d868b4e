package world

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	cosiv1alpha1 "github.com/cosi-project/runtime/api/v1alpha1"
	"github.com/cosi-project/runtime/pkg/resource"
	"github.com/cosi-project/runtime/pkg/resource/meta"
	"github.com/cosi-project/runtime/pkg/resource/protobuf"
	"github.com/cosi-project/runtime/pkg/safe"
	"github.com/cosi-project/runtime/pkg/state"
	"github.com/cosi-project/runtime/pkg/state/impl/inmem"
	"github.com/cosi-project/runtime/pkg/state/impl/namespaced"
	cosiserver "github.com/cosi-project/runtime/pkg/state/protobuf/server"
	"github.com/cosi-project/runtime/pkg/state/registry"
	"github.com/siderolabs/talos/pkg/grpc/middleware/authz"
	"github.com/siderolabs/talos/pkg/machinery/api/cluster"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/api/storage"
	"github.com/siderolabs/talos/pkg/machinery/extensions"
	"github.com/siderolabs/talos/pkg/machinery/resources/block"
	clusterres "github.com/siderolabs/talos/pkg/machinery/resources/cluster"
	configres "github.com/siderolabs/talos/pkg/machinery/resources/config"
	"github.com/siderolabs/talos/pkg/machinery/resources/k8s"
	runtimeres "github.com/siderolabs/talos/pkg/machinery/resources/runtime"
	"github.com/siderolabs/talos/pkg/machinery/resources/v1alpha1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// bootRuntime is what one boot of a node runs: its machine API servers, its event stream and its
// COSI state. A reboot stops all of it (every open stream drops) and the next boot starts afresh.
type bootRuntime struct {
	n           *Node
	maintenance bool
	ctx         context.Context
	cancel      context.CancelFunc
	events      *eventBus
	st          state.State

	apid     *apid
	machined *grpc.Server
	sock     *grpc.Server
	newNet   func() *grpc.Server

	mu  sync.Mutex
	net *grpc.Server
}

// startRuntime starts a boot's servers. The caller holds n.mu.
func startRuntime(n *Node, maintenance bool, osCA *ca) (*bootRuntime, error) {
	dir := n.ensureDir()
	ctx, cancel := context.WithCancel(context.Background())
	rt := &bootRuntime{n: n, maintenance: maintenance, ctx: ctx, cancel: cancel, events: newEventBus(),
		st: state.WrapCore(namespaced.NewState(inmem.Build))}
	if err := rt.registerResources(); err != nil {
		cancel()
		return nil, err
	}
	if maintenance {
		// Maintenance mode serves the machine API itself, with a self-signed certificate and no
		// client authentication (internal/app/maintenance/server.go:66-81, provider.go:31-36).
		cert, err := selfSigned(net.ParseIP(n.Addr))
		if err != nil {
			cancel()
			return nil, err
		}
		creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.NoClientCert})
		rt.newNet = func() *grpc.Server {
			s := grpc.NewServer(grpc.Creds(creds))
			machine.RegisterMachineServiceServer(s, &maintenanceServer{rt: rt})
			storage.RegisterStorageServiceServer(s, &storageServer{rt: rt})
			cosiv1alpha1.RegisterStateServer(s, cosiserver.NewState(rt.st))
			return s
		}
		rt.publishStageLocked(machine.MachineStatusEvent_MAINTENANCE, true, "")
	} else {
		serving, err := osCA.issue(leafSpec{cn: n.Addr, ips: []net.IP{net.ParseIP(n.Addr)}, usage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if err != nil {
			cancel()
			return nil, err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(osCA.certPEM)
		// Only a control plane gets a client certificate for other nodes: a worker's apid forwards
		// nothing (internal/app/apid/main.go:107-116; secrets/api.go:281-320 vs :338-411).
		var client *tls.Certificate
		if n.active.controlPlane() {
			c, err := osCA.issue(leafSpec{cn: n.Addr, orgs: []string{"os:impersonator"}, usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
			if err != nil {
				cancel()
				return nil, err
			}
			client = &c.tls
		}
		machinedSock := filepath.Join(dir, "machined.sock")
		apidSock := filepath.Join(dir, "apid.sock")
		for _, s := range []string{machinedSock, apidSock} {
			_ = removeSocket(s)
		}
		machinedAuthz := &authz.Injector{Mode: authz.MetadataOnly}
		rt.machined = grpc.NewServer(grpc.UnaryInterceptor(machinedAuthz.UnaryInterceptor()), grpc.StreamInterceptor(machinedAuthz.StreamInterceptor()))
		machine.RegisterMachineServiceServer(rt.machined, &machineServer{rt: rt})
		if n.release().hasLifecycleAPI() {
			machine.RegisterImageServiceServer(rt.machined, &imageServer{rt: rt})
			machine.RegisterLifecycleServiceServer(rt.machined, &lifecycleServer{rt: rt, mu: &n.installing})
		}
		cluster.RegisterClusterServiceServer(rt.machined, &clusterServer{rt: rt})
		storage.RegisterStorageServiceServer(rt.machined, &storageServer{rt: rt})
		cosiv1alpha1.RegisterStateServer(rt.machined, cosiserver.NewState(rt.st))
		if err := serveUnix(rt.machined, machinedSock); err != nil {
			cancel()
			return nil, err
		}
		rt.apid = newAPID(n, machinedSock, client, pool, streamedMethods(n.release()))
		rt.sock = rt.apid.server(nil)
		if err := serveUnix(rt.sock, apidSock); err != nil {
			cancel()
			return nil, err
		}
		creds := credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{serving.tls}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool})
		rt.newNet = func() *grpc.Server { return rt.apid.server(creds) }
		if err := rt.syncLocked(); err != nil {
			cancel()
			return nil, err
		}
		rt.publishStageLocked(machine.MachineStatusEvent_BOOTING, false, "")
	}
	if !n.unreachable {
		if err := rt.listen(); err != nil {
			cancel()
			return nil, err
		}
	}
	return rt, nil
}

func removeSocket(path string) error { return os.Remove(path) }

func serveUnix(s *grpc.Server, path string) error {
	l, err := net.Listen("unix", path)
	if err != nil {
		return err
	}
	go func() { _ = s.Serve(l) }()
	return nil
}

func (rt *bootRuntime) listen() error {
	l, err := net.Listen("tcp", net.JoinHostPort(rt.n.Addr, "50000"))
	if err != nil {
		return fmt.Errorf("node %s: listening on the Talos API port: %w", rt.n.Addr, err)
	}
	s := rt.newNet()
	rt.mu.Lock()
	rt.net = s
	rt.mu.Unlock()
	go func() { _ = s.Serve(l) }()
	return nil
}

// setListening takes the node's API off the network, or back.
func (rt *bootRuntime) setListening(on bool) {
	rt.mu.Lock()
	s := rt.net
	rt.net = nil
	rt.mu.Unlock()
	if s != nil {
		s.Stop()
	}
	if on {
		_ = rt.listen()
	}
}

func (rt *bootRuntime) stop() {
	rt.events.close()
	rt.cancel()
	rt.setListening(false)
	if rt.sock != nil {
		rt.sock.Stop()
	}
	if rt.machined != nil {
		rt.machined.Stop()
	}
	if rt.apid != nil {
		rt.apid.close()
	}
}

// bootDone ends the boot sequence: the machine is running and ready.
func (rt *bootRuntime) bootDone() {
	rt.n.mu.Lock()
	defer rt.n.mu.Unlock()
	rt.publishStageLocked(machine.MachineStatusEvent_RUNNING, true, "")
}

func (rt *bootRuntime) publishStage(stage machine.MachineStatusEvent_MachineStage, ready bool, actorID string) {
	rt.n.mu.Lock()
	defer rt.n.mu.Unlock()
	rt.publishStageLocked(stage, ready, actorID)
}

// publishStageLocked publishes a MachineStatusEvent and updates the MachineStatus resource, as
// Talos's machine status publisher does on every change
// (internal/app/machined/pkg/controllers/runtime/machine_status_publisher.go:51-84).
func (rt *bootRuntime) publishStageLocked(stage machine.MachineStatusEvent_MachineStage, ready bool, actorID string) {
	rt.events.publish(&machine.MachineStatusEvent{Stage: stage, Status: &machine.MachineStatusEvent_MachineStatus{Ready: ready}}, actorID)
	ms := runtimeres.NewMachineStatus()
	_ = safe.StateModify(rt.ctx, rt.st, ms, func(r *runtimeres.MachineStatus) error {
		r.TypedSpec().Stage = runtimeres.MachineStage(stage)
		r.TypedSpec().Status.Ready = ready
		return nil
	})
}

// served are the resource types a node's COSI state serves, registered with their definitions
// so talosctl can resolve them by name (talosctl get).
var served = []meta.ResourceWithRD{
	&configres.MachineConfig{}, &runtimeres.MachineStatus{}, &block.VolumeStatus{}, &runtimeres.Diagnostic{},
	&runtimeres.ExtensionStatus{}, &runtimeres.SecurityState{}, &clusterres.Member{}, &k8s.StaticPodStatus{}, &k8s.StaticPod{}, &k8s.APIServerConfig{},
	&k8s.ControllerManagerConfig{}, &k8s.SchedulerConfig{}, &k8s.KubeletSpec{}, &k8s.Manifest{}, &v1alpha1.Service{},
	&k8s.Nodename{}, &k8s.BootstrapManifestsConfig{},
}

func (rt *bootRuntime) registerResources() error {
	if err := registry.NewNamespaceRegistry(rt.st).RegisterDefault(rt.ctx); err != nil {
		return err
	}
	if err := registry.NewResourceRegistry(rt.st).RegisterDefault(rt.ctx); err != nil {
		return err
	}
	reg := registry.NewResourceRegistry(rt.st)
	for _, r := range served {
		if err := reg.Register(rt.ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// ephemeralSize is the EPHEMERAL volume of the simulated machines: a 512 GB NVMe disk less the
// system partitions, comfortably above Talos's minimum (pkg/minimal/limits.go:36-38).
const ephemeralSize = 500 << 30

// syncLocked reflects the node's state in its COSI resources. The caller holds n.mu.
func (rt *bootRuntime) syncLocked() error {
	n, ctx, st := rt.n, rt.ctx, rt.st
	cfg := n.active
	if cfg == nil {
		return nil
	}
	legacy := !n.release().atLeast(1, 12)
	if err := putMachineConfig(ctx, st, cfg, configres.ActiveID, legacy); err != nil {
		return err
	}
	if n.persisted != nil && n.persistentShown {
		if err := putMachineConfig(ctx, st, n.persisted, configres.PersistentID, legacy); err != nil {
			return err
		}
	}
	if err := safe.StateModify(ctx, st, block.NewVolumeStatus(block.NamespaceName, "EPHEMERAL"), func(r *block.VolumeStatus) error {
		r.TypedSpec().Phase = block.VolumePhaseReady
		r.TypedSpec().Size = ephemeralSize
		return nil
	}); err != nil {
		return err
	}
	if err := safe.StateModify(ctx, st, runtimeres.NewSecurityStateSpec(runtimeres.NamespaceName), func(r *runtimeres.SecurityState) error {
		r.TypedSpec().SecureBoot = n.image.SecureBoot
		r.TypedSpec().BootedWithUKI = n.bootsUKI()
		return nil
	}); err != nil {
		return err
	}
	// Image Factory images carry their schematic ID as an extension named "schematic".
	if err := safe.StateModify(ctx, st, runtimeres.NewExtensionStatus(runtimeres.NamespaceName, "0"), func(r *runtimeres.ExtensionStatus) error {
		*r.TypedSpec() = extensions.Layer{Image: "0", Metadata: extensions.Metadata{Name: "schematic", Version: n.image.Schematic, Description: "Image Factory schematic"}}
		return nil
	}); err != nil {
		return err
	}
	if err := safe.StateModify(ctx, st, k8s.NewKubeletSpec(k8s.NamespaceName, k8s.KubeletID), func(r *k8s.KubeletSpec) error {
		r.TypedSpec().Image = cfg.p.Machine().Kubelet().Image()
		r.TypedSpec().ExpectedNodename = cfg.hostname()
		r.TypedSpec().Args = kubeletArgs(cfg)
		return nil
	}); err != nil {
		return err
	}
	// The node's Kubernetes name, which talosctl reads to drain it (k8s/nodename.go;
	// cmd/talosctl/pkg/talos/nodedrain/nodedrain.go:52-63 at v1.13.0).
	if err := safe.StateModify(ctx, st, k8s.NewNodename(k8s.NamespaceName, k8s.NodenameID), func(r *k8s.Nodename) error {
		r.TypedSpec().Nodename = cfg.hostname()
		return nil
	}); err != nil {
		return err
	}
	if err := safe.StateModify(ctx, st, v1alpha1.NewService("kubelet"), func(r *v1alpha1.Service) error {
		r.TypedSpec().Running, r.TypedSpec().Healthy = true, true
		return nil
	}); err != nil {
		return err
	}
	if !cfg.controlPlane() {
		return nil
	}
	// What the manifest controller renders from (controllers/k8s/control_plane.go); 1.13's
	// health checks read its CNI (pkg/cluster/check/default.go at v1.13.0).
	if err := safe.StateModify(ctx, st, k8s.NewBootstrapManifestsConfig(), func(r *k8s.BootstrapManifestsConfig) error {
		c := cfg.p.Cluster()
		r.TypedSpec().CNIName = c.Network().CNI().Name()
		r.TypedSpec().ProxyEnabled = c.Proxy().Enabled()
		r.TypedSpec().CoreDNSEnabled = c.CoreDNS().Enabled()
		r.TypedSpec().FlannelEnabled = c.Network().CNI().Name() == "flannel"
		r.TypedSpec().Server = c.Endpoint().String()
		return nil
	}); err != nil {
		return err
	}
	for _, c := range controlPlaneConfigs(cfg) {
		if err := c.modify(ctx, st); err != nil {
			return err
		}
		// The static pod Talos renders: upgrade-k8s checks its command for flags the next
		// Kubernetes removes (go-kubernetes kubernetes/upgrade/checks.go:369-395 at v0.2.38).
		if err := safe.StateModify(ctx, st, k8s.NewStaticPod(k8s.NamespaceName, c.id), func(r *k8s.StaticPod) error {
			r.TypedSpec().Pod = staticPod(c.id, c.image, c.command)
			return nil
		}); err != nil {
			return err
		}
		id := "kube-system/" + c.id + "-" + cfg.hostname()
		if err := safe.StateModify(ctx, st, k8s.NewStaticPodStatus(k8s.NamespaceName, id), func(r *k8s.StaticPodStatus) error {
			r.TypedSpec().PodStatus = map[string]any{"phase": "Running"}
			return nil
		}); err != nil {
			return err
		}
	}
	return rt.syncManifestsLocked()
}

// controlPlaneConfig is one of the control-plane component configs Talos renders from .cluster
// (the COSI resources APIServerConfig, ControllerManagerConfig, SchedulerConfig).
type controlPlaneConfig struct {
	id      string
	image   string
	command []string
	modify  func(ctx context.Context, st state.State) error
}

func controlPlaneConfigs(cfg *machineConfig) []controlPlaneConfig {
	c := cfg.p.Cluster()
	api, cm, sched := c.APIServer().Image(), c.ControllerManager().Image(), c.Scheduler().Image()
	return []controlPlaneConfig{
		{id: k8s.APIServerID, image: api, command: commandLine(k8s.APIServerID, c.APIServer().ExtraArgs()), modify: func(ctx context.Context, st state.State) error {
			return safe.StateModify(ctx, st, k8s.NewAPIServerConfig(), func(r *k8s.APIServerConfig) error {
				r.TypedSpec().Image = api
				r.TypedSpec().ControlPlaneEndpoint = c.Endpoint().String()
				return nil
			})
		}},
		{id: k8s.ControllerManagerID, image: cm, command: commandLine(k8s.ControllerManagerID, c.ControllerManager().ExtraArgs()), modify: func(ctx context.Context, st state.State) error {
			return safe.StateModify(ctx, st, k8s.NewControllerManagerConfig(), func(r *k8s.ControllerManagerConfig) error {
				r.TypedSpec().Enabled, r.TypedSpec().Image = true, cm
				return nil
			})
		}},
		{id: k8s.SchedulerID, image: sched, command: commandLine(k8s.SchedulerID, c.Scheduler().ExtraArgs()), modify: func(ctx context.Context, st state.State) error {
			return safe.StateModify(ctx, st, k8s.NewSchedulerConfig(), func(r *k8s.SchedulerConfig) error {
				r.TypedSpec().Enabled, r.TypedSpec().Image = true, sched
				return nil
			})
		}},
	}
}

// configVersion is the COSI version of a control-plane config resource: the value Talos puts in
// its static pods' talos.dev/config-version annotation (control_plane_static_pod.go:463-467).
func (rt *bootRuntime) configVersion(id string) string {
	var typ resource.Type
	switch id {
	case k8s.APIServerID:
		typ = k8s.APIServerConfigType
	case k8s.ControllerManagerID:
		typ = k8s.ControllerManagerConfigType
	default:
		typ = k8s.SchedulerConfigType
	}
	r, err := rt.st.Get(rt.ctx, resource.NewMetadata(k8s.ControlPlaneNamespaceName, typ, id, resource.VersionUndefined))
	if err != nil {
		return "0"
	}
	return strconv.FormatUint(r.Metadata().Version().Value(), 10)
}

// syncManifestsLocked publishes the bootstrap manifests the node's config renders.
func (rt *bootRuntime) syncManifestsLocked() error {
	for _, m := range bootstrapManifests(rt.n.active) {
		if err := safe.StateModify(rt.ctx, rt.st, k8s.NewManifest(k8s.ControlPlaneNamespaceName, m.id), func(r *k8s.Manifest) error {
			r.TypedSpec().Items = nil
			for _, o := range m.objects {
				r.TypedSpec().Items = append(r.TypedSpec().Items, k8s.SingleManifest{Object: o})
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// syncMembers publishes the cluster's members (discovery) on this node.
func (rt *bootRuntime) syncMembers(members []memberInfo) {
	existing, _ := safe.StateListAll[*clusterres.Member](rt.ctx, rt.st)
	keep := map[string]bool{}
	for _, m := range members {
		keep[m.name] = true
		_ = safe.StateModify(rt.ctx, rt.st, clusterres.NewMember(clusterres.NamespaceName, m.name), func(r *clusterres.Member) error {
			r.TypedSpec().NodeID = m.name
			r.TypedSpec().Hostname = m.name
			r.TypedSpec().Addresses = []netip.Addr{netip.MustParseAddr(m.addr)}
			r.TypedSpec().MachineType = m.typ
			r.TypedSpec().OperatingSystem = "Talos (" + m.version + ")"
			return nil
		})
	}
	for it := existing.Iterator(); it.Next(); {
		if !keep[it.Value().Metadata().ID()] {
			_ = rt.st.Destroy(rt.ctx, it.Value().Metadata())
		}
	}
}

// restartKubelet is a kubelet restart after a live change to its spec: the Service resource goes
// away while the kubelet is stopped and comes back running (kubelet_service.go:146-219;
// controllers/v1alpha1/service.go:72-92).
func (rt *bootRuntime) restartKubelet(image string) {
	_ = rt.st.Destroy(rt.ctx, v1alpha1.NewService("kubelet").Metadata())
	_ = safe.StateModify(rt.ctx, rt.st, k8s.NewKubeletSpec(k8s.NamespaceName, k8s.KubeletID), func(r *k8s.KubeletSpec) error {
		r.TypedSpec().Image = image
		return nil
	})
	time.Sleep(100 * time.Millisecond)
	_ = safe.StateModify(rt.ctx, rt.st, v1alpha1.NewService("kubelet"), func(r *v1alpha1.Service) error {
		r.TypedSpec().Running, r.TypedSpec().Healthy = true, true
		return nil
	})
}

// putMachineConfig creates or replaces a MachineConfig resource (the resource has no setter: a
// new one takes the current version, which Update then bumps). Its spec is the config's YAML as a
// string, marked by the annotation talos.dev/yaml-spec, from Talos 1.12
// (pkg/machinery/resources/config/machine_config.go:43-71 at v1.12.6); up to 1.11 it is the
// config's YAML itself (:43-46 at v1.11.5, MarshalYAMLBytes), which is what talosctl 1.11 reads.
func putMachineConfig(ctx context.Context, st state.State, cfg *machineConfig, id resource.ID, legacy bool) error {
	var r resource.Resource = configres.NewMachineConfigWithID(cfg.p, id)
	if legacy {
		pb, err := protobuf.FromResource(r)
		if err != nil {
			return err
		}
		wire, err := pb.Marshal()
		if err != nil {
			return err
		}
		delete(wire.Metadata.Annotations, "talos.dev/yaml-spec")
		wire.Spec.YamlSpec = string(cfg.bytes)
		if r, err = protobuf.Unmarshal(wire); err != nil {
			return err
		}
	}
	cur, err := st.Get(ctx, r.Metadata())
	if state.IsNotFoundError(err) {
		return st.Create(ctx, r)
	}
	if err != nil {
		return err
	}
	r.Metadata().SetVersion(cur.Metadata().Version())
	return st.Update(ctx, r)
}
