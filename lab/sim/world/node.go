package world

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/siderolabs/talos/pkg/machinery/api/common"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"

	"homelab/lab/simkit/labevent"
	"homelab/lab/simkit/labtime"
)

// Node phases.
const (
	phaseOff         = "off"
	phaseBooting     = "booting"
	phaseMaintenance = "maintenance"
	phaseInstalling  = "installing"
	phaseRunning     = "running"
	phaseRebooting   = "rebooting"
	phaseUpgrading   = "upgrading"
	phaseResetting   = "resetting"
)

// Node is one simulated machine running Talos: the release it runs decides what it does where
// releases differ (release.go). Everything a Talos node decides for itself (which apply modes it
// accepts, whether a change needs a reboot, what a reboot, upgrade or reset does to its config and
// its installed image) lives here and in the machine API handlers, each rule citing the upstream
// file and line it follows.
type Node struct {
	w    *World
	Addr string
	dir  string

	mu sync.Mutex
	// phase is what the machine is doing; see the phase constants.
	phase string
	// installed is true once Talos is on the disk (the META partition exists).
	installed bool
	// image is the installed Talos the node booted: only an install or an upgrade changes it,
	// never a plain reboot. bootEntry, when set, is the entry an upgrade's installer wrote and the
	// next boot starts.
	image     installerImage
	bootEntry *bootEntry
	// media is the Talos release the machine boots from other media (the ISO or PXE image) when
	// it has no Talos on its disk: what it runs in maintenance mode.
	media string
	// firmware is how long the machine's firmware takes from power-on to the boot loader, on top
	// of Talos's own boot (labtime.Boot).
	firmware time.Duration
	// images is the node's containerd store (its EPHEMERAL partition: a reset wipes it), and
	// registryDown cuts the node off its registries.
	images       map[string]bool
	registryDown bool
	// installing is the LifecycleService's lock (internal/app/lifecycle/lifecycle.go:152-155 at
	// v1.13.9); applying and rebootPending are ApplyConfiguration's from 1.13
	// (v1alpha1_server.go:183-190,327).
	installing    sync.Mutex
	applying      bool
	rebootPending bool
	// kernelArgs are the extra kernel arguments the boot entry holds: GRUB's, from
	// machine.install.extraKernelArgs. Under systemd-boot they are the UKI's own (the schematic's,
	// which the lab does not model) and the config's are ignored.
	kernelArgs []string
	// bios: the machine boots by BIOS, and Talos installs GRUB. On UEFI it installs systemd-boot
	// with a UKI since Talos 1.10, with or without secure boot
	// (website/content/v1.11/talos-guides/install/bare-metal-platforms/bootloader.md).
	bios bool
	// active is the config in effect; persisted is STATE/config.yaml, what the next boot loads.
	// They differ after a staged apply.
	active, persisted *machineConfig
	// persistentShown: the node serves a MachineConfig "persistent" resource. Talos creates it
	// only when a config is applied (v1alpha1_server.go:278-293 through SetPersistedConfig,
	// v1alpha1_runtime.go:113-116); a boot that loads the config from STATE alone does not
	// (acquire.go:200-206), so after any reboot the node has none until the next apply.
	persistentShown bool
	bootID          string
	// etcd is true while the node is an etcd member (its /var/lib/etcd holds data).
	etcd   bool
	etcdID uint64
	// etcdStopped: the node's etcd service was stopped by a leave (internal/pkg/etcd/etcd.go:184
	// at v1.11.5, v1.12.0 and v1.13.0: LeaveCluster stops the service and removes its data) or
	// exits because its member was removed (etcd v3.6.5 server/etcdserver/server.go:1211). Nothing
	// starts it again before the next boot, so it does not join etcd again while it runs.
	etcdStopped bool
	// recovery is the snapshot EtcdRecover uploaded, at the node's /var/lib/etcd.snapshot.
	recovery string
	// unreachable drops the node off the network (a pulled cable or a dead switch port).
	unreachable bool
	rt          *bootRuntime
	// configVersions are the versions of the node's control-plane config resources (APIServerConfig
	// and friends), bumped on every change as a COSI resource version is.
	configVersions map[string]int
}

