package world

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/siderolabs/talos/pkg/kubeconfig"
	"github.com/siderolabs/talos/pkg/machinery/api/common"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/api/storage"
	"github.com/siderolabs/talos/pkg/machinery/config/configdiff"
	"github.com/siderolabs/talos/pkg/machinery/config/validation"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"homelab/lab/simkit/labevent"
	"homelab/lab/simkit/labtime"
)

// metalMode is Talos's metal runtime mode for validation. An installed node no longer requires
// .machine.install (the modeWrapper of v1alpha1_server.go:158-167,193-196).
type metalMode struct{ installed bool }

func (m metalMode) String() string        { return "metal" }
func (m metalMode) RequiresInstall() bool { return !m.installed }
func (m metalMode) InContainer() bool     { return false }

var _ validation.RuntimeMode = metalMode{}

// machineServer is machined's MachineService on a configured node
// (internal/app/machined/internal/server/v1alpha1/v1alpha1_server.go).
type machineServer struct {
	machine.UnimplementedMachineServiceServer
	rt *bootRuntime
}

func (s *machineServer) node() *Node { return s.rt.n }

// checkControlplane refuses control-plane-only APIs on a worker (v1alpha1_server.go:131-140).
func (s *machineServer) checkControlplane(api string) error {
	n := s.node()
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.active.controlPlane() {
		return status.Errorf(codes.Unimplemented, "%s is only available on control plane nodes", api)
	}
	return nil
}

// Version reports the installed Talos (v1alpha1_server.go:1177-1205).
func (s *machineServer) Version(context.Context, *emptypb.Empty) (*machine.VersionResponse, error) {
	return &machine.VersionResponse{Messages: []*machine.Version{s.node().version()}}, nil
}

func (n *Node) version() *machine.Version {
	n.mu.Lock()
	defer n.mu.Unlock()
	return &machine.Version{
		Version:  &machine.VersionInfo{Tag: n.image.Version, Sha: "lab", Built: "", GoVersion: "go1.24", Os: "linux", Arch: "amd64"},
		Platform: &machine.PlatformInfo{Name: "metal", Mode: "metal"},
		Features: &machine.FeaturesInfo{Rbac: true},
	}
}

