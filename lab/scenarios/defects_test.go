package scenarios

import (
	"io/fs"
	"os/exec"
	"strings"
	"testing"
	"time"

	"homelab/internal/fixture"
	"homelab/src"
)

// Scenarios that pin what the first lab could not see: each runs the program with one defect its
// scripts had (derived from today's script, so the test names exactly the one difference) and
// shows the lab failing it where hardware would; the fixed program passes the same steps in
// TestLabNewClusterAndItsLife and TestLabFiveNodeHandover.

func srcFile(t *testing.T, name string) string {
	t.Helper()
	b, err := fs.ReadFile(src.FS, name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// variant is a script with one fragment replaced; the test fails if the fragment is gone.
func variant(t *testing.T, file, fixed, defective string) string {
	t.Helper()
	text := srcFile(t, file)
	if !strings.Contains(text, fixed) {
		t.Fatalf("src/%s no longer contains %q: update this scenario", file, fixed)
	}
	return strings.Replace(text, fixed, defective, 1)
}

// TestLabCatchesACleanupThatLeavesPods: kubectl delete defaults to a background cascade, so the
// DaemonSets' pods are still terminating when the clean-up checks, and a real cluster fails it.
func TestLabCatchesACleanupThatLeavesPods(t *testing.T) {
	c := fixture.FreshNorns(t)
	l := newLab(t, freshNodes(c), c)
	l.setData(fixture.SrcWith(t, map[string]string{"bootstrap/cni-cleanup.sh": variant(t, "bootstrap/cni-cleanup.sh",
		"--cascade=foreground --wait=true", "--wait=true")}))
	s := l.up()
	l.figures("bring-up, background-cascade clean-up", s)
	if s.err == nil {
		t.Fatal("the bring-up passed with a clean-up that leaves terminating pods behind")
	}
	if !strings.Contains(s.output, "still present after the clean-up") || !strings.Contains(s.output, "pod/kube-flannel-") {
		t.Errorf("the clean-up did not fail on lingering Flannel pods:\n%s", tail(s.output))
	}
}

// TestLabCatchesHealthAskedOfAWorker: Talos runs `talosctl health` on the node it is sent to, and
// a worker can neither forward requests nor serve the kubeconfig, so a gate that asks a worker
// never passes. (The defective gate's wait is cut to 20 s here; on hardware it would hang for the
// full 10 minutes, then stop the rollout.)
func TestLabCatchesHealthAskedOfAWorker(t *testing.T) {
	c := fixture.FiveNodes(t)
	l := newLab(t, freshNodes(c), c)
	gate := variant(t, "talos/gate.sh", `--endpoints "$HEALTH_ENDPOINT" --nodes "$HEALTH_ENDPOINT"`, `--endpoints "$NODE_ADDRESS" --nodes "$NODE_ADDRESS"`)
	gate = "TIMEOUT=20s\n" + gate // after the preamble, before the gate's own work
	l.setData(fixture.SrcWith(t, map[string]string{"talos/gate.sh": gate}))
	s := l.up()
	l.figures("bring-up, health asked of a worker", s)
	if s.err == nil {
		t.Fatal("the bring-up passed with a worker gate that asks the worker for the cluster's health")
	}
	if !strings.Contains(s.output, "config-gate-w1") || !strings.Contains(s.output, "no request forwarding") {
		t.Errorf("the first worker's gate did not fail on Talos's refusal to forward:\n%s", tail(s.output))
	}
}

// TestLabFiveNodeHandover runs the whole handover on three control planes and two workers, listed
// out of order: control planes roll first, one node down at a time, and each worker's gate passes.
func TestLabFiveNodeHandover(t *testing.T) {
	c := fixture.FiveNodes(t)
	l := newLab(t, freshNodes(c), c)
	s := l.mustUp()
	l.figures("five-node bring-up", s)
	reboots := count(s.events, "reboot")
	for _, n := range l.nodeNames() {
		if reboots[n] != 1 {
			t.Errorf("%s rebooted %d times, want once", n, reboots[n])
		}
	}
	all := map[string]bool{}
	for _, n := range l.nodeNames() {
		all[n] = true
	}
	if c := maxConcurrent(downtimes(s.events), all); c != 1 {
		t.Errorf("%d nodes were down at once", c)
	}
	var order []string
	for _, d := range downtimes(s.events) {
		order = append(order, d.node)
	}
	if got := strings.Join(order, ","); got != "urd,verdandi,skuld,w1,w2" {
		t.Errorf("reboot order %s, want control planes first, each group in stack order", got)
	}
	checkOnlyCilium(t, l.w)
}

// realCLIChecks are invocations the old stand-ins accepted and the real binaries refuse.
func realCLIChecks(t *testing.T, l *lab) {
	t.Helper()
	talosctl := func(args ...string) (string, error) {
		out, err := exec.Command(l.talosctlPath(), args...).CombinedOutput()
		return string(out), err
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"health", "--timeout", "1m"}, "unknown flag: --timeout"},
		{[]string{"reboot", "--wait-timeout", "1m"}, "unknown flag: --wait-timeout"},
		{[]string{"health", "--wait-timeout", "600"}, "missing unit in duration"},
	} {
		out, err := talosctl(c.args...)
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("talosctl %s: %v, want a refusal with %q:\n%s", strings.Join(c.args, " "), err, c.want, out)
		}
	}
	start := time.Now()
	out, err := l.w.kubectl("-n", "kube-system", "wait", "--for=condition=Ready", "pod", "-l", "k8s-app=no-such-app", "--timeout=30s")
	if err == nil || !strings.Contains(out, "no matching resources found") || time.Since(start) > 10*time.Second {
		t.Errorf("kubectl wait with no match: %v after %s, want an immediate failure:\n%s", err, time.Since(start), out)
	}
	out, err = l.w.kubectl("-n", "kube-system", "delete", "daemonset", "kube-flannel")
	if err == nil || !strings.Contains(out, "NotFound") {
		t.Errorf("kubectl delete of a missing object: %v, want NotFound:\n%s", err, out)
	}
}
