package scenarios

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	"gopkg.in/yaml.v3"

	"homelab/internal/fixture"
	"homelab/internal/render"
	"homelab/internal/stackconfig"
	"homelab/internal/talosplan"
	"homelab/src"
)

// runningCluster is an existing cluster for the lab: a secrets bundle and every node's final
// config as the program renders it, so a world can start with the nodes running it.
type runningCluster struct {
	bundle  *secrets.Bundle
	configs map[string]string // by node name
	path    string            // secrets.yaml, written in dir
}

// labStackCluster validates a lab cluster config as the program does.
func labStackCluster(t *testing.T, c map[string]any) stackconfig.Cluster {
	t.Helper()
	text, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := stackconfig.Load(func(key string) (string, bool) {
		switch key {
		case "cluster":
			return string(text), true
		case "argocd":
			return `{"enabled": false}`, true
		}
		return "", false
	})
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Cluster
}

func newRunningCluster(t *testing.T, c map[string]any, dir string) *runningCluster {
	t.Helper()
	cl := labStackCluster(t, c)
	contract, err := config.ParseContractFromVersion(cl.VersionContract())
	if err != nil {
		t.Fatal(err)
	}
	b, err := secrets.NewBundle(secrets.NewFixedClock(time.Now()), contract)
	if err != nil {
		t.Fatal(err)
	}
	data, err := talosplan.Load(src.FS)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := render.Render(cl, data, b, talosplan.Final)
	if err != nil {
		t.Fatal(err)
	}
	rc := &runningCluster{bundle: b, configs: map[string]string{}, path: filepath.Join(dir, "secrets.yaml")}
	for _, n := range nodes {
		rc.configs[n.Node.Name] = string(n.Config)
	}
	text, err := yaml.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rc.path, text, 0o600); err != nil {
		t.Fatal(err)
	}
	return rc
}

// machines are the cluster's nodes, running their configs; control planes are etcd members.
func (rc *runningCluster) machines(c map[string]any) []labNode {
	var out []labNode
	for _, n := range freshNodes(c) {
		n.config = rc.configs[n.name]
		n.etcd = n.role == stackconfig.RoleControlPlane
		out = append(out, n)
	}
	return out
}

// startAdopted brings up the Kubernetes side of a running cluster: the control plane, and Cilium
// as an earlier install left it.
func (l *lab) startAdopted() {
	l.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		running := 0
		for _, n := range l.w.snapshot().Nodes {
			if n.Phase == "running" {
				running++
			}
		}
		if running == len(l.nodeNames()) {
			break
		}
		if time.Now().After(deadline) {
			l.t.Fatal("the running cluster's nodes did not boot")
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.w.post("/adopted", nil)
	l.w.post("/charts", map[string]any{"name": "cilium", "namespace": "kube-system", "values": map[string]any{"operator": map[string]any{"replicas": 2}}})
}

// backupInVault puts the cluster identity where pulumi up backs it up: the vault item
// talos-<cluster>, field secrets.yaml.
func (l *lab) backupInVault(rc *runningCluster) {
	l.t.Helper()
	text, err := os.ReadFile(rc.path)
	if err != nil {
		l.t.Fatal(err)
	}
	writeVault(l.t, l.w.state, map[string]map[string]map[string]string{"kubernetes": fixture.Vault(),
		identityVault: {"talos-norns": {"secrets.yaml": string(text)}}})
}

// TestLabAdoptionOfRunningNorns takes over norns as talosctl built it: its identity in the vault's
// backup item, and pulumi up with adopt: true on an empty state. The identity is imported, nothing
// is replaced, nothing reboots, no bootstrap runs, and a second run touches nothing.
func TestLabAdoptionOfRunningNorns(t *testing.T) {
	c := fixture.Cluster(t, "norns")
	work := t.TempDir()
	rc := newRunningCluster(t, labCluster(t, c), work)
	l := newLab(t, rc.machines(c), c)
	l.startAdopted()
	l.backupInVault(rc)

	p := l.preview()
	if p.err != nil {
		t.Fatalf("preview failed: %v\n%s", p.err, tail(p.output))
	}
	for name, op := range p.ops {
		if strings.Contains(op, "replace") || op == "delete" {
			t.Errorf("preview of the adoption: %s %s", name, op)
		}
	}
	if p.ops["backup"] != "import" {
		t.Errorf("the preview plans the backup item as %q; a restore imports the item it restores from, never adds a second", p.ops["backup"])
	}
	if p.ops["cluster-secrets"] != "import" || !strings.Contains(p.output, "restore:") {
		t.Errorf("the preview does not say it restores and imports the identity: cluster-secrets %q\n%s", p.ops["cluster-secrets"], tail(p.output))
	}
	s := l.mustUp()
	l.figures("adoption", s)
	if ops := nodeEvents(s.events, "reboot", "install", "upgrade", "bootstrap"); len(ops) != 0 {
		t.Errorf("adoption rebooted, installed or bootstrapped: %v", ops)
	}
	l.settleBackup()
	t.Run("the real CLIs refuse what the old stand-ins accepted", func(t *testing.T) { realCLIChecks(t, l) })
}

// TestLabMissingVaultItemStopsBeforeAnyNode: a missing vault field stops the run before anything
// is registered, naming vault, item and field.
func TestLabMissingVaultItemStopsBeforeAnyNode(t *testing.T) {
	c := fixture.FreshNorns(t)
	l := newLab(t, freshNodes(c), c)
	vault := fixture.Vault()
	delete(vault["onepassword-connect"], "token")
	writeVault(t, l.w.state, map[string]map[string]map[string]string{"kubernetes": vault})
	s := l.up()
	l.figures("missing vault field", s)
	if s.err == nil {
		t.Fatal("pulumi up went on without the vault field")
	}
	if !strings.Contains(s.output, `item "onepassword-connect" in vault "kubernetes" lacks field "token"`) {
		t.Errorf("the output does not name vault, item and field:\n%s", tail(s.output))
	}
	for _, e := range s.events {
		if e.Actor != "onepassword" {
			t.Errorf("something ran: %s %s %s", e.Actor, e.Op, e.Detail)
		}
	}
}