// ApplyConfiguration follows v1alpha1_server.go:172-317 at v1.11.5 (:173-318 at v1.12.6, the same;
// :178-345 at v1.13.9, which adds one apply at a time and none after an apply with a reboot).
func (s *machineServer) ApplyConfiguration(ctx context.Context, in *machine.ApplyConfigurationRequest) (*machine.ApplyConfigurationResponse, error) {
	n := s.node()
	n.mu.Lock()
	rel := n.release()
	if rel.appliesOneAtATime() {
		switch {
		case n.applying:
			n.mu.Unlock()
			return nil, status.Error(codes.FailedPrecondition, "another apply configuration is already in progress") // :183-185
		case n.rebootPending:
			n.mu.Unlock()
			return nil, status.Error(codes.FailedPrecondition, "configuration was already applied and node is rebooting, cannot apply more configuration changes until next reboot") // :188-190
		}
		n.applying = true
		defer func() { n.mu.Lock(); n.applying = false; n.mu.Unlock() }()
	}
	n.mu.Unlock()
	mode := in.Mode
	modeDetails := "Applied configuration with a reboot"
	modeErr := ""
	cfg, err := parseConfig(in.GetData())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error()) // :181-184
	}
	if cfg.p.RawV1Alpha1() == nil {
		return nil, status.Error(codes.InvalidArgument, "the applied machine configuration doesn't contain v1alpha1 config, did you mean to patch the machine config instead?") // :189-191
	}
	n.mu.Lock()
	installed, current := n.installed, n.active
	n.mu.Unlock()
	if err := rel.validate(in.GetData()); err != nil { // the release's own loader and checks
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	warnings, err := cfg.p.Validate(metalMode{installed: installed}) // :198-201
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	// RuntimeValidate (:203-206) checks the config against the node's live resources (disks,
	// network links); the simulated nodes have none it could refuse, so it is not run.
	switch mode { // :211-237
	case machine.ApplyConfigurationRequest_TRY, machine.ApplyConfigurationRequest_NO_REBOOT:
		if err := canApplyImmediate(current.p, cfg.p); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
		modeDetails = "Applied configuration without a reboot"
	case machine.ApplyConfigurationRequest_STAGED:
		modeDetails = "Staged configuration to be applied after the next reboot"
	case machine.ApplyConfigurationRequest_AUTO:
		if err := canApplyImmediate(current.p, cfg.p); err != nil {
			mode = machine.ApplyConfigurationRequest_REBOOT
			modeErr = ": " + err.Error()
		} else {
			mode = machine.ApplyConfigurationRequest_NO_REBOOT
			modeDetails = "Applied configuration without a reboot"
		}
	}
	if in.DryRun { // :239-255
		diff, err := configdiff.DiffConfigs(current.p, cfg.p)
		if err != nil {
			return nil, fmt.Errorf("failed to generate diff: %w", err)
		}
		if diff == "" {
			diff = "No changes."
		} else {
			diff = "Config diff:\n\n" + diff
		}
		return &machine.ApplyConfigurationResponse{Messages: []*machine.ApplyConfiguration{{
			Mode:        mode,
			ModeDetails: fmt.Sprintf("Dry run summary:\n%s (skipped in dry-run).\n%s", modeDetails, diff),
		}}}, nil
	}
	start := time.Now()
	switch mode { // :260-306
	case machine.ApplyConfigurationRequest_TRY:
		// TRY sets the config in effect only and reverts after the timeout (:263-274).
		timeout := time.Minute
		if in.TryModeTimeout != nil {
			timeout = in.TryModeTimeout.AsDuration()
		}
		modeDetails += fmt.Sprintf("\nThe config is applied in 'try' mode and will be automatically reverted back in %s", timeout)
		n.mu.Lock()
		boot := n.bootID
		n.mu.Unlock()
		n.w.applyLive(n, cfg, false)
		go func() {
			time.Sleep(labtime.Lab(timeout))
			// The rollback timer lives in machined's memory (v1alpha1_runtime.go:80-93): a
			// reboot (an upgrade) before it fires ends it, and the node boots from STATE.
			n.mu.Lock()
			same := n.bootID == boot
			n.mu.Unlock()
			if same {
				n.w.applyLive(n, current, false)
			}
		}()
	case machine.ApplyConfigurationRequest_NO_REBOOT:
		n.w.applyLive(n, cfg, true)
	case machine.ApplyConfigurationRequest_STAGED:
		n.mu.Lock()
		changed := n.persisted == nil || string(n.persisted.bytes) != string(cfg.bytes)
		n.persisted, n.persistentShown = cfg, true
		if n.rt != nil {
			_ = n.rt.syncLocked()
		}
		n.mu.Unlock()
		n.log("apply-staged", map[bool]string{true: "changed", false: "unchanged"}[changed], start, 0)
	case machine.ApplyConfigurationRequest_REBOOT:
		n.mu.Lock()
		n.persisted = cfg
		n.rebootPending = rel.appliesOneAtATime() // :327 at v1.13.9
		n.mu.Unlock()
		// The reboot runs in the background: the call returns before it happens (:297-303).
		actor := uuid.NewString()
		n.log("apply-reboot", strings.TrimPrefix(modeErr, ": "), start, 0)
		n.reboot(actor, "apply-config with a reboot")
	default:
		return nil, fmt.Errorf("incorrect mode '%s' specified for the apply config call", mode.String())
	}
	return &machine.ApplyConfigurationResponse{Messages: []*machine.ApplyConfiguration{{
		Mode: mode, Warnings: warnings, ModeDetails: modeDetails + modeErr,
	}}}, nil
}

