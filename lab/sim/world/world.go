// Package world is the lab's simulated homelab: Talos nodes (of releases 1.11, 1.12 and 1.13, one
// model with version gates: release.go) that serve the real machine API (gRPC under the cluster's own CA, routed as apid routes, a COSI state, Talos's own health
// checks), one shared etcd membership, and a real Kubernetes control plane (kube-apiserver,
// controller manager, scheduler, with KWOK as every node's kubelet) that the nodes start when etcd
// is bootstrapped and keep in step: node registration, readiness through reboots, static pods,
// and the bootstrap manifests (Flannel, kube-proxy, CoreDNS). The real talosctl and kubectl, and
// the provider simulators, talk to it over the network; the lab tests drive and inspect it through
// a small control API (control.go).
//
// Every behaviour follows the upstream source at the version the cluster pins, cited by file and
// line; lab/README.md's fidelity table lists them with their simplifications.
package world

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	mc "github.com/siderolabs/talos/pkg/machinery/config/machine"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"homelab/lab/sim/charts"
	"homelab/lab/simkit/labevent"
)

// World is the simulated homelab.
type World struct {
	Dir string

	mu    sync.Mutex
	nodes map[string]*Node
	// etcd is the cluster's etcd membership, by member ID.
	etcd         map[uint64]*etcdMember
	bootstrapped bool
	kube         *kube
	os           *ca
	// vips are the control planes' shared addresses (vip.go), and vipHeld the ones each node
	// (by address) ever held.
	vips    map[string]*vipState
	vipHeld map[string][]string
	// syncing serializes syncAPIServers, which reads the nodes and then serves what it read: two
	// at once (one node booting, another applying a config) could otherwise land the older view
	// last, and leave a running control plane's API port closed. Taken before w.mu and n.mu.
	syncing sync.Mutex
}

type etcdMember struct {
	id   uint64
	name string
	addr string
	node *Node
}

// New creates an empty world in dir.
func New(dir string) (*World, error) {
	if err := os.MkdirAll(filepath.Join(dir, "nodes"), 0o700); err != nil {
		return nil, err
	}
	return &World{Dir: dir, nodes: map[string]*Node{}, etcd: map[uint64]*etcdMember{}}, nil
}

// Close stops every node and the Kubernetes control plane.
func (w *World) Close() {
	w.mu.Lock()
	nodes := make([]*Node, 0, len(w.nodes))
	for _, n := range w.nodes {
		nodes = append(nodes, n)
	}
	k := w.kube
	w.mu.Unlock()
	for _, n := range nodes {
		n.mu.Lock()
		rt := n.rt
		n.rt = nil
		n.mu.Unlock()
		if rt != nil {
			rt.stop()
		}
	}
	if k != nil {
		k.stop()
	}
}

func (w *World) node(addr string) *Node {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.nodes[addr]
}

func (w *World) allNodes() []*Node {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*Node, 0, len(w.nodes))
	for _, n := range w.nodes {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out
}

// AddNode adds a machine and powers it on. A machine with a config is already installed and
// configured (a node of a cluster built before the lab took over); one without boots into
// maintenance mode.
func (w *World) AddNode(spec NodeSpec) error {
	w.mu.Lock()
	if _, ok := w.nodes[spec.Address]; ok {
		w.mu.Unlock()
		return fmt.Errorf("node %s exists", spec.Address)
	}
	n := newNode(w, spec.Address)
	n.bios = spec.Firmware == "bios"
	n.firmware = time.Duration(spec.FirmwareSeconds) * time.Second
	if spec.Media != "" {
		n.media = spec.Media
	}
	w.nodes[spec.Address] = n
	w.mu.Unlock()
	if spec.Config != "" {
		cfg, err := parseConfig([]byte(spec.Config))
		if err != nil {
			return fmt.Errorf("node %s: %w", spec.Address, err)
		}
		img, err := parseInstaller(cfg.p.Machine().Install().Image())
		if err != nil {
			return err
		}
		if cfg.controlPlane() {
			if err := w.learnOSCA(cfg); err != nil {
				return err
			}
		}
		n.mu.Lock()
		n.installed, n.image, n.active, n.persisted = true, img, cfg, cfg
		n.kernelArgs = n.bootEntryArgs(cfg.p.Machine().Install().ExtraKernelArgs())
		n.etcd = spec.Etcd
		n.mu.Unlock()
		if spec.Etcd {
			w.mu.Lock()
			w.addMemberLocked(n, cfg.hostname())
			w.bootstrapped = true
			w.mu.Unlock()
		}
	}
	n.powerOn()
	return nil
}

