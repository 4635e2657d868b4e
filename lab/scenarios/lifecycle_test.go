package scenarios

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"

	"homelab/internal/fixture"
)

// Scenarios of a cluster's life after bring-up, on a running cluster the lab adopts (restored from
// its vault backup): upgrades, removals, adoption that needs reboots, and what must stop a run.

// adoptedLab starts a world whose nodes run cluster c (rendered from this repository) and restores
// the stack into it; the restore itself must reboot nothing.
func adoptedLab(t *testing.T, c map[string]any) (*lab, *runningCluster) {
	t.Helper()
	return adoptedLabOn(t, c, "")
}

// adoptedLabOn is adoptedLab on machines with the given firmware ("bios", or "" for UEFI).
func adoptedLabOn(t *testing.T, c map[string]any, firmware string) (*lab, *runningCluster) {
	t.Helper()
	rc := newRunningCluster(t, labCluster(t, c), t.TempDir())
	machines := rc.machines(c)
	for i := range machines {
		machines[i].firmware = firmware
	}
	l := newLab(t, machines, c)
	l.startAdopted()
	l.backupInVault(rc)
	s := l.mustUp()
	if r := count(s.events, "reboot"); len(r) != 0 {
		t.Fatalf("the restore rebooted %v", r)
	}
	l.settleBackup()
	return l, rc
}

// settleBackup runs the up that follows a restore: the restore imported the vault's backup item
// as it was, and its identity import issued a new admin client certificate, so this run writes
// the renewed talosconfig to that item, in place, and changes nothing else.
func (l *lab) settleBackup() {
	l.t.Helper()
	s := l.mustUp()
	if got := strings.Join(changedResources(s), ", "); got != "backup update" {
		l.t.Errorf("the run after the restore changed %q, want only the backup item's update", got)
	}
	l.noNodeTouched(s)
	if n := backupItems(l.t, l); n != 1 {
		l.t.Errorf("the vault holds %d items titled talos-norns, want 1", n)
	}
}

// backupItems counts the identity vault's items titled talos-norns.
func backupItems(t *testing.T, l *lab) int {
	n := 0
	for _, it := range readVaultItems(t, l.w.state)[identityVault] {
		if it.Title == "talos-norns" {
			n++
		}
	}
	return n
}

func fiveNodesAdopted(t *testing.T) map[string]any {
	c := fixture.FiveNodes(t)
	c["adopt"] = true
	return c
}

// downOnce asserts that every node went down exactly once through op ("upgrade" or "reboot"), never
// through the other, and never two nodes at once.
func downOnce(t *testing.T, l *lab, s step, op string) {
	t.Helper()
	other := map[string]string{"upgrade": "reboot", "reboot": "upgrade"}[op]
	ops, others := count(s.events, op), count(s.events, other)
	for _, n := range l.nodeNames() {
		if ops[n] != 1 || others[n] != 0 {
			t.Errorf("%s: %d %ss and %d %ss, want exactly one %s", n, ops[n], op, others[n], other, op)
		}
	}
	all := map[string]bool{}
	for _, n := range l.nodeNames() {
		all[n] = true
	}
	if c := maxConcurrent(downtimes(s.events), all); c != 1 {
		t.Errorf("%d nodes were down at once", c)
	}
}

func (l *lab) noNodeTouched(s step) {
	l.t.Helper()
	for _, e := range s.events {
		if e.Actor == "talos-node" && (e.Op == "reboot" || e.Op == "upgrade" || e.Op == "install" ||
			((e.Op == "apply-live" || e.Op == "apply-staged") && e.Detail == "changed")) {
			l.t.Errorf("%s: %s %s", labNameOf(e.Node), e.Op, e.Detail)
		}
	}
}