// Bootstrap follows v1alpha1_server.go:416-449.
func (s *machineServer) Bootstrap(ctx context.Context, in *machine.BootstrapRequest) (*machine.BootstrapResponse, error) {
	n := s.node()
	n.mu.Lock()
	cp, hasData, snapshot := n.active.controlPlane(), n.etcd, n.recovery
	n.mu.Unlock()
	if !cp {
		return nil, status.Error(codes.FailedPrecondition, "bootstrap can only be performed on a control plane node") // :423-425
	}
	if hasData {
		return nil, status.Error(codes.AlreadyExists, "etcd data directory is not empty") // :434-436
	}
	if in.GetRecoverEtcd() {
		// The etcd service restores the uploaded snapshot before it starts (services/etcd.go:485-489,
		// 545-576). Simplification: a snapshot that fails its check fails this call, where Talos
		// answers and its etcd service then fails.
		if snapshot == "" {
			return nil, status.Error(codes.Internal, "error verifying snapshot: open /var/lib/etcd.snapshot: no such file or directory")
		}
		if err := n.w.recoverEtcd(n, snapshot, in.GetRecoverSkipHashCheck()); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		return &machine.BootstrapResponse{Messages: []*machine.Bootstrap{{}}}, nil
	}
	if err := n.w.bootstrap(n); err != nil {
		return nil, err
	}
	return &machine.BootstrapResponse{Messages: []*machine.Bootstrap{{}}}, nil
}

// EtcdSnapshot streams the cluster's etcd snapshot from the node's own etcd
// (v1alpha1_server.go:1900-1934 at v1.11.5, :1972 at v1.13.9): a control plane whose etcd runs on
// its data; the local member serves it without a quorum.
func (s *machineServer) EtcdSnapshot(_ *machine.EtcdSnapshotRequest, srv grpc.ServerStreamingServer[common.Data]) error {
	if err := s.checkControlplane("etcd snapshot"); err != nil {
		return err
	}
	n := s.node()
	if !n.etcdMember() {
		return status.Error(codes.Unavailable, "failed to create etcd client: etcd is not running on this node")
	}
	k := n.w.kubeClient()
	if k == nil {
		return status.Error(codes.Unavailable, "failed to create etcd client: etcd is not running on this node")
	}
	rd, err := k.snapshot(srv.Context())
	if err != nil {
		return status.Errorf(codes.Unavailable, "failed reading etcd snapshot: %v", err)
	}
	defer rd.Close()
	buf := make([]byte, 4096)
	for {
		m, err := rd.Read(buf)
		if m > 0 {
			if err := srv.Send(&common.Data{Bytes: slices.Clone(buf[:m])}); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			labevent.Log(n.w.Dir, labevent.Event{Actor: "talos-node", Op: "etcd-snapshot", Node: n.Addr})
			return nil
		}
		if err != nil {
			return status.Errorf(codes.Internal, "failed reading etcd snapshot: %v", err)
		}
	}
}

// EtcdRecover takes the snapshot a recovery bootstraps from, written to /var/lib/etcd.snapshot
// (v1alpha1_server.go:1939-2000 at v1.11.5): on a control plane, not checked until the bootstrap.
func (s *machineServer) EtcdRecover(srv grpc.ClientStreamingServer[common.Data, machine.EtcdRecoverResponse]) error {
	if err := s.checkControlplane("etcd recover"); err != nil {
		return err
	}
	n := s.node()
	path := filepath.Join(n.ensureDir(), "etcd.snapshot")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o700)
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	for {
		msg, err := srv.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil {
			_, err = f.Write(msg.GetBytes())
		}
		if err != nil {
			f.Close()
			_ = os.Remove(path)
			return err
		}
	}
	if err := f.Close(); err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	n.mu.Lock()
	n.recovery = path
	n.mu.Unlock()
	return srv.SendAndClose(&machine.EtcdRecoverResponse{Messages: []*machine.EtcdRecover{{}}})
}

// Reboot starts the reboot sequence and returns at once (v1alpha1_server.go:342-370).
func (s *machineServer) Reboot(ctx context.Context, in *machine.RebootRequest) (*machine.RebootResponse, error) {
	actor := uuid.NewString()
	s.node().reboot(actor, "reboot API")
	return &machine.RebootResponse{Messages: []*machine.Reboot{{ActorId: actor}}}, nil
}