// NodeSpec is a machine the lab adds.
type NodeSpec struct {
	Address string `json:"address"`
	// Config is the machine config it already runs; empty for a machine in maintenance mode.
	Config string `json:"config,omitempty"`
	// Etcd makes a configured control plane an etcd member of the running cluster.
	Etcd bool `json:"etcd,omitempty"`
	// Firmware is "uefi" (the default) or "bios": what Talos installs its boot loader for.
	Firmware string `json:"firmware,omitempty"`
	// FirmwareSeconds is how long the firmware takes before the boot loader, at every boot (a
	// server's firmware can take minutes); default 0, the boot is labtime.Boot alone.
	FirmwareSeconds int `json:"firmwareSeconds,omitempty"`
	// Media is the Talos release the machine boots in maintenance mode (its ISO or PXE image);
	// default v1.11.5.
	Media string `json:"media,omitempty"`
}

// learnOSCA keeps the cluster's OS CA (machine.ca of a control plane, which holds its key): it
// signs every node's API certificate, as trustd does for workers.
func (w *World) learnOSCA(cfg *machineConfig) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.os != nil {
		return nil
	}
	pair := cfg.p.Machine().Security().IssuingCA()
	if pair == nil || len(pair.Key) == 0 {
		return errors.New("the control plane's machine.ca has no key")
	}
	a, err := parseCA(pair.Crt, pair.Key)
	if err != nil {
		return fmt.Errorf("machine.ca: %w", err)
	}
	w.os = a
	return nil
}

func (w *World) osAuthority() (*ca, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.os == nil {
		return nil, errors.New("no control plane config yet: the cluster's OS CA is unknown")
	}
	return w.os, nil
}

// nodeRunning is called when a configured node has booted: it joins etcd (a control plane of a
// bootstrapped cluster), its kubelet registers the Node, and a control plane serves the API.
func (w *World) nodeRunning(n *Node) {
	n.mu.Lock()
	cfg := n.active
	n.etcdStopped = false // the boot sequence starts the etcd service again
	n.mu.Unlock()
	if cfg.controlPlane() {
		_ = w.learnOSCA(cfg)
	}
	w.joinEtcd(n)
	w.mu.Lock()
	k := w.kube
	w.mu.Unlock()
	w.syncMembers()
	if k != nil {
		w.kubeletUp(n)
		if cfg.controlPlane() {
			w.applyManifests(n)
		}
	}
	w.syncAPIServers()
}

// nodeDown is called when a node's API stops (reboot, upgrade, reset, power off).
func (w *World) nodeDown(n *Node) {
	w.mu.Lock()
	k := w.kube
	w.mu.Unlock()
	if k != nil {
		w.kubeletDown(n)
	}
	w.syncAPIServers()
}

func (w *World) addMemberLocked(n *Node, name string) {
	id := rand.Uint64()
	w.etcd[id] = &etcdMember{id: id, name: name, addr: n.Addr, node: n}
	n.mu.Lock()
	n.etcd, n.etcdID = true, id
	n.mu.Unlock()
	labevent.Log(w.Dir, labevent.Event{Actor: "talos-node", Op: "etcd-join", Node: n.Addr, Detail: name})
}

// quorum reports whether a majority of etcd members run on the data of their membership (a node
// whose etcd data was lost is still a member, and runs no etcd for it).
func (w *World) quorumLocked() bool {
	up := 0
	for _, m := range w.etcd {
		m.node.mu.Lock()
		holds := m.node.etcd && m.node.etcdID == m.id
		m.node.mu.Unlock()
		if holds && m.node.running() {
			up++
		}
	}
	return len(w.etcd) > 0 && up*2 > len(w.etcd)
}

func (w *World) hasQuorum() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.quorumLocked()
}