func newNode(w *World, addr string) *Node {
	return &Node{w: w, Addr: addr, dir: filepath.Join(w.Dir, "nodes", addr), phase: phaseOff, configVersions: map[string]int{},
		images: map[string]bool{}, media: defaultMedia}
}

// defaultMedia is the Talos release a machine boots from other media unless its spec says.
const defaultMedia = "v1.11.5"

// bootEntry is a boot loader entry an installer wrote: the Talos it boots, and under GRUB its
// kernel arguments.
type bootEntry struct {
	image installerImage
	args  []string
}

// release is the Talos the node runs: the installed one, or in maintenance mode its boot media's.
// The caller holds n.mu.
func (n *Node) release() release {
	if n.installed && n.image.Version != "" {
		return parseRelease(n.image.Version)
	}
	return parseRelease(n.media)
}

func (n *Node) log(op, detail string, start time.Time, real time.Duration) {
	e := labevent.Event{Actor: "talos-node", Op: op, Node: n.Addr, Detail: detail}
	if !start.IsZero() {
		e.Start, e.End, e.Real = start, time.Now(), real
	}
	labevent.Log(n.w.Dir, e)
}

// state returns a snapshot for the control API and the tests.
func (n *Node) state() NodeState {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := NodeState{Address: n.Addr, Phase: n.phase, Installed: n.installed, Image: n.image, KernelArgs: n.kernelArgs, Release: n.release().String(),
		BootID: n.bootID, Etcd: n.etcd, Unreachable: n.unreachable}
	if n.active != nil {
		s.Hostname = n.active.hostname()
		s.Role = n.active.machineType().String()
		s.Config = string(n.active.bytes)
		s.CNI = n.active.p.Cluster().Network().CNI().Name()
		s.ProxyDisabled = !n.active.p.Cluster().Proxy().Enabled()
		s.KubeletVersion = n.active.kubeletVersion()
	}
	if n.persisted != nil && (n.active == nil || string(n.persisted.bytes) != string(n.active.bytes)) {
		s.Staged = true
	}
	return s
}

// NodeState is a node as the control API reports it.
type NodeState struct {
	Address        string         `json:"address"`
	Phase          string         `json:"phase"`
	Installed      bool           `json:"installed"`
	Image          installerImage `json:"image"`
	Release        string         `json:"release"`
	KernelArgs     []string       `json:"kernelArgs,omitempty"`
	BootID         string         `json:"bootID"`
	Etcd           bool           `json:"etcd"`
	Unreachable    bool           `json:"unreachable"`
	Hostname       string         `json:"hostname,omitempty"`
	Role           string         `json:"role,omitempty"`
	CNI            string         `json:"cni,omitempty"`
	ProxyDisabled  bool           `json:"proxyDisabled,omitempty"`
	KubeletVersion string         `json:"kubeletVersion,omitempty"`
	Staged         bool           `json:"staged,omitempty"`
	Config         string         `json:"config,omitempty"`
}

// powerOn boots the machine from whatever it has: Talos from disk when installed and configured,
// otherwise maintenance mode (the ISO or PXE image a new machine boots, and what a node whose
// STATE was wiped boots into: internal/app/machined/pkg/controllers/config/acquire.go:230-275).
func (n *Node) powerOn() {
	n.mu.Lock()
	if n.phase != phaseOff {
		n.mu.Unlock()
		return
	}
	n.phase = phaseBooting
	boot := n.firmware + labtime.Boot
	n.mu.Unlock()
	go n.boot(time.Now(), boot)
}

// bootEntryArgs are the extra kernel arguments an install or upgrade writes to the boot entry:
// the config's under GRUB, none of them under systemd-boot (the bootloader guide above). The
// caller holds n.mu or owns the node.
func (n *Node) bootEntryArgs(fromConfig []string) []string {
	if !n.bios {
		return nil
	}
	return fromConfig
}

// bootsUKI is what Talos's SecurityState reports as bootedWithUKI: the boot entry is a Talos UKI
// under systemd-boot (controllers/runtime/security_state.go:98-113).
func (n *Node) bootsUKI() bool { return n.installed && !n.bios }