// Upgrade is the legacy upgrade API (v1alpha1_server.go:485-574 at v1.11.5, :486-575 at v1.12.6,
// :508-622 at v1.13.9, deprecated there for LifecycleService). Before it answers, the node pulls
// the installer image, synchronously (:498; a tag the registry does not serve fails after one
// more try, internal/pkg/install/pull.go:40), and checks that it runs as an installer; a control
// plane then refuses unless etcd can lose a member (internal/pkg/etcd/etcd.go:95-121) unless
// forced (and, from v1.13.4, preserved: :539). Everything else happens after the answer, in the
// upgrade sequence: the drain, stopping the node, the installer with its pre-flight check, the
// reboot (n.upgrade).
func (s *machineServer) Upgrade(ctx context.Context, in *machine.UpgradeRequest) (*machine.UpgradeResponse, error) {
	n := s.node()
	n.mu.Lock()
	rel, installed, cp := n.release(), n.installed, n.active.controlPlane()
	n.mu.Unlock()
	if rel.hasLifecycleAPI() && !installed {
		return nil, status.Error(codes.FailedPrecondition, "Talos is not installed") // :522-524 at v1.13.9
	}
	if err := n.pull(ctx, in.GetImage()); err != nil {
		return nil, fmt.Errorf("error validating installer image %q: %w", in.GetImage(), err)
	}
	img, err := parseInstaller(in.GetImage())
	if err != nil {
		return nil, fmt.Errorf("error validating installer image %q: installer help returned non-zero exit. assuming invalid installer", in.GetImage())
	}
	preserveSkips := rel.atLeast(1, 13) && in.GetPreserve()
	if cp && !in.GetForce() && !preserveSkips {
		if err := n.w.validateEtcdForUpgrade(); err != nil {
			return nil, fmt.Errorf("error validating etcd for upgrade: %w", err)
		}
	}
	actor := uuid.NewString()
	n.upgrade(actor, img)
	return &machine.UpgradeResponse{Messages: []*machine.Upgrade{{Ack: "Upgrade request received", ActorId: actor}}}, nil
}

// Reset follows v1alpha1_server.go:606-703.
func (s *machineServer) Reset(ctx context.Context, in *machine.ResetRequest) (*machine.ResetResponse, error) {
	var labels []string
	for _, p := range in.GetSystemPartitionsToWipe() {
		if p.GetWipe() {
			labels = append(labels, p.GetLabel())
		}
	}
	actor := uuid.NewString()
	s.node().reset(actor, in.GetGraceful(), in.GetReboot(), labels)
	return &machine.ResetResponse{Messages: []*machine.Reset{{ActorId: actor}}}, nil
}

// Read serves the one file talosctl's trackers read, the boot ID (cmd/talosctl/pkg/talos/action/tracker.go:35).
func (s *machineServer) Read(in *machine.ReadRequest, srv machine.MachineService_ReadServer) error {
	if in.GetPath() != "/proc/sys/kernel/random/boot_id" {
		return status.Errorf(codes.NotFound, "lab: the simulated node has no file %s", in.GetPath())
	}
	n := s.node()
	n.mu.Lock()
	id := n.bootID
	n.mu.Unlock()
	return srv.Send(&common.Data{Bytes: []byte(id + "\n")})
}

// Events streams the boot's events: an empty hello event first, then the requested tail and every
// new event (v1alpha1_server.go:1391-1461).
func (s *machineServer) Events(in *machine.EventsRequest, srv machine.MachineService_EventsServer) error {
	if err := srv.Send(&machine.Event{ActorId: in.GetWithActorId()}); err != nil {
		return err
	}
	past, ch, cancel := s.rt.events.watch(int(in.GetTailEvents()))
	defer cancel()
	send := func(e *machine.Event) error {
		if in.GetWithActorId() != "" && e.ActorId != in.GetWithActorId() {
			return nil
		}
		return srv.Send(e)
	}
	for _, e := range past {
		if err := send(e); err != nil {
			return err
		}
	}
	for {
		select {
		case <-srv.Context().Done():
			return srv.Context().Err()
		case e, ok := <-ch:
			if !ok {
				return nil
			}
			if err := send(e); err != nil {
				return err
			}
		}
	}
}