// TestLabTalosAndKubernetesUpgrades moves a five-node cluster through a Talos upgrade, a schematic
// change and a Kubernetes upgrade: each node is upgraded exactly once per image change, never also
// rebooted, one node at a time; Kubernetes moves with one upgrade-k8s and no reboot; every second
// run changes nothing.
func TestLabTalosAndKubernetesUpgrades(t *testing.T) {
	c := fiveNodesAdopted(t)
	l, _ := adoptedLab(t, c)

	t.Run("Talos v1.11.5 to v1.11.6", func(t *testing.T) {
		c["talosVersion"] = "v1.11.6"
		l.configure(c)
		p := l.preview()
		if p.ops["config-gate-urd"] != "update" || !strings.Contains(p.output, ":v1.11.6") {
			t.Errorf("the preview does not show the gates moving to v1.11.6: %q", p.ops["config-gate-urd"])
		}
		s := l.mustUp()
		l.figures("Talos upgrade", s)
		downOnce(t, l, s, "upgrade")
		for _, n := range l.w.snapshot().Nodes {
			if n.Image.Version != "v1.11.6" {
				t.Errorf("%s runs %s", labNameOf(n.Address), n.Image.Version)
			}
		}
		again := l.mustUp()
		l.noNodeTouched(again)
	})

	t.Run("a schematic change", func(t *testing.T) {
		l.setData(fixture.SrcWith(t, map[string]string{"talos/schematic.yaml": strings.Replace(srcFile(t, "talos/schematic.yaml"), "      - siderolabs/gvisor\n", "", 1)}))
		s := l.mustUp()
		l.figures("schematic change", s)
		downOnce(t, l, s, "upgrade")
		schematics := map[string]bool{}
		for _, n := range l.w.snapshot().Nodes {
			schematics[n.Image.Schematic] = true
		}
		if len(schematics) != 1 {
			t.Errorf("nodes run different schematics: %v", schematics)
		}
		l.noNodeTouched(l.mustUp())
	})

	t.Run("Kubernetes v1.34.1 to v1.34.2", func(t *testing.T) {
		c["kubernetesVersion"] = "v1.34.2"
		l.configure(c)
		// upgrade-k8s first pulls the new images on every node (talos_managed.go:168-214 at
		// v1.11.5): a node that cannot reach its registry stops it before anything changes.
		l.w.post("/nodes/"+labAddr["verdandi"]+"/registry-down", nil)
		refused := l.up()
		l.w.post("/nodes/"+labAddr["verdandi"]+"/registry-up", nil)
		if refused.err == nil || !strings.Contains(refused.output, "failed pre-pulling images") {
			t.Errorf("upgrade-k8s went on with a node that cannot pull: %v\n%s", refused.err, tail(refused.output))
		}
		if out, _ := l.w.kubectl("-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-apiserver", "-o", "jsonpath={.items[*].spec.containers[0].image}"); strings.Contains(out, "v1.34.2") {
			t.Errorf("an API server moved to v1.34.2 although a node could not pull: %s", out)
		}
		s := l.mustUp()
		l.figures("Kubernetes upgrade", s)
		if r := count(s.events, "reboot"); len(r) != 0 {
			t.Errorf("reboots: %v", r)
		}
		if u := count(s.events, "upgrade"); len(u) != 0 {
			t.Errorf("Talos upgrades: %v", u)
		}
		runs := 0
		for _, e := range s.events {
			if e.Actor == "command" && e.Detail == "k8s-upgrade" {
				runs++
			}
		}
		if runs != 1 {
			t.Errorf("k8s-upgrade ran %d times, want once", runs)
		}
		out, err := l.w.kubectl("get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.nodeInfo.kubeletVersion} {end}")
		if err != nil {
			t.Fatal(err, out)
		}
		if strings.Count(out, "=v1.34.2") != len(l.nodeNames()) {
			t.Errorf("kubelets: %s", out)
		}
		l.noNodeTouched(l.mustUp())
	})
}

// TestLabKernelArgumentsReachTheBootEntry changes machine.install.extraKernelArgs on a cluster
// without secure boot, on BIOS machines (GRUB): Talos writes a boot entry's arguments only at an
// install or upgrade, and from the config in effect rather than the staged one, so each node gets
// exactly one upgrade and then boots with the new arguments; a second run changes nothing. On UEFI
// machines (systemd-boot, which ignores them) the first gate stops before any node goes down.
func TestLabKernelArgumentsReachTheBootEntry(t *testing.T) {
	c := fixture.Cluster(t, "norns")
	c["secureBoot"] = false
	kernelArgs := fixture.SrcWith(t, map[string]string{"talos/patches/kernel-args.yaml": "machine:\n  install:\n    extraKernelArgs:\n      - net.ifnames=0\n      - talos.dashboard.disabled=1\n"})

	t.Run("uefi", func(t *testing.T) { // refused before any node goes down (a short name: the world socket path is bounded)
		l, _ := adoptedLab(t, c)
		l.setData(kernelArgs)
		s := l.up()
		l.figures("kernel arguments on UEFI", s)
		if s.err == nil || !strings.Contains(s.output, "customization.extraKernelArgs") {
			t.Fatalf("the run did not stop pointing to the schematic:\n%s", tail(s.output))
		}
		if ops := nodeEvents(s.events, "reboot", "upgrade"); len(ops) != 0 {
			t.Errorf("nodes went down: %v", ops)
		}
	})

	l, _ := adoptedLabOn(t, c, "bios")
	want := []string{"net.ifnames=0", "talos.dashboard.disabled=1"}
	l.setData(kernelArgs)
	s := l.mustUp()
	l.figures("kernel arguments", s)
	downOnce(t, l, s, "upgrade")
	for _, n := range l.w.snapshot().Nodes {
		if !slices.Equal(n.KernelArgs, want) {
			t.Errorf("%s boots with kernel arguments %q, want %q", labNameOf(n.Address), n.KernelArgs, want)
		}
	}
	l.noNodeTouched(l.mustUp())
}

