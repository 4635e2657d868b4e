package scenarios

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"

	"homelab/internal/fixture"
)

// The upgrade path of norns, as its operator takes it: one edit of the stack file and one pulumi
// up per step, in the only order the support matrix allows (lifecycle.Decide), with the talosctl
// of the stack's Talos release on PATH.
var upgradePath = []struct {
	name, talos, kubernetes, contract string
}{
	{"Talos v1.11.5 to v1.12.6", "v1.12.6", "v1.34.1", "v1.11"},
	{"Kubernetes v1.34.1 to v1.35.8", "v1.12.6", "v1.35.8", "v1.11"},
	{"Talos v1.12.6 to v1.13.9", "v1.13.9", "v1.35.8", "v1.11"},
	{"Kubernetes v1.35.8 to v1.36.5", "v1.13.9", "v1.36.5", "v1.11"},
	{"contract v1.11 to v1.12", "v1.13.9", "v1.36.5", "v1.12"},
}

// TestLabUpgradePathToTheNewestTalos takes a five-node norns (three control planes, two workers)
// from Talos v1.11.5 and Kubernetes v1.34.1 to Talos v1.13.9 and Kubernetes v1.36.5, then moves
// its contract, each step its own run: every Talos step upgrades each node exactly once and
// reboots none besides, never two control planes down at once; every Kubernetes step is one
// upgrade-k8s and no reboot; the contract move is one reboot per node; every run after a step
// changes nothing. Nodes of 1.13 are then upgraded through Talos 1.13's LifecycleService (a
// schematic change), workers drained by talosctl itself.
func TestLabUpgradePathToTheNewestTalos(t *testing.T) {
	c := fiveNodesAdopted(t)
	c["contract"] = "v1.11"
	l, _ := adoptedLab(t, c)
	for _, step := range upgradePath {
		t.Run(step.name, func(t *testing.T) {
			talosMoves, kubeMoves := c["talosVersion"] != step.talos, c["kubernetesVersion"] != step.kubernetes
			c["talosVersion"], c["kubernetesVersion"], c["contract"] = step.talos, step.kubernetes, step.contract
			l.configure(c)
			s := l.mustUp()
			l.figures(step.name, s)
			switch {
			case talosMoves:
				downOnce(t, l, s, "upgrade")
				for _, n := range l.w.snapshot().Nodes {
					if n.Image.Version != step.talos || n.Release != step.talos {
						t.Errorf("%s runs %s (release %s), want %s", labNameOf(n.Address), n.Image.Version, n.Release, step.talos)
					}
				}
			case kubeMoves:
				if d := count(s.events, "reboot"); len(d) != 0 {
					t.Errorf("a Kubernetes step rebooted %v", d)
				}
				if u := count(s.events, "upgrade"); len(u) != 0 {
					t.Errorf("a Kubernetes step upgraded %v", u)
				}
				l.kubeletsRun(t, step.kubernetes)
			default: // the contract
				downOnce(t, l, s, "reboot")
				for _, n := range l.w.snapshot().Nodes {
					if !strings.Contains(n.Config, "kind: HostnameConfig") || strings.Contains(n.Config, "stableHostname") {
						t.Errorf("%s does not run a v1.12-contract config", labNameOf(n.Address))
					}
				}
			}
			l.noNodeTouched(l.mustUp())
		})
	}

	t.Run("a 1.13 node is upgraded through LifecycleService", func(t *testing.T) {
		l.setData(fixture.SrcWith(t, map[string]string{"talos/schematic.yaml": strings.Replace(srcFile(t, "talos/schematic.yaml"), "      - siderolabs/gvisor\n", "", 1)}))
		s := l.mustUp()
		l.figures("schematic change on Talos 1.13", s)
		downOnce(t, l, s, "upgrade")
		if legacy := count(s.events, "drain"); len(legacy) != 0 {
			t.Errorf("Talos drained %v itself: the legacy upgrade API ran, not LifecycleService", legacy)
		}
		for _, n := range l.nodeNames() {
			if count(s.events, "install-boot-entry")[n] != 1 {
				t.Errorf("%s: LifecycleService did not write its boot entry", n)
			}
		}
		l.noNodeTouched(l.mustUp())
	})
}

