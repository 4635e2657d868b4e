package scenarios

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	"gopkg.in/yaml.v3"

	"homelab/internal/drift"
	"homelab/internal/fixture"
	"homelab/internal/talosplan"
)

// TestLabRestoreAfterTheStateIsLost brings norns up, loses the Pulumi state (the cluster runs on)
// and restores it with a plain pulumi up on the same stack file with adopt: true. Without the
// vault's backup item the run stops before any node; with it, the identity is imported, no node
// reboots, no node's config changes, and the next run is a no-op.
func TestLabRestoreAfterTheStateIsLost(t *testing.T) {
	c := fixture.FreshNorns(t)
	l := newLab(t, freshNodes(c), c)
	l.figures("bring-up", l.mustUp())
	bootIDs := map[string]string{}
	for _, n := range l.w.snapshot().Nodes {
		bootIDs[n.Address] = n.BootID
	}

	l.cluster["adopt"] = true
	l.loseState()
	vaultFile := filepath.Join(l.w.state, "vault.json")
	saved, err := os.ReadFile(vaultFile)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("without the backup item the restore stops before any node", func(t *testing.T) {
		v := map[string]map[string]map[string]string{}
		backups := 0
		for name, items := range readVaultItems(t, l.w.state) {
			v[name] = map[string]map[string]string{}
			for _, it := range items {
				if it.Title == "talos-norns" {
					backups++
					continue
				}
				v[name][it.Title] = it.Fields
			}
		}
		if backups != 1 {
			t.Fatalf("the bring-up wrote %d backup items, want 1", backups)
		}
		writeVault(t, l.w.state, v)
		defer func() {
			if err := os.WriteFile(vaultFile, saved, 0o600); err != nil {
				t.Fatal(err)
			}
		}()
		s := l.up()
		l.figures("restore without the backup item", s)
		if s.err == nil || !strings.Contains(s.output, `no item "talos-norns"`) {
			t.Fatalf("the restore did not stop naming the backup item:\n%s", tail(s.output))
		}
		for _, e := range s.events {
			if e.Actor != "onepassword" {
				t.Errorf("something ran: %s %s %s", e.Actor, e.Op, e.Detail)
			}
		}
	})

	t.Run("from the backup item: no reboot, no config change", func(t *testing.T) {
		p := l.preview()
		if p.err != nil || !strings.Contains(p.output, "restore: this stack has no state") {
			t.Fatalf("the preview does not say it is a restore (err %v):\n%s", p.err, tail(p.output))
		}
		s := l.mustUp()
		l.figures("restore", s)
		l.noNodeTouched(s)
		for _, n := range l.w.snapshot().Nodes {
			if n.BootID != bootIDs[n.Address] {
				t.Errorf("%s rebooted", labNameOf(n.Address))
			}
		}
		if _, err := os.Stat(filepath.Join(l.work, "secrets.yaml")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the identity taken from the vault is left on disk: %v", err)
		}
		if bootstraps := count(s.events, "bootstrap"); len(bootstraps) != 0 {
			t.Errorf("the restore bootstrapped etcd: %v", bootstraps)
		}
	})

	t.Run("one backup item; the next up renews its talosconfig; the one after is a no-op", func(t *testing.T) {
		l.settleBackup()
		s := l.mustUp()
		l.figures("after the restore", s)
		for name, op := range s.ops {
			if op != "same" && op != "read" {
				t.Errorf("%s: %s after the restore", name, op)
			}
		}
		l.noNodeTouched(s)
	})
}

var commands struct {
	mu    sync.Mutex
	dir   string // made by TestMain and removed when the run ends
	paths map[string]string
}

// command builds the repository's ./cmd/<name> once per test run and returns the binary.
func command(t *testing.T, name string) string {
	t.Helper()
	commands.mu.Lock()
	defer commands.mu.Unlock()
	if p, ok := commands.paths[name]; ok {
		return p
	}
	path := filepath.Join(commands.dir, name)
	build := exec.Command("go", "build", "-o", path, "./cmd/"+name)
	build.Dir = fixture.Root(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building cmd/%s: %v\n%s", name, err, out)
	}
	if commands.paths == nil {
		commands.paths = map[string]string{}
	}
	commands.paths[name] = path
	return path
}