// TestLabNodeRemoval removes a worker, then a control plane, from a five-node stack with a plain
// pulumi up each: the Node and (for the control plane) the etcd member are gone, the other nodes
// are untouched, and with resetOnDestroy the removed node is back in maintenance mode.
func TestLabNodeRemoval(t *testing.T) {
	c := fiveNodesAdopted(t)
	c["resetOnDestroy"] = true
	l, _ := adoptedLab(t, c)
	drop := func(name string) {
		var keep []any
		for _, n := range c["nodes"].([]any) {
			if n.(map[string]any)["name"] != name {
				keep = append(keep, n)
			}
		}
		c["nodes"] = keep
		l.configure(c)
	}
	for _, name := range []string{"w2", "skuld"} {
		t.Run("remove "+name, func(t *testing.T) {
			before := l.w.snapshot()
			drop(name)
			s := l.mustUp()
			l.figures("remove "+name, s)
			out, _ := l.w.kubectl("get", "nodes", "-o", "name")
			if strings.Contains(out, "node/"+name) {
				t.Errorf("the Node of %s remains:\n%s", name, out)
			}
			for _, m := range l.w.snapshot().EtcdMembers {
				if m.Name == name {
					t.Errorf("%s is still an etcd member", name)
				}
			}
			for n, ops := range nodeEvents(s.events, "reboot", "upgrade", "reset", "apply-live", "apply-staged") {
				if n != name {
					t.Errorf("removing %s touched %s: %v", name, n, ops)
				}
			}
			after := l.w.snapshot().node(name)
			if count(s.events, "reset")[name] != 1 || after.Phase != "maintenance" {
				t.Errorf("%s: %d resets, now %s; resetOnDestroy brings it back in maintenance mode", name, count(s.events, "reset")[name], after.Phase)
			}
			if before.node(name).Role == "controlplane" && len(l.w.snapshot().EtcdMembers) != 2 {
				t.Errorf("etcd has %d members, want 2", len(l.w.snapshot().EtcdMembers))
			}
			l.noNodeTouched(l.mustUp())
		})
	}
}

// TestLabAdoptionRebootsOnlyWhatNeedsIt adopts nodes whose running config differs from the
// repository in a setting Talos cannot apply live: each reboots once, one at a time; the restore
// never leaves a failed live apply halfway.
func TestLabAdoptionRebootsOnlyWhatNeedsIt(t *testing.T) {
	c := fixture.Cluster(t, "norns")
	rc := newRunningCluster(t, labCluster(t, c), t.TempDir())
	for name, cfg := range rc.configs {
		// A setting of the running nodes that the repository does not have, and Talos applies only at boot.
		rc.configs[name] = strings.Replace(cfg, "machine:\n", "machine:\n    env:\n        LAB_ADOPTED: \"yes\"\n", 1)
	}
	l := newLab(t, rc.machines(c), c)
	l.startAdopted()
	l.backupInVault(rc)
	s := l.mustUp()
	l.figures("adoption with a reboot-needing difference", s)
	downOnce(t, l, s, "reboot")
	for _, n := range l.w.snapshot().Nodes {
		if strings.Contains(n.Config, "LAB_ADOPTED") {
			t.Errorf("%s still runs the old config", labNameOf(n.Address))
		}
	}
	l.noNodeTouched(l.mustUp())
}