// boot brings the node up after d of (real) boot time.
func (n *Node) boot(start time.Time, real time.Duration) {
	time.Sleep(labtime.Lab(real))
	// Lock order: never take the world's lock while holding a node's.
	n.mu.Lock()
	next := n.persisted
	n.mu.Unlock()
	var osCA *ca
	if next != nil {
		if next.controlPlane() {
			_ = n.w.learnOSCA(next)
		}
		// A worker gets its API certificate from a control plane's trustd, retrying until one
		// answers; here the world signs it once it knows the cluster's OS CA.
		var err error
		for deadline := time.Now().Add(labtime.Lab(10 * time.Minute)); ; {
			if osCA, err = n.w.osAuthority(); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			n.log("boot-failed", err.Error(), start, real)
			n.mu.Lock()
			n.phase = phaseOff
			n.mu.Unlock()
			return
		}
	}
	n.mu.Lock()
	if n.phase != phaseBooting {
		n.mu.Unlock()
		return
	}
	n.bootID = uuid.NewString()
	n.persistentShown = false
	n.rebootPending = false
	if n.bootEntry != nil {
		// The boot loader starts the entry the last upgrade wrote.
		n.image, n.kernelArgs, n.bootEntry = n.bootEntry.image, n.bootEntry.args, nil
	}
	maintenance := n.persisted == nil
	if !maintenance {
		n.active = n.persisted
	}
	rt, err := startRuntime(n, maintenance, osCA)
	if err != nil {
		n.phase = phaseOff
		n.mu.Unlock()
		n.log("boot-failed", err.Error(), start, real)
		return
	}
	n.rt = rt
	if maintenance {
		n.phase = phaseMaintenance
	} else {
		n.phase = phaseRunning
	}
	n.mu.Unlock()
	n.log("boot", map[bool]string{true: "maintenance", false: "running"}[maintenance], start, real)
	if !maintenance {
		n.w.nodeRunning(n)
		rt.bootDone()
	}
}

// goDown stops the node's API (every stream drops, as when machined stops) and marks it down in
// Kubernetes. The caller holds no lock.
func (n *Node) goDown(phase string) {
	n.mu.Lock()
	rt := n.rt
	n.rt = nil
	n.phase = phase
	n.mu.Unlock()
	if rt != nil {
		rt.stop()
	}
	n.w.nodeDown(n)
}

// reboot runs Talos's reboot sequence in the background (SequenceReboot:
// internal/app/machined/pkg/runtime/v1alpha1/v1alpha1_sequencer.go:236-248): services stop (the
// "stopAllServices" task), the machine restarts, and the next boot loads STATE/config.yaml, so a
// staged config takes effect. A reboot never reinstalls: the installed image and kernel arguments
// stay as they are.
func (n *Node) reboot(actorID, reason string) {
	start := time.Now()
	n.mu.Lock()
	rt := n.rt
	n.phase = phaseRebooting
	n.mu.Unlock()
	if rt != nil {
		rt.publishStage(machine.MachineStatusEvent_REBOOTING, false, actorID)
		rt.events.publish(&machine.SequenceEvent{Sequence: "reboot", Action: machine.SequenceEvent_START}, actorID)
	}
	go func() {
		time.Sleep(labtime.Lab(labtime.Shutdown))
		if rt != nil {
			rt.events.publish(&machine.TaskEvent{Task: "stopAllServices", Action: machine.TaskEvent_START}, actorID)
		}
		n.goDown(phaseRebooting)
		n.mu.Lock()
		n.phase = phaseBooting
		boot := n.firmware + labtime.Boot
		entry, from := n.bootEntry, n.image.Ref
		n.mu.Unlock()
		if entry != nil {
			// The reboot after LifecycleService.Upgrade wrote a new boot entry: the node comes
			// back on the new release, so the lab counts it as the node's upgrade.
			n.log("upgrade", from+" -> "+entry.image.Ref, start, labtime.Shutdown+boot)
		} else {
			n.log("reboot", reason, start, labtime.Shutdown+boot)
		}
		n.boot(start, boot)
	}()
}

