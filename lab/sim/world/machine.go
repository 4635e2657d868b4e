package world

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/siderolabs/talos/pkg/kubeconfig"
	"github.com/siderolabs/talos/pkg/machinery/api/common"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/api/storage"
	"github.com/siderolabs/talos/pkg/machinery/compatibility"
	"github.com/siderolabs/talos/pkg/machinery/config/configdiff"
	"github.com/siderolabs/talos/pkg/machinery/config/validation"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"homelab/lab/sim/labtime"
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

// ApplyConfiguration follows v1alpha1_server.go:172-317.
func (s *machineServer) ApplyConfiguration(ctx context.Context, in *machine.ApplyConfigurationRequest) (*machine.ApplyConfigurationResponse, error) {
	n := s.node()
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
		diff, err := configdiff.DiffToString(current.p, cfg.p)
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
func (s *machineServer) Bootstrap(ctx context.Context, _ *machine.BootstrapRequest) (*machine.BootstrapResponse, error) {
	n := s.node()
	n.mu.Lock()
	cp, hasData := n.active.controlPlane(), n.etcd
	n.mu.Unlock()
	if !cp {
		return nil, status.Error(codes.FailedPrecondition, "bootstrap can only be performed on a control plane node") // :423-425
	}
	if hasData {
		return nil, status.Error(codes.AlreadyExists, "etcd data directory is not empty") // :434-436
	}
	if err := n.w.bootstrap(n); err != nil {
		return nil, err
	}
	return &machine.BootstrapResponse{Messages: []*machine.Bootstrap{{}}}, nil
}

// Reboot starts the reboot sequence and returns at once (v1alpha1_server.go:342-370).
func (s *machineServer) Reboot(ctx context.Context, in *machine.RebootRequest) (*machine.RebootResponse, error) {
	actor := uuid.NewString()
	s.node().reboot(actor, "reboot API")
	return &machine.RebootResponse{Messages: []*machine.Reboot{{ActorId: actor}}}, nil
}

// Upgrade follows v1alpha1_server.go:485-574: the installer image is pulled and validated before
// the call returns, and a control plane refuses unless etcd is healthy (exactly two members, or
// any member not running, refuse: internal/pkg/etcd/etcd.go:95-121) unless forced.
func (s *machineServer) Upgrade(ctx context.Context, in *machine.UpgradeRequest) (*machine.UpgradeResponse, error) {
	n := s.node()
	img, err := parseInstaller(in.GetImage())
	if err != nil {
		return nil, fmt.Errorf("error validating installer image %q: %w", in.GetImage(), err)
	}
	// The installer's preflight check (cmd/installer/pkg/install/preflight.go:89-110).
	n.mu.Lock()
	host, cp := n.image.Version, n.active.controlPlane()
	n.mu.Unlock()
	to, err := compatibility.ParseTalosVersion(&machine.VersionInfo{Tag: img.Version})
	if err != nil {
		return nil, fmt.Errorf("error validating installer image %q: %w", in.GetImage(), err)
	}
	from, err := compatibility.ParseTalosVersion(&machine.VersionInfo{Tag: host})
	if err != nil {
		return nil, err
	}
	if err := to.UpgradeableFrom(from); err != nil {
		return nil, fmt.Errorf("error validating installer image %q: %w", in.GetImage(), err)
	}
	if cp && !in.GetForce() {
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
	if n.etcdMember() {
		list = append(list, svc("etcd"))
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
