package scenarios

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"homelab/internal/fixture"
)

// heldPod is a workload whose one pod runs on urd and whose PodDisruptionBudget allows no
// eviction: a drain of urd can never evict it.
const heldPod = `apiVersion: apps/v1
kind: Deployment
metadata: {name: ledger, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: ledger}}
  template:
    metadata: {labels: {app: ledger}}
    spec:
      nodeSelector: {kubernetes.io/hostname: urd}
      tolerations: [{operator: Exists}]
      containers: [{name: ledger, image: registry.example/ledger:1}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: ledger, namespace: default}
spec:
  maxUnavailable: 0
  selector: {matchLabels: {app: ledger}}
`

// TestLabAPodDisruptionBudgetHoldsTheDrain upgrades norns while a PodDisruptionBudget refuses every
// eviction of a pod on urd, whose firmware takes 4 minutes to boot. Talos retries the eviction
// every 5 s for its drain's 5 minutes, then leaves the pod and upgrades the node anyway
// (pkg/kubernetes/kubernetes.go:239-342 at v1.11.5): urd's upgrade takes some 12 minutes of
// hardware time. With the default budget (30 minutes, talosctl's own) the node waits the drain
// out and the rollout goes on; with the 10 minutes the gates had before, the same upgrade stops
// the rollout at urd.
func TestLabAPodDisruptionBudgetHoldsTheDrain(t *testing.T) {
	c := fixture.Cluster(t, "norns")
	rc := newRunningCluster(t, labCluster(t, c), t.TempDir())
	machines := rc.machines(c)
	for i := range machines {
		if machines[i].name == "urd" {
			machines[i].firmwareSeconds = 240
		}
	}
	l := newLab(t, machines, c)
	l.startAdopted()
	l.backupInVault(rc)
	l.mustUp()
	l.settleBackup()
	file := filepath.Join(t.TempDir(), "ledger.yaml")
	if err := os.WriteFile(file, []byte(heldPod), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := l.w.kubectl("apply", "-f", file); err != nil {
		t.Fatal(err, out)
	}
	if out, err := l.w.kubectl("wait", "--for=condition=Available", "deployment/ledger", "--timeout=60s"); err != nil {
		t.Fatal(err, out)
	}

	t.Run("the default budget waits the drain out", func(t *testing.T) {
		c["talosVersion"] = "v1.11.6"
		l.configure(c)
		s := l.mustUp()
		l.figures("upgrade with a held pod, default budget", s)
		downOnce(t, l, s, "upgrade")
		if d := drainOf(s.events, "urd"); d.Real < 5*time.Minute || !strings.Contains(d.Detail, "failed to evict pod default/ledger") {
			t.Errorf("urd's drain took %s (%q); want Talos's 5 minutes of refused evictions, then a warning", d.Real, d.Detail)
		}
	})

	t.Run("ten minutes stop the rollout at the held node", func(t *testing.T) {
		l.rollout = map[string]any{"upgradeTimeout": "10m"}
		c["talosVersion"] = "v1.12.6"
		c["contract"] = "v1.11"
		l.configure(c)
		s := l.up()
		l.figures("upgrade with a held pod, 10-minute budget", s)
		if s.err == nil {
			t.Fatal("the rollout went on past a node whose upgrade outlasted its budget")
		}
		if u := count(s.events, "upgrade"); u["verdandi"]+u["skuld"] != 0 {
			t.Errorf("nodes after urd were upgraded: %v", u)
		}
		l.rollout = nil
	})
}

// drainOf is the drain event of a node.
func drainOf(evs []labEvent, node string) labEvent {
	for _, e := range evs {
		if e.Op == "drain" && labNameOf(e.Node) == node {
			return e
		}
	}
	return labEvent{}
}
