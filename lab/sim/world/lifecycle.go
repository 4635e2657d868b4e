package world

import (
	"fmt"
	"sync"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/compatibility"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"homelab/lab/simkit/labtime"
)

// lifecycleServer is Talos 1.13's LifecycleService (internal/app/lifecycle/lifecycle.go at
// v1.13.9). Its Upgrade only runs the installer from an image already in the node's store: it
// pulls nothing, checks no etcd, drains nothing and does not reboot; talosctl does those around
// it (cmd/talosctl/cmd/talos/upgrade.go:88-172 at v1.13.0). The installer's pre-flight check
// (cmd/installer/pkg/install/preflight.go:35-109) runs inside it, and a refusal is a non-zero
// exit code at the end of the stream, not a gRPC error (lifecycle.proto:43-53).
type lifecycleServer struct {
	machine.UnimplementedLifecycleServiceServer
	rt *bootRuntime
	mu *sync.Mutex // the node's installation lock, shared by its boots' servers
}

// Upgrade follows lifecycle.go:145-232 and internal/app/lifecycle/container.go:69-222.
func (s *lifecycleServer) Upgrade(in *machine.LifecycleServiceUpgradeRequest, srv grpc.ServerStreamingServer[machine.LifecycleServiceUpgradeResponse]) error {
	n := s.rt.n
	if !s.mu.TryLock() {
		return status.Error(codes.FailedPrecondition, "another installation/upgrade is already in progress")
	}
	defer s.mu.Unlock()
	n.mu.Lock()
	installed := n.installed
	host := n.image.Version
	n.mu.Unlock()
	if !installed {
		return status.Error(codes.FailedPrecondition, "machine is not installed")
	}
	ref := in.GetSource().GetImageName()
	if ref == "" {
		return status.Error(codes.InvalidArgument, "installer image name is required")
	}
	stored, ok := n.stored(ref)
	if !ok {
		return status.Error(codes.Internal, fmt.Sprintf("upgrade failed: installer image %q not found in containerd store: not found", ref))
	}
	img, err := parseInstaller(stored)
	if err != nil {
		return status.Error(codes.Internal, fmt.Sprintf("upgrade failed: %v", err))
	}
	send := func(msg string) error {
		return srv.Send(&machine.LifecycleServiceUpgradeResponse{Progress: &machine.LifecycleServiceInstallProgress{
			Response: &machine.LifecycleServiceInstallProgress_Message{Message: msg}}})
	}
	exit := func(code int32) error {
		return srv.Send(&machine.LifecycleServiceUpgradeResponse{Progress: &machine.LifecycleServiceInstallProgress{
			Response: &machine.LifecycleServiceInstallProgress_ExitCode{ExitCode: code}}})
	}
	start := time.Now()
	_ = send(fmt.Sprintf("host Talos version: %s", host))
	if err := preflight(host, img.Version); err != nil {
		_ = send(fmt.Sprintf("pre-flight checks failed: %v", err))
		n.log("upgrade-refused", err.Error(), start, 0)
		return exit(1)
	}
	// The installer writes the other boot entry; the node keeps running the old one until the
	// reboot talosctl sends next.
	time.Sleep(labtime.Lab(labtime.Upgrade))
	n.mu.Lock()
	n.bootEntry = &bootEntry{image: img, args: n.bootEntryArgs(nil)}
	n.mu.Unlock()
	n.log("install-boot-entry", img.Ref, start, labtime.Upgrade)
	_ = send("upgrade completed")
	return exit(0)
}

// preflight is the installer's check that the host may move to the target
// (TalosVersion.UpgradeableFrom, cmd/installer/pkg/install/preflight.go:89-110 at v1.11.5, :109 at
// v1.13.9; pkg/machinery/compatibility/talos_version.go:75-141 at v1.13.9).
func preflight(host, target string) error {
	to, err := compatibility.ParseTalosVersion(&machine.VersionInfo{Tag: target})
	if err != nil {
		return err
	}
	from, err := compatibility.ParseTalosVersion(&machine.VersionInfo{Tag: host})
	if err != nil {
		return err
	}
	return to.UpgradeableFrom(from)
}