// install writes Talos to the disk from maintenance mode and reboots into the config
// (SequenceInstall: v1alpha1_sequencer.go:158-183). The installed image is
// machine.install.image and the boot entry gets machine.install.extraKernelArgs
// (v1alpha1_sequencer_tasks.go:1467-1470,1510-1520). A machine that is already installed (only its
// STATE was wiped) boots on without installing or rebooting (:158).
func (n *Node) install(cfg *machineConfig) {
	start := time.Now()
	if cfg.controlPlane() {
		_ = n.w.learnOSCA(cfg)
	}
	n.mu.Lock()
	n.persisted = cfg
	alreadyInstalled := n.installed
	n.phase = phaseInstalling
	n.mu.Unlock()
	go func() {
		// The maintenance service tears down once the config is complete (acquire.go:601-662),
		// after the call has returned.
		time.Sleep(100 * time.Millisecond)
		n.goDown(phaseInstalling)
		if alreadyInstalled {
			n.mu.Lock()
			n.phase = phaseBooting
			n.mu.Unlock()
			n.boot(start, 0)
			return
		}
		time.Sleep(labtime.Lab(labtime.Install))
		img, err := parseInstaller(cfg.p.Machine().Install().Image())
		n.mu.Lock()
		if err == nil {
			n.image = img
		}
		n.kernelArgs = n.bootEntryArgs(cfg.p.Machine().Install().ExtraKernelArgs())
		n.installed = true
		n.phase = phaseBooting
		n.mu.Unlock()
		n.log("install", n.image.Ref, start, labtime.Install)
		n.boot(time.Now(), labtime.Boot)
	}()
}

// upgrade runs Talos's upgrade sequence in the background, after the legacy upgrade API has
// answered (SequenceUpgrade: v1alpha1_sequencer.go:418-470 at v1.11.5, :425-477 at v1.13.9, the
// same phases): cordon and drain (CordonAndDrainNode), stop the pods and services, then the
// installer, whose pre-flight check refuses a host it cannot upgrade from (cmd/installer/pkg/
// install/install.go:246,572 at v1.11.5: the sequence fails there, with the node drained and its
// services stopped, and nothing reboots it), writes the other boot entry with the kernel arguments
// of the config in effect, not the staged one (internal/pkg/install/install.go:267-279), and the
// node reboots into it, loading STATE's config (a staged config takes effect now).
func (n *Node) upgrade(actorID string, img installerImage) {
	start := time.Now()
	n.mu.Lock()
	rt := n.rt
	n.phase = phaseUpgrading
	args := n.active.p.Machine().Install().ExtraKernelArgs()
	host := n.image.Version
	n.mu.Unlock()
	if rt != nil {
		rt.events.publish(&machine.SequenceEvent{Sequence: "upgrade", Action: machine.SequenceEvent_START}, actorID)
	}
	go func() {
		drained := n.w.drain(n)
		time.Sleep(labtime.Lab(labtime.Shutdown))
		if rt != nil {
			rt.publishStage(machine.MachineStatusEvent_UPGRADING, false, actorID)
		}
		n.w.kubeletDown(n) // StopAllPods, StopServicesEphemeral
		if err := preflight(host, img.Version); err != nil {
			if rt != nil {
				rt.events.publish(&machine.SequenceEvent{Sequence: "upgrade", Action: machine.SequenceEvent_NOOP,
					Error: &common.Error{Code: common.Code_FATAL, Message: "sequence failed: error running phase 9 in upgrade sequence: task 1/1: failed, pre-flight checks failed: " + err.Error()}}, actorID)
			}
			n.mu.Lock()
			n.phase = phaseRunning
			n.mu.Unlock()
			n.log("upgrade-failed", "pre-flight: "+err.Error(), start, drained+labtime.Shutdown)
			return
		}
		if rt != nil {
			rt.events.publish(&machine.TaskEvent{Task: "stopAllServices", Action: machine.TaskEvent_START}, actorID)
		}
		n.goDown(phaseUpgrading)
		time.Sleep(labtime.Lab(labtime.Upgrade))
		n.mu.Lock()
		from := n.image.Ref
		n.bootEntry = &bootEntry{image: img, args: n.bootEntryArgs(args)}
		n.phase = phaseBooting
		boot := n.firmware + labtime.Boot
		n.mu.Unlock()
		n.log("upgrade", from+" -> "+img.Ref, start, drained+labtime.Shutdown+labtime.Upgrade+boot)
		n.boot(time.Now(), boot)
	}()
}