// outputFiles writes the stack's outputs keys to private files, by key.
func (l *lab) outputFiles(t *testing.T, keys ...string) map[string]string {
	t.Helper()
	outputs, err := l.stack.Outputs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string]string{}
	for _, key := range keys {
		text, _ := outputs[key].Value.(string)
		if text == "" {
			t.Fatalf("the stack has no %s output", key)
		}
		files[key] = filepath.Join(dir, key)
		if err := os.WriteFile(files[key], []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// project is a directory a command beside the program runs in: the repository's Pulumi.yaml and
// src/, and the lab stack's file as an operator writes it (with extra keys, such as homelab:backup).
func (l *lab) project(t *testing.T, extra map[string]any) string {
	t.Helper()
	project := t.TempDir()
	config := map[string]any{
		"homelab:cluster":    l.cluster,
		"homelab:networking": fixture.StackKey(t, "norns", "networking"),
		"homelab:argocd":     map[string]any{"repoURL": "https://github.com/norns-homelab/homelab.git"},
	}
	for k, v := range extra {
		config[k] = v
	}
	stackFile, err := yaml.Marshal(map[string]any{"config": config})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(project, "Pulumi.norns.yaml"), stackFile, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, link := range []string{"src", "Pulumi.yaml"} {
		if err := os.Symlink(filepath.Join(fixture.Root(t), link), filepath.Join(project, link)); err != nil {
			t.Fatal(err)
		}
	}
	return project
}

// runIn runs a command in dir with the test's environment (the stack's talosctl first on PATH:
// useTalosctl) plus env; it returns the output and the exit code.
func runIn(t *testing.T, dir string, env []string, name string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// driftRun runs cmd/drift on the lab stack as an operator would, with the stack's talosconfig and
// secrets outputs as files; it returns the output and the exit code.
func (l *lab) driftRun(t *testing.T, extra ...string) (string, int) {
	t.Helper()
	files := l.outputFiles(t, "talosconfig", "talosSecrets")
	args := append([]string{"--stack", "norns", "--talosconfig", files["talosconfig"], "--secrets", files["talosSecrets"]}, extra...)
	return runIn(t, l.project(t, nil), nil, command(t, "drift"), args...)
}

// talosctl runs the real talosctl against one lab node with the stack's talosconfig, as an
// operator does by hand during an incident.
func (l *lab) talosctl(t *testing.T, node string, args ...string) string {
	t.Helper()
	outputs, err := l.stack.Outputs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "talosconfig")
	if err := os.WriteFile(cfg, []byte(outputs["talosconfig"].Value.(string)), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := labAddr[node]
	full := append([]string{"--talosconfig", cfg, "--endpoints", addr, "--nodes", addr}, args...)
	out, err := exec.Command(l.talosctlPath(), full...).CombinedOutput()
	if err != nil {
		t.Fatalf("talosctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// waitRunning waits until every node runs and answers again (after a reboot by hand).
func (l *lab) waitRunning(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		up := 0
		for _, n := range l.w.snapshot().Nodes {
			if n.Phase == "running" {
				up++
			}
		}
		if up == len(l.nodeNames()) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the nodes did not come back")
		}
	}
}

// TestLabDriftIsFoundAndUndone changes nodes of a running norns by hand with the real talosctl, a
// setting Talos applies live and one it applies only on boot; the drift command reports exactly
// that node and field with exit status 2, never a secret value; the undo re-applies the program's
// config to that node only, with the action the change needs; the command then exits 0.
func TestLabDriftIsFoundAndUndone(t *testing.T) {
	l, _ := adoptedLab(t, fixture.Cluster(t, "norns"))
	var secrets []string
	secrets = append(secrets, bundleSecrets(t, l.w)...)
	for _, fields := range fixture.Vault() {
		for _, v := range fields {
			secrets = append(secrets, v)
		}
	}
	noSecret := func(t *testing.T, out string) {
		t.Helper()
		for _, s := range secrets {
			if s != "" && strings.Contains(out, s) {
				t.Errorf("the drift output holds a secret value (%d characters)", len(s))
			}
		}
	}
	undo := func(t *testing.T, name string, want map[string]string) step {
		t.Helper()
		outputs, err := l.stack.Outputs(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		cfg, sec := filepath.Join(dir, "talosconfig"), filepath.Join(dir, "secrets.yaml")
		_ = os.WriteFile(cfg, []byte(outputs["talosconfig"].Value.(string)), 0o600)
		_ = os.WriteFile(sec, []byte(outputs["talosSecrets"].Value.(string)), 0o600)
		nodes := l.driftNodes(t, cfg, sec)
		plan := drift.PlanUndo("homelab", "norns", nodes)
		got := map[string]string{}
		for _, n := range plan.Nodes {
			got[n.Node.Name] = n.Cost()
		}
		if len(got) != len(want) || func() bool {
			for k, v := range want {
				if got[k] != v {
					return true
				}
			}
			return false
		}() {
			t.Errorf("the undo plans %v, want %v", got, want)
		}
		s := l.upWith(optup.Target(plan.Replace), optup.Replace(plan.Replace))
		if s.err != nil {
			t.Fatalf("the undo failed: %v\n%s", s.err, tail(s.output))
		}
		l.figures(name, s)
		return s
	}

	t.Run("in step: exit 0", func(t *testing.T) {
		out, code := l.driftRun(t)
		if code != 0 || strings.Count(out, "in step with the program") != 3 {
			t.Errorf("exit %d on a cluster in step:\n%s", code, out)
		}
		noSecret(t, out)
	})

	t.Run("a live setting changed by hand on skuld", func(t *testing.T) {
		l.talosctl(t, "skuld", "patch", "machineconfig", "--mode", "no-reboot",
			"--patch", `[{"op": "replace", "path": "/machine/kubelet/extraConfig/maxPods", "value": 250}]`)
		out, code := l.driftRun(t)
		if code != 2 || !strings.Contains(out, "skuld ("+labAddr["skuld"]+"): DRIFTED; undoing it costs the node: live") ||
			!strings.Contains(out, "machine.kubelet.extraConfig.maxPods: node has 250, program has 300 [live]") ||
			strings.Count(out, "DRIFTED") != 1 || strings.Count(out, "node has") != 1 {
			t.Errorf("exit %d; want 2 and exactly skuld's maxPods:\n%s", code, out)
		}
		noSecret(t, out)
		s := undo(t, "undo a live drift", map[string]string{"skuld": "live"})
		if r := count(s.events, "reboot"); len(r) != 0 {
			t.Errorf("a live undo rebooted %v", r)
		}
		for n, ops := range nodeEvents(s.events, "apply-live", "apply-staged", "reboot", "upgrade") {
			if n != "skuld" {
				t.Errorf("the undo touched %s: %v", n, ops)
			}
		}
		if out, code := l.driftRun(t); code != 0 {
			t.Errorf("exit %d after the undo:\n%s", code, out)
		}
	})

	t.Run("a setting Talos applies only on boot, changed by hand on verdandi", func(t *testing.T) {
		l.talosctl(t, "verdandi", "patch", "machineconfig", "--mode", "reboot",
			"--patch", `[{"op": "add", "path": "/machine/env", "value": {"GODEBUG": "netdns=go"}}]`)
		l.waitRunning(t)
		out, code := l.driftRun(t)
		if code != 2 || !strings.Contains(out, "verdandi ("+labAddr["verdandi"]+"): DRIFTED; undoing it costs the node: reboot") ||
			!strings.Contains(out, `machine.env: differs (a secret: values not shown) [reboot]`) || strings.Contains(out, "netdns") ||
			strings.Count(out, "DRIFTED") != 1 {
			t.Errorf("exit %d; want 2 and exactly verdandi's machine.env:\n%s", code, out)
		}
		noSecret(t, out)
		s := undo(t, "undo a reboot drift", map[string]string{"verdandi": "reboot"})
		reboots := count(s.events, "reboot")
		if reboots["verdandi"] != 1 || len(reboots) != 1 {
			t.Errorf("reboots %v; want verdandi once and no other node", reboots)
		}
		if out, code := l.driftRun(t); code != 0 {
			t.Errorf("exit %d after the undo:\n%s", code, out)
		}
		l.noNodeTouched(l.mustUp())
	})

	t.Run("a gate run again on a node that rebooted since its last apply", func(t *testing.T) {
		// A power cut or a reboot by hand: urd boots its config from disk and has nothing staged
		// (no MachineConfig "persistent"). A gate that runs again without its stage (a new gate.sh,
		// a renewed kubeconfig) must find nothing to do, not fail.
		l.talosctl(t, "urd", "reboot", "--wait", "--timeout", "5m")
		l.waitRunning(t)
		gate := []string{"urn:pulumi:norns::homelab::homelab:talos:Rollout$command:local:Command::config-gate-urd"}
		s := l.upWith(optup.Target(gate), optup.Replace(gate))
		if s.err != nil {
			t.Fatalf("the gate failed on a node with nothing staged: %v\n%s", s.err, tail(s.output))
		}
		if r := count(s.events, "reboot"); len(r) != 0 {
			t.Errorf("the gate rebooted %v", r)
		}
		l.noNodeTouched(l.mustUp())
	})
}

// driftNodes reads the drift the way cmd/drift does, with the real talosctl.
func (l *lab) driftNodes(t *testing.T, talosconfig, secretsFile string) []drift.Node {
	t.Helper()
	nodes, err := drift.Nodes(labStackCluster(t, l.cluster), loadTalos(t, l), loadBundle(t, secretsFile),
		drift.Talosctl(l.talosctlPath(), talosconfig))
	if err != nil {
		t.Fatal(err)
	}
	return nodes
}

func loadTalos(t *testing.T, l *lab) *talosplan.Data {
	t.Helper()
	l.mu.Lock()
	data := l.data
	l.mu.Unlock()
	d, err := talosplan.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func loadBundle(t *testing.T, path string) *secrets.Bundle {
	t.Helper()
	b, err := secrets.LoadBundle(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