// Kubeconfig serves the admin kubeconfig as a .tar.gz with one file, generated by Talos's own
// kubeconfig.GenerateAdmin from the node's config (v1alpha1_server.go:1208-1249).
func (s *machineServer) Kubeconfig(_ *emptypb.Empty, srv machine.MachineService_KubeconfigServer) error {
	if err := s.checkControlplane("kubeconfig"); err != nil {
		return err
	}
	n := s.node()
	n.mu.Lock()
	cfg := n.active
	n.mu.Unlock()
	var b bytes.Buffer
	if err := kubeconfig.GenerateAdmin(cfg.p.Cluster(), &b); err != nil {
		return err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "kubeconfig", Size: int64(b.Len()), ModTime: time.Now(), Mode: 0o600}); err != nil {
		return err
	}
	if _, err := io.Copy(tw, &b); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return srv.Send(&common.Data{Bytes: buf.Bytes()})
}

// EtcdMemberList follows v1alpha1_server.go:1761-1807.
func (s *machineServer) EtcdMemberList(ctx context.Context, in *machine.EtcdMemberListRequest) (*machine.EtcdMemberListResponse, error) {
	if err := s.checkControlplane("member list"); err != nil {
		return nil, err
	}
	if !s.node().etcdMember() {
		return nil, status.Error(codes.Unavailable, "etcd is not running on this node")
	}
	return &machine.EtcdMemberListResponse{Messages: []*machine.EtcdMembers{{Members: s.node().w.etcdMembers()}}}, nil
}

// EtcdLeaveCluster removes the node's own member, stops etcd and removes its data
// (v1alpha1_server.go:1840-1863; internal/pkg/etcd/etcd.go:152-194).
func (s *machineServer) EtcdLeaveCluster(ctx context.Context, _ *machine.EtcdLeaveClusterRequest) (*machine.EtcdLeaveClusterResponse, error) {
	if err := s.checkControlplane("etcd leave"); err != nil {
		return nil, err
	}
	if err := s.node().w.etcdLeave(s.node()); err != nil {
		return nil, err
	}
	return &machine.EtcdLeaveClusterResponse{Messages: []*machine.EtcdLeaveCluster{{}}}, nil
}

// EtcdRemoveMemberByID follows v1alpha1_server.go:1810-1837: an unknown member is NotFound.
func (s *machineServer) EtcdRemoveMemberByID(ctx context.Context, in *machine.EtcdRemoveMemberByIDRequest) (*machine.EtcdRemoveMemberByIDResponse, error) {
	if err := s.checkControlplane("etcd remove member"); err != nil {
		return nil, err
	}
	if !s.node().w.etcdRemove(in.GetMemberId()) {
		return nil, status.Error(codes.NotFound, "etcdserver: member not found")
	}
	return &machine.EtcdRemoveMemberByIDResponse{Messages: []*machine.EtcdRemoveMemberByID{{}}}, nil
}

// ServiceList reports the services the health checks look at: etcd on an etcd member, the
// kubelet, apid and machined, each Running and healthy while the node runs.
func (s *machineServer) ServiceList(ctx context.Context, _ *emptypb.Empty) (*machine.ServiceListResponse, error) {
	n := s.node()
	svc := func(id string) *machine.ServiceInfo {
		return &machine.ServiceInfo{Id: id, State: "Running",
			Events: &machine.ServiceEvents{Events: []*machine.ServiceEvent{{Msg: "Health check successful", State: "Running", Ts: timestamppb.Now()}}},
			Health: &machine.ServiceHealth{Healthy: true, LastMessage: ""}}
	}
	list := []*machine.ServiceInfo{svc("apid"), svc("kubelet"), svc("machined")}
	n.mu.Lock()
	cp := n.active.controlPlane()
	n.mu.Unlock()
	switch {
	case n.etcdMember():
		etcd := svc("etcd")
		if !n.w.hasQuorum() {
			etcd.Health = &machine.ServiceHealth{Healthy: false, LastMessage: "context deadline exceeded"}
		}
		list = append(list, etcd)
	case cp:
		// A control plane without etcd data waits in its pre state: to join a cluster that has a
		// quorum, or for a bootstrap (services/etcd.go: buildInitialCluster retries; service_runner.go:268-271).
		list = append(list, &machine.ServiceInfo{Id: "etcd", State: "Preparing",
			Events: &machine.ServiceEvents{Events: []*machine.ServiceEvent{{Msg: "Running pre state", State: "Preparing", Ts: timestamppb.Now()}}},
			Health: &machine.ServiceHealth{Unknown: true}})
	}
	return &machine.ServiceListResponse{Messages: []*machine.ServiceList{{Services: list}}}, nil
}