// TestLabAdoptionWithoutTheIdentityStops: no secrets.yaml and no backup item: the run stops before
// any resource, naming what to put where.
func TestLabAdoptionWithoutTheIdentityStops(t *testing.T) {
	c := fixture.Cluster(t, "norns")
	rc := newRunningCluster(t, labCluster(t, c), t.TempDir())
	l := newLab(t, rc.machines(c), c)
	l.startAdopted()
	s := l.up()
	l.figures("adoption without the identity", s)
	if s.err == nil || !strings.Contains(s.output, `vault "kubernetes-identity" has no item "talos-norns"`) || !strings.Contains(s.output, "never created") {
		t.Fatalf("the run did not stop naming the backup item:\n%s", tail(s.output))
	}
	for name, op := range s.ops {
		// The engine's default 1Password provider, made for the vault reads, is no resource of the program.
		if op != "same" && op != "read" && !strings.HasPrefix(name, "default") && name != "homelab-norns" {
			t.Errorf("%s %s", name, op)
		}
	}
	for _, e := range s.events {
		if e.Actor != "onepassword" {
			t.Errorf("something ran: %s %s %s", e.Actor, e.Op, e.Detail)
		}
	}
}

// TestLabUnreachableNodeStopsWithinSeconds: one node's Talos API is gone; up stops at once,
// naming it, before any node is touched (the provider would retry 10 minutes per resource).
func TestLabUnreachableNodeStopsWithinSeconds(t *testing.T) {
	l, _ := adoptedLab(t, fixture.Cluster(t, "norns"))
	l.w.post("/nodes/"+labAddr["verdandi"]+"/unreachable", nil)
	s := l.up()
	l.figures("unreachable node", s)
	if s.err == nil || !strings.Contains(s.output, "verdandi ("+labAddr["verdandi"]+")") {
		t.Fatalf("the run did not stop naming verdandi:\n%s", tail(s.output))
	}
	if s.wall > 15*time.Second {
		t.Errorf("stopping took %s", s.wall)
	}
	l.noNodeTouched(s)
}

// TestLabControlPlaneOnlyL2Announcement: on norns, whose three control planes carry Talos's
// node.kubernetes.io/exclude-from-external-load-balancers label, a LoadBalancer Service still gets
// a pool address and a control plane announces it (Cilium's L2 announcer selects nodes by the
// policy's nodeSelector only).
func TestLabControlPlaneOnlyL2Announcement(t *testing.T) {
	l, _ := adoptedLab(t, fixture.Cluster(t, "norns"))
	if out, err := l.w.kubectl("-n", "default", "create", "service", "loadbalancer", "web", "--tcp=80:80"); err != nil {
		t.Fatal(err, out)
	}
	var holder, ip string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && holder == ""; time.Sleep(500 * time.Millisecond) {
		holder, _ = l.w.kubectl("-n", "kube-system", "get", "lease", "cilium-l2announce-default-web", "-o", "jsonpath={.spec.holderIdentity}")
		ip, _ = l.w.kubectl("-n", "default", "get", "service", "web", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}")
		if strings.Contains(holder, "NotFound") {
			holder = ""
		}
	}
	if !strings.HasPrefix(ip, "192.168.0.2") {
		t.Errorf("the Service got no pool address: %q", ip)
	}
	if !nornsControlPlanes[holder] {
		t.Fatalf("no control plane announces the Service: holder %q", holder)
	}
	labels, _ := l.w.kubectl("get", "node", holder, "-o", "jsonpath={.metadata.labels}")
	if !strings.Contains(labels, "node.kubernetes.io/exclude-from-external-load-balancers") {
		t.Errorf("the announcing node does not carry Talos's exclusion label; the scenario proves nothing: %s", labels)
	}
	t.Logf("FIGURES control-plane-only L2: %s announces %s", holder, ip)
}

// TestLabDestroyResetsNodesOnlyOnOptIn: with resetOnDestroy, destroy resets every node once, back
// in maintenance mode (never powered off), before it stops at the protected resources.
func TestLabDestroyResetsNodesOnlyOnOptIn(t *testing.T) {
	c := fixture.Cluster(t, "norns")
	c["resetOnDestroy"] = true
	l, _ := adoptedLab(t, c)
	defer l.inProject()()
	n, start := len(l.w.events()), time.Now()
	_, err := l.stack.Destroy(context.Background(), optdestroy.ProgressStreams(&strings.Builder{}))
	s := step{events: l.w.events()[n:], wall: time.Since(start)}
	l.figures("destroy with resetOnDestroy", s)
	if err == nil || !strings.Contains(err.Error(), "protect") {
		t.Errorf("destroy did not stop at the protected resources: %v", err)
	}
	resets := count(s.events, "reset")
	for _, name := range l.nodeNames() {
		node := l.w.snapshot().node(name)
		if resets[name] != 1 || node.Phase != "maintenance" {
			t.Errorf("%s: %d resets, now %s; want one reset and maintenance mode", name, resets[name], node.Phase)
		}
	}
}