// joinEtcd lets a running control plane without etcd data join the cluster, when there is one to
// join and it has a quorum; otherwise its etcd keeps waiting, and a later call lets it in. A
// member of the same name (the node's own, from before its data was lost) is removed first
// (services/etcd.go:276-295 at v1.11.5: addMember, under WithRequireLeader). A node whose etcd
// service stopped (etcdStopped) waits for its next boot.
func (w *World) joinEtcd(n *Node) {
	n.mu.Lock()
	cfg, has, ok := n.active, n.etcd, n.phase == phaseRunning && n.rt != nil && !n.etcdStopped
	n.mu.Unlock()
	if !ok || has || !cfg.controlPlane() {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.bootstrapped || !w.quorumLocked() {
		return
	}
	name := cfg.hostname()
	for id, m := range w.etcd {
		if m.name == name {
			delete(w.etcd, id)
		}
	}
	w.addMemberLocked(n, name)
}

// etcdDataLost records that the nodes lost their etcd data at once (an EPHEMERAL partition
// wiped, or disks gone): each stays a member without the data. When no member holds the cluster's data any more,
// the data is gone: the real etcd's with it.
func (w *World) etcdDataLost(nodes ...*Node) {
	lost := 0
	for _, n := range nodes {
		n.mu.Lock()
		if n.etcd {
			lost++
			n.etcd = false
			labevent.Log(w.Dir, labevent.Event{Actor: "talos-node", Op: "etcd-data-lost", Node: n.Addr})
		}
		n.mu.Unlock()
	}
	if lost == 0 {
		return
	}
	w.mu.Lock()
	holders := 0
	for _, m := range w.etcd {
		m.node.mu.Lock()
		if m.node.etcd && m.node.etcdID == m.id {
			holders++
		}
		m.node.mu.Unlock()
	}
	k := w.kube
	w.mu.Unlock()
	if holders == 0 && k != nil {
		k.destroyData()
		labevent.Log(w.Dir, labevent.Event{Actor: "talos-node", Op: "etcd-data-gone"})
	}
	w.syncAPIServers()
}

// recoverEtcd bootstraps a new etcd cluster on n from the snapshot: the data is restored (kube's
// restore, which also restarts the API server), n is its one member, and the other control planes
// waiting to join join it.
func (w *World) recoverEtcd(n *Node, snapshot string, skipHashCheck bool) error {
	k := w.kubeClient()
	if k == nil {
		return errors.New("the lab's Kubernetes control plane never started: nothing to restore into")
	}
	if err := k.restore(snapshot, skipHashCheck); err != nil {
		return err
	}
	_ = os.Remove(snapshot) // services/etcd.go:571
	n.mu.Lock()
	n.recovery = ""
	name := n.active.hostname()
	n.mu.Unlock()
	w.mu.Lock()
	w.etcd = map[uint64]*etcdMember{}
	w.bootstrapped = true
	w.addMemberLocked(n, name)
	w.mu.Unlock()
	labevent.Log(w.Dir, labevent.Event{Actor: "talos-node", Op: "etcd-recover", Node: n.Addr})
	for _, o := range w.allNodes() {
		w.joinEtcd(o)
	}
	w.syncMembers()
	w.syncAPIServers()
	return nil
}

func (n *Node) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.phase == phaseRunning && n.rt != nil
}

// syncAPIServers makes the Kubernetes API reachable at each running control plane that is on the
// network while etcd has quorum: without a majority of members the API servers cannot serve.
func (w *World) syncAPIServers() {
	w.syncing.Lock()
	defer w.syncing.Unlock()
	for _, n := range w.allNodes() {
		w.joinEtcd(n)
	}
	w.mu.Lock()
	k, quorum := w.kube, w.quorumLocked()
	nodes := make([]*Node, 0, len(w.nodes))
	for _, n := range w.nodes {
		nodes = append(nodes, n)
	}
	w.mu.Unlock()
	if k == nil {
		return
	}
	for _, n := range nodes {
		n.mu.Lock()
		cp, off := n.active.controlPlane(), n.unreachable
		n.mu.Unlock()
		if cp {
			// A node off the network serves nothing to the machine running Pulumi.
			k.serveAt(n.Addr, quorum && n.running() && !off)
		}
	}
	w.syncVIPs(k, quorum, nodes)
}

// bootstrap bootstraps etcd on n and starts the Kubernetes control plane with the CA and
// service-account key of n's config; Talos then applies its bootstrap manifests.
func (w *World) bootstrap(n *Node) error {
	n.mu.Lock()
	cfg := n.active
	n.mu.Unlock()
	w.mu.Lock()
	if w.bootstrapped {
		w.mu.Unlock()
		return errors.New("etcd data directory is not empty")
	}
	w.bootstrapped = true
	w.addMemberLocked(n, cfg.hostname())
	w.mu.Unlock()
	labevent.Log(w.Dir, labevent.Event{Actor: "talos-node", Op: "bootstrap", Node: n.Addr})
	// The other running control planes' etcd waits for the bootstrap, then joins.
	for _, o := range w.allNodes() {
		o.mu.Lock()
		join := o != n && o.active.controlPlane() && !o.etcd && o.phase == phaseRunning
		name := o.active.hostname()
		o.mu.Unlock()
		if join {
			w.mu.Lock()
			w.addMemberLocked(o, name)
			w.mu.Unlock()
		}
	}
	go func() {
		if err := w.startKube(cfg); err != nil {
			labevent.Log(w.Dir, labevent.Event{Actor: "talos-node", Op: "kube-failed", Node: n.Addr, Detail: err.Error()})
		}
	}()
	return nil
}