// reset wipes the node (SequenceReset: v1alpha1_sequencer.go:253-336). graceful drains it and,
// for a control plane, leaves etcd (:285-303); then the partitions are wiped: the listed system
// partitions, or with none listed the whole system disk (v1alpha1_server.go:677-682); then it
// reboots, or with reboot false powers off (:324-332, v1alpha1_sequencer_tasks.go:1356-1371).
func (n *Node) reset(actorID string, graceful, reboot bool, labels []string) {
	start := time.Now()
	n.mu.Lock()
	rt := n.rt
	cp := n.active.controlPlane()
	n.phase = phaseResetting
	n.mu.Unlock()
	go func() {
		if graceful {
			_ = n.w.drain(n)
			if cp {
				if err := n.w.etcdLeave(n); err != nil {
					// The sequence fails at its leaveEtcd task: the node stays up (cordoned), and
					// the controller reports the failure as a sequence event
					// (v1alpha1_controller.go:141-158, v1alpha1_sequencer_tasks.go:886-938).
					if rt != nil {
						rt.events.publish(&machine.SequenceEvent{Sequence: "reset", Action: machine.SequenceEvent_STOP}, actorID)
						rt.events.publish(&machine.SequenceEvent{Sequence: "reset", Action: machine.SequenceEvent_NOOP,
							Error: &common.Error{Code: common.Code_FATAL, Message: "sequence failed: " + err.Error()}}, actorID)
					}
					n.mu.Lock()
					n.phase = phaseRunning
					n.mu.Unlock()
					n.log("reset-failed", err.Error(), start, 0)
					return
				}
			}
		}
		time.Sleep(labtime.Lab(labtime.Shutdown))
		if rt != nil {
			rt.events.publish(&machine.TaskEvent{Task: "stopAllServices", Action: machine.TaskEvent_START}, actorID)
		}
		// Let the stopAllServices event reach the watcher before the stream drops.
		time.Sleep(50 * time.Millisecond)
		n.goDown(phaseResetting)
		n.mu.Lock()
		wipe := map[string]bool{}
		for _, l := range labels {
			wipe[l] = true
		}
		if len(labels) == 0 {
			wipe["STATE"], wipe["EPHEMERAL"], wipe["META"] = true, true, true
			n.installed = false
			n.image = installerImage{}
			n.kernelArgs = nil
		}
		if wipe["STATE"] {
			n.persisted, n.active = nil, nil
		}
		lost := wipe["EPHEMERAL"] && n.etcd
		if wipe["EPHEMERAL"] {
			n.images = map[string]bool{}
		}
		n.mu.Unlock()
		if lost {
			n.w.etcdDataLost(n)
		}
		n.log("reset", fmt.Sprintf("graceful=%t reboot=%t wipe=%s", graceful, reboot, strings.Join(labels, ",")), start, labtime.Shutdown)
		if !reboot {
			// Powered off: only a hand on the power button brings it back.
			n.mu.Lock()
			n.phase = phaseOff
			n.mu.Unlock()
			n.log("power-off", "reset with reboot=false", time.Time{}, 0)
			return
		}
		n.mu.Lock()
		installed := n.installed
		n.phase = phaseBooting
		n.mu.Unlock()
		if !installed {
			// Whatever boots next (the installer ISO or PXE) comes up in maintenance mode.
			n.log("reset-disk-wiped", "boots from other media into maintenance mode", time.Time{}, 0)
		}
		n.boot(time.Now(), labtime.Boot)
	}()
}

// setUnreachable takes the node off the network or puts it back.
func (n *Node) setUnreachable(off bool) {
	n.mu.Lock()
	n.unreachable = off
	rt := n.rt
	n.mu.Unlock()
	if rt != nil {
		rt.setListening(!off)
	}
	n.w.syncAPIServers()
	n.log(map[bool]string{true: "unreachable", false: "reachable"}[off], "", time.Time{}, 0)
}

func (n *Node) ensureDir() string {
	_ = os.MkdirAll(n.dir, 0o700)
	return n.dir
}

var _ = context.Background