// TestLabAnInterruptedUpgradeResumes stops pulumi up in the middle of the Talos 1.12 to 1.13 step,
// right after the second node is upgraded, as a runner that dies would: the nodes then run two
// releases. The next pulumi up carries on where the first stopped: no node is upgraded twice, and
// the rest go one at a time.
func TestLabAnInterruptedUpgradeResumes(t *testing.T) {
	c := fiveNodesAdopted(t)
	c["contract"] = "v1.11"
	c["talosVersion"] = "v1.12.6"
	l, _ := adoptedLab(t, c)
	c["talosVersion"] = "v1.13.9"
	l.configure(c)
	// Stopped while the second node's gate waits for the cluster to be healthy again, holding the
	// talosconfig and kubeconfig in its private directory under $RUNNER_TEMP.
	first := l.upUntil(func(evs []labEvent) bool { return len(count(evs, "upgrade")) == 2 && len(l.scriptDirs()) > 0 })
	if first.err == nil {
		t.Fatal("the run was not interrupted")
	}
	if left := l.scriptDirs(); len(left) != 0 {
		t.Errorf("the cancelled run left %v under $RUNNER_TEMP: key material outlives the job", left)
	}
	l.figures("interrupted Talos step", first)
	l.waitRunning(t)
	releases := map[string]int{}
	for _, n := range l.w.snapshot().Nodes {
		releases[n.Release]++
	}
	if len(releases) != 2 {
		t.Errorf("after the interruption the nodes run %v; want two releases", releases)
	}
	resumed := l.mustUp()
	l.figures("resumed Talos step", resumed)
	all := append(append([]labEvent{}, first.events...), resumed.events...)
	for _, n := range l.nodeNames() {
		if u := count(all, "upgrade")[n]; u != 1 {
			t.Errorf("%s was upgraded %d times across both runs, want once", n, u)
		}
		if r := count(all, "reboot")[n]; r != 0 {
			t.Errorf("%s was rebooted %d times besides its upgrade", n, r)
		}
	}
	for _, n := range l.w.snapshot().Nodes {
		if n.Release != "v1.13.9" {
			t.Errorf("%s runs %s after the resumed run", labNameOf(n.Address), n.Release)
		}
	}
	l.noNodeTouched(l.mustUp())
}

// kubeletsRun checks that every node's kubelet reports version v.
func (l *lab) kubeletsRun(t *testing.T, v string) {
	t.Helper()
	out, err := l.w.kubectl("get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.nodeInfo.kubeletVersion} {end}")
	if err != nil {
		t.Fatal(err, out)
	}
	if strings.Count(out, "="+v) != len(l.nodeNames()) {
		t.Errorf("kubelets: %s, want all on %s", out, v)
	}
}

// upUntil runs pulumi up and interrupts the CLI as soon as stop holds for the world's events since
// the run began, as a cancelled CI job does: SIGINT to its process group (the scripts it runs
// included), then SIGKILL 10 s later (the Automation API's cancellation, go/auto/cmd.go:296-303).
func (l *lab) upUntil(stop func([]labEvent) bool) step {
	l.t.Helper()
	defer l.inProject()()
	n, start := len(l.w.events()), time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if stop(l.w.events()[n:]) {
				cancel()
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	var out strings.Builder
	_, err := l.stack.Up(ctx, optup.ProgressStreams(&out), optup.ErrorProgressStreams(&out))
	cancel()
	<-done
	return step{events: l.w.events()[n:], output: out.String(), wall: time.Since(start), err: err}
}

// scriptDirs are the scripts' private directories under $RUNNER_TEMP (src/lib/preamble.sh).
func (l *lab) scriptDirs() []string {
	dirs, _ := filepath.Glob(filepath.Join(l.runnerTemp, "homelab.*"))
	return dirs
}