// StartAdopted brings up the control plane of a world whose nodes already run a cluster.
func (w *World) StartAdopted() error {
	for _, n := range w.allNodes() {
		n.mu.Lock()
		cfg, cp := n.active, n.active.controlPlane() && n.etcd
		n.mu.Unlock()
		if cp {
			return w.startKube(cfg)
		}
	}
	return errors.New("no control plane is an etcd member")
}

func (w *World) startKube(cfg *machineConfig) error {
	c := cfg.p.Cluster()
	k, err := startKube(filepath.Join(w.Dir, "kube"), c.IssuingCA().Crt, c.IssuingCA().Key, c.ServiceAccount().Key, w.apiServerSANs(w.allNodes()))
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.kube = k
	w.mu.Unlock()
	go w.runCilium(context.Background())
	labevent.Log(w.Dir, labevent.Event{Actor: "talos-node", Op: "kube-up"})
	for _, n := range w.allNodes() {
		if n.running() {
			w.kubeletUp(n)
		}
	}
	for _, n := range w.allNodes() {
		if n.running() && func() bool { n.mu.Lock(); defer n.mu.Unlock(); return n.active.controlPlane() }() {
			w.applyManifests(n)
		}
	}
	w.syncAPIServers()
	return nil
}

// etcdMembers lists the membership as EtcdMemberList reports it: hostname and peer URLs by
// address (check #3 needs the peer URL hosts to be control-plane IPs).
func (w *World) etcdMembers() []*machine.EtcdMember {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*machine.EtcdMember, 0, len(w.etcd))
	for _, m := range w.etcd {
		out = append(out, &machine.EtcdMember{Id: m.id, Hostname: m.name,
			PeerUrls: []string{"https://" + m.addr + ":2380"}, ClientUrls: []string{"https://" + m.addr + ":2379"}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Hostname < out[j].Hostname })
	return out
}

// errNotEnoughStartedMembers is etcd's refusal to remove a voting member when the members left
// could not form a quorum: for the last member, always (etcd v3.6.5
// server/etcdserver/server.go:1612-1632, api/membership/cluster.go:742-770, errors/errors.go:32;
// the strict reconfiguration check is on by default, embed/config.go:121, and Talos leaves it on).
// Talos's LeaveCluster retries only Unhealthy and Stopped (internal/pkg/etcd/etcd.go:158-182).
var errNotEnoughStartedMembers = errors.New("etcdserver: re-configuration failed due to not enough started members")

// mayRemove is etcd's check before removing member id. Every member the world knows has started
// once (etcd's IsStarted: it has a name). The caller holds w.mu.
func (w *World) mayRemove(id uint64) error {
	left := 0
	for other := range w.etcd {
		if other != id {
			left++
		}
	}
	if left < left/2+1 {
		return errNotEnoughStartedMembers
	}
	return nil
}

// etcdLeave removes n's own member and its data (internal/pkg/etcd/etcd.go:152-194; a member
// already gone is success).
func (w *World) etcdLeave(n *Node) error {
	w.mu.Lock()
	if _, ok := w.etcd[n.etcdID]; ok {
		if err := w.mayRemove(n.etcdID); err != nil {
			w.mu.Unlock()
			return fmt.Errorf("failed to leave cluster: %w", err)
		}
	}
	delete(w.etcd, n.etcdID)
	w.mu.Unlock()
	n.mu.Lock()
	n.etcd, n.etcdStopped = false, true
	n.mu.Unlock()
	labevent.Log(w.Dir, labevent.Event{Actor: "talos-node", Op: "etcd-leave", Node: n.Addr})
	w.syncAPIServers()
	return nil
}

func (w *World) etcdRemove(id uint64) bool {
	w.mu.Lock()
	m, ok := w.etcd[id]
	delete(w.etcd, id)
	w.mu.Unlock()
	if !ok {
		return false
	}
	m.node.mu.Lock()
	if m.node.etcdID == id {
		m.node.etcd, m.node.etcdStopped = false, true
	}
	m.node.mu.Unlock()
	labevent.Log(w.Dir, labevent.Event{Actor: "talos-node", Op: "etcd-remove-member", Node: m.addr})
	w.syncAPIServers()
	return true
}