// Memory reports 32 GiB, well above Talos's minimum (pkg/minimal/limits.go:17-33).
func (s *machineServer) Memory(context.Context, *emptypb.Empty) (*machine.MemoryResponse, error) {
	const kib = 32 << 20
	return &machine.MemoryResponse{Messages: []*machine.Memory{{Meminfo: &machine.MemInfo{Memtotal: kib, Memfree: kib / 2, Memavailable: kib / 2}}}}, nil
}

func (n *Node) etcdMember() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.etcd
}

// maintenanceServer is the machine API of a node in maintenance mode
// (internal/app/maintenance/server.go). Every method it does not implement answers
// "method X not implemented"; Version, Upgrade and Reset need the admin role, which only
// SideroLink peers get (:384-390), so here they are not implemented either.
type maintenanceServer struct {
	machine.UnimplementedMachineServiceServer
	rt *bootRuntime
}

// ApplyConfiguration follows server.go:84-134: only TRY, REBOOT and AUTO are accepted.
func (s *maintenanceServer) ApplyConfiguration(ctx context.Context, in *machine.ApplyConfigurationRequest) (*machine.ApplyConfigurationResponse, error) {
	switch in.Mode {
	case machine.ApplyConfigurationRequest_TRY, machine.ApplyConfigurationRequest_REBOOT, machine.ApplyConfigurationRequest_AUTO:
	default:
		return nil, status.Errorf(codes.Unimplemented, "apply configuration --mode='%s' is not supported in maintenance mode",
			strings.ReplaceAll(strings.ToLower(in.Mode.String()), "_", "-")) // :96-98
	}
	cfg, err := parseConfig(in.GetData())
	if err != nil {
		return nil, fmt.Errorf("failed to parse config: %w", err) // :101-104
	}
	s.rt.n.mu.Lock()
	rel := s.rt.n.release()
	s.rt.n.mu.Unlock()
	if err := rel.validate(in.GetData()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "configuration validation failed: %s", err)
	}
	warnings, err := cfg.p.Validate(metalMode{installed: false})
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "configuration validation failed: %s", err) // :106-109
	}
	reply := &machine.ApplyConfiguration{Warnings: warnings}
	if in.DryRun {
		reply.ModeDetails = "Dry run summary:\nNode is running in maintenance mode and does not have a config yet." // :124-129
		return &machine.ApplyConfigurationResponse{Messages: []*machine.ApplyConfiguration{reply}}, nil
	}
	s.rt.n.log("apply-maintenance", in.Mode.String(), time.Time{}, 0)
	s.rt.n.install(cfg)
	return &machine.ApplyConfigurationResponse{Messages: []*machine.ApplyConfiguration{reply}}, nil
}

func (s *maintenanceServer) Version(context.Context, *emptypb.Empty) (*machine.VersionResponse, error) {
	return nil, status.Error(codes.Unimplemented, "API is not implemented in maintenance mode")
}

func (s *maintenanceServer) Upgrade(context.Context, *machine.UpgradeRequest) (*machine.UpgradeResponse, error) {
	return nil, status.Error(codes.Unimplemented, "API is not implemented in maintenance mode")
}

func (s *maintenanceServer) Reset(context.Context, *machine.ResetRequest) (*machine.ResetResponse, error) {
	return nil, status.Error(codes.Unimplemented, "API is not implemented in maintenance mode")
}

// storageServer serves Disks: the provider's probe for maintenance mode
// (terraform-provider-talos pkg/talos/util.go:295-317) and talosctl reset's post-check.
type storageServer struct {
	storage.UnimplementedStorageServiceServer
	rt *bootRuntime
}

func (s *storageServer) Disks(context.Context, *emptypb.Empty) (*storage.DisksResponse, error) {
	return &storage.DisksResponse{Messages: []*storage.Disks{{Disks: []*storage.Disk{{
		DeviceName: "/dev/nvme0n1", Model: "lab NVMe", Size: 512 << 30, Type: storage.Disk_NVME,
	}}}}}, nil
}