// validateEtcdForUpgrade refuses an upgrade of a control plane unless etcd can lose one member:
// exactly two members refuse, and so does any member that is not running
// (internal/pkg/etcd/etcd.go:95-121).
func (w *World) validateEtcdForUpgrade() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.etcd) == 2 {
		return fmt.Errorf("etcd member count(%d) is insufficient to maintain quorum if upgrade commences", len(w.etcd))
	}
	for _, m := range w.etcd {
		if !m.node.running() {
			return fmt.Errorf("etcd member %016x is not healthy; all members must be healthy to perform an upgrade", m.id)
		}
	}
	return nil
}

// memberInfo is one discovered cluster member.
type memberInfo struct {
	name, addr, version string
	typ                 mc.Type
}

// syncMembers publishes every configured node as a discovered member on every running node
// (cluster discovery; members of nodes that are down stay until their affiliate expires).
func (w *World) syncMembers() {
	var members []memberInfo
	nodes := w.allNodes()
	for _, n := range nodes {
		n.mu.Lock()
		if n.active != nil {
			members = append(members, memberInfo{name: n.active.hostname(), addr: n.Addr, typ: n.active.machineType(), version: n.image.Version})
		}
		n.mu.Unlock()
	}
	for _, n := range nodes {
		n.mu.Lock()
		rt := n.rt
		n.mu.Unlock()
		if rt != nil && !rt.maintenance {
			rt.syncMembers(members)
		}
	}
}

// applyLive applies cfg to a running node without a reboot (NO_REBOOT, or TRY when persist is
// false): the config in effect changes and the controllers act on the difference — a kubelet
// change restarts the kubelet, a .cluster change re-renders the control-plane static pods, node
// labels and taints reach the Node (v1alpha1_server.go:278-285 and the controllers cited there).
func (w *World) applyLive(n *Node, cfg *machineConfig, persist bool) {
	start := time.Now()
	n.mu.Lock()
	old := n.active
	changed := old == nil || string(old.bytes) != string(cfg.bytes)
	n.active = cfg
	if persist {
		n.persisted, n.persistentShown = cfg, true
	}
	rt := n.rt
	var kubeletChanged bool
	if rt != nil {
		kubeletChanged = old.p.Machine().Kubelet().Image() != cfg.p.Machine().Kubelet().Image()
		_ = rt.syncLocked()
	}
	n.mu.Unlock()
	n.log("apply-live", map[bool]string{true: "changed", false: "unchanged"}[changed], start, 0)
	w.mu.Lock()
	k := w.kube
	w.mu.Unlock()
	if rt == nil || k == nil {
		return
	}
	// A VIP added or removed, and the API server's SANs, follow the config at once.
	w.syncAPIServers()
	if kubeletChanged {
		go func() {
			rt.restartKubelet(cfg.p.Machine().Kubelet().Image())
			w.kubeletUp(n)
		}()
	} else {
		w.kubeletUp(n)
	}
	if cfg.controlPlane() {
		w.syncStaticPods(n, rt, cfg)
		w.applyManifests(n)
	}
}

var _ = context.Background

// InstallChart creates a chart's objects, as an earlier `helm install` of the cluster left them
// (field manager "helm"), and waits until its workloads are ready.
func (w *World) InstallChart(name, namespace string, values map[string]any) error {
	k := w.kubeClient()
	if k == nil {
		return errors.New("the Kubernetes API is not running")
	}
	dyn, err := dynamic.NewForConfig(k.rest)
	if err != nil {
		return err
	}
	objects, err := charts.Render(name, charts.Repositories[name], namespace, values)
	if err != nil {
		return err
	}
	ctx := context.Background()
	for _, o := range objects {
		if err := applyAs(ctx, dyn, "helm", o); err != nil {
			return fmt.Errorf("chart %s: %w", name, err)
		}
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		pending := ""
		for _, o := range objects {
			u := &unstructured.Unstructured{Object: o}
			ri, err := resourceFor(dyn, u)
			if err != nil {
				return err
			}
			live, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
			if err != nil || !charts.Ready(live) {
				pending = u.GetKind() + " " + u.GetName()
				break
			}
		}
		if pending == "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chart %s: timed out waiting for %s to be ready", name, pending)
		}
	}
}

// applyAs server-side applies one object with the given field manager.
func applyAs(ctx context.Context, dyn dynamic.Interface, manager string, o map[string]any) error {
	u := &unstructured.Unstructured{Object: o}
	ri, err := resourceFor(dyn, u)
	if err != nil {
		return err
	}
	body, err := json.Marshal(o)
	if err != nil {
		return err
	}
	force := true
	_, err = ri.Patch(ctx, u.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: manager, Force: &force})
	return err
}
