package main

// The lab: the real Pulumi engine (the CLI built by lab/build) runs the real program (run, as an
// inline program) against simulated nodes, through provider simulators installed as the plugins
// the SDKs request. Each scenario prints its figures. Without a built lab the tests skip.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/workspace"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/internal/lab/labstate"
	"homelab/internal/stackfile"
	"homelab/internal/talosplan"
	"homelab/src"
)

var norns = map[string]string{"192.168.0.120": "urd", "192.168.0.121": "verdandi", "192.168.0.122": "skuld"}

// lab is one simulated world and one stack driving it.
type lab struct {
	t     *testing.T
	state string
	stack auto.Stack
	cmd   auto.PulumiCommand
	work  string
	env   []string
	data  fs.FS
	mu    sync.Mutex
}

func labDir(t *testing.T) string {
	dir := os.Getenv("LAB_DIR")
	if _, err := os.Stat(filepath.Join(dir, "ready")); dir == "" || err != nil {
		t.Skip("lab not built: run lab/build, then LAB_DIR=.lab go test -v -run Lab .")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// freshWorld is norns's three machines booted into maintenance mode.
func freshWorld() *labstate.State {
	s := emptyWorld()
	for addr := range norns {
		s.Nodes[addr] = &labstate.Node{Address: addr, Role: "controlplane", Mode: labstate.Maintenance}
	}
	return s
}

func emptyWorld() *labstate.State {
	return &labstate.State{
		Nodes: map[string]*labstate.Node{}, CRDs: map[string]bool{}, DaemonSets: map[string]bool{},
		Objects: map[string]bool{}, Charts: map[string]string{}, Vault: fixtureVault(), Written: map[string]map[string]string{},
	}
}

// newLab creates a world and a stack on a file backend, with the given cluster config.
func newLab(t *testing.T, world *labstate.State, cluster map[string]any) *lab {
	dir := labDir(t)
	work := t.TempDir()
	l := &lab{t: t, state: filepath.Join(work, "state"), work: work, data: src.FS}
	for _, d := range []string{l.state, filepath.Join(work, "backend")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := labstate.Write(l.state, world); err != nil {
		t.Fatal(err)
	}
	cmd, err := auto.NewPulumiCommand(&auto.PulumiCommandOptions{Root: filepath.Join(dir, "cli")})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"PULUMI_HOME":                   filepath.Join(dir, "home"),
		"PULUMI_IGNORE_AMBIENT_PLUGINS": "true",
		"PULUMI_SKIP_UPDATE_CHECK":      "true",
		"PULUMI_CONFIG_PASSPHRASE":      "lab",
		"LAB_STATE":                     l.state,
		"LAB_REBOOT_MS":                 "600",
		"PATH":                          filepath.Join(dir, "tools") + string(os.PathListSeparator) + os.Getenv("PATH"),
	}
	for k, v := range env {
		l.env = append(l.env, k+"="+v)
	}
	l.cmd = cmd
	program := func(ctx *pulumi.Context) error {
		l.mu.Lock()
		data := l.data
		l.mu.Unlock()
		_, err := run(ctx, data)
		return err
	}
	ctx := context.Background()
	l.stack, err = auto.UpsertStackInlineSource(ctx, "norns", "homelab", program,
		auto.Pulumi(cmd), auto.WorkDir(work), auto.EnvVars(env), auto.SecretsProvider("passphrase"),
		auto.Project(workspace.Project{
			Name: "homelab", Runtime: workspace.NewProjectRuntimeInfo("go", nil),
			Backend: &workspace.ProjectBackend{URL: "file://" + filepath.Join(work, "backend")},
		}))
	if err != nil {
		t.Fatal(err)
	}
	l.configure(cluster)
	return l
}

func (l *lab) configure(cluster map[string]any) {
	l.t.Helper()
	text, err := json.Marshal(cluster)
	if err != nil {
		l.t.Fatal(err)
	}
	netText, err := json.Marshal(stackKey(l.t, "norns", "networking"))
	if err != nil {
		l.t.Fatal(err)
	}
	err = l.stack.SetAllConfig(context.Background(), auto.ConfigMap{
		"homelab:cluster":                 {Value: string(text)},
		"homelab:networking":              {Value: string(netText)},
		"homelab:argocd":                  {Value: `{"repoURL": "https://github.com/norns-homelab/homelab.git"}`},
		"onepassword:serviceAccountToken": {Value: serviceAccount, Secret: true},
	})
	if err != nil {
		l.t.Fatal(err)
	}
}

func (l *lab) setData(data fs.FS) {
	l.mu.Lock()
	l.data = data
	l.mu.Unlock()
}

// step is what one engine operation did.
type step struct {
	ops    map[string]string // resource name → operation
	events []labstate.Event  // simulator events during the operation
	output string
	wall   time.Duration
	err    error
}

func (l *lab) eventCount() int {
	evs, err := labstate.Events(l.state)
	if err != nil {
		l.t.Fatal(err)
	}
	return len(evs)
}

func (l *lab) since(n int) []labstate.Event {
	evs, err := labstate.Events(l.state)
	if err != nil {
		l.t.Fatal(err)
	}
	return evs[n:]
}

func collect(ch chan events.EngineEvent, ops map[string]string, done chan struct{}) {
	for e := range ch {
		if e.ResourcePreEvent != nil {
			m := e.ResourcePreEvent.Metadata
			ops[m.URN[strings.LastIndex(m.URN, "::")+2:]] = string(m.Op)
		}
	}
	close(done)
}

func (l *lab) up() step {
	l.t.Helper()
	n, start := l.eventCount(), time.Now()
	var out bytes.Buffer
	ch, ops, done := make(chan events.EngineEvent), map[string]string{}, make(chan struct{})
	go collect(ch, ops, done)
	_, err := l.stack.Up(context.Background(), optup.ProgressStreams(&out), optup.ErrorProgressStreams(&out), optup.EventStreams(ch))
	<-done
	return step{ops: ops, events: l.since(n), output: out.String(), wall: time.Since(start), err: err}
}

func (l *lab) preview() step {
	l.t.Helper()
	n, start := l.eventCount(), time.Now()
	var out bytes.Buffer
	ch, ops, done := make(chan events.EngineEvent), map[string]string{}, make(chan struct{})
	go collect(ch, ops, done)
	_, err := l.stack.Preview(context.Background(), optpreview.ProgressStreams(&out), optpreview.ErrorProgressStreams(&out), optpreview.EventStreams(ch), optpreview.Diff())
	<-done
	return step{ops: ops, events: l.since(n), output: out.String(), wall: time.Since(start), err: err}
}

func (l *lab) mustUp() step {
	l.t.Helper()
	s := l.up()
	if s.err != nil {
		l.t.Fatalf("pulumi up failed: %v\n%s", s.err, tail(s.output))
	}
	return s
}

func tail(s string) string {
	lines := strings.Split(s, "\n")
	if len(lines) > 60 {
		lines = lines[len(lines)-60:]
	}
	return strings.Join(lines, "\n")
}

// simulated returns the events of the simulated nodes and cluster; 1Password is not one of them.
func simulated(evs []labstate.Event) []labstate.Event {
	var out []labstate.Event
	for _, e := range evs {
		if e.Actor != "onepassword" {
			out = append(out, e)
		}
	}
	return out
}

// nodeOps returns the events that changed a node (not reads such as health checks), by node.
func nodeOps(evs []labstate.Event) map[string][]string {
	out := map[string][]string{}
	for _, e := range evs {
		switch e.Op {
		case "install", "stage", "apply-live", "reboot", "bootstrap", "reset", "apply-refused", "bootstrap-refused":
			out[e.Node] = append(out[e.Node], e.Op)
		}
	}
	return out
}

func count(evs []labstate.Event, op string) map[string]int {
	out := map[string]int{}
	for _, e := range evs {
		if e.Op == op {
			out[e.Node]++
		}
	}
	return out
}

// maxOverlap is the largest number of events of op whose [Start, End] intervals overlap.
func maxOverlap(evs []labstate.Event, op string, nodes map[string]string) int {
	best := 0
	for _, a := range evs {
		if a.Op != op || (nodes != nil && nodes[a.Node] == "") {
			continue
		}
		n := 0
		for _, b := range evs {
			if b.Op == op && (nodes == nil || nodes[b.Node] != "") && !b.Start.After(a.Start) && b.End.After(a.Start) {
				n++
			}
		}
		best = max(best, n)
	}
	return best
}

// longestApplyChain is the longest dependency path through resources that touch nodes (config
// applies and reboot gates), from the state.
func (l *lab) longestApplyChain() int {
	dep, err := l.stack.Export(context.Background())
	if err != nil {
		l.t.Fatal(err)
	}
	var d apitype.DeploymentV3
	if err := json.Unmarshal(dep.Deployment, &d); err != nil {
		l.t.Fatal(err)
	}
	touches := map[string]bool{}
	deps := map[string][]string{}
	for _, r := range d.Resources {
		urn := string(r.URN)
		touches[urn] = r.Type == applyToken || (r.Type == commandToken && strings.Contains(urn, "config-reboot-"))
		for _, x := range r.Dependencies {
			deps[urn] = append(deps[urn], string(x))
		}
	}
	memo := map[string]int{}
	var depth func(string) int
	depth = func(urn string) int {
		if v, ok := memo[urn]; ok {
			return v
		}
		best := 0
		for _, x := range deps[urn] {
			best = max(best, depth(x))
		}
		if touches[urn] {
			best++
		}
		memo[urn] = best
		return best
	}
	longest := 0
	for urn := range deps {
		longest = max(longest, depth(urn))
	}
	return longest
}

// figures prints what a step cost.
func (l *lab) figures(name string, s step) {
	reboots := count(s.events, "reboot")
	per := make([]string, 0, len(norns))
	for _, addr := range sortedKeys(s.events) {
		per = append(per, fmt.Sprintf("%s=%d", nameOf(addr), reboots[addr]))
	}
	l.t.Logf("FIGURES %s: reboots per node [%s], max concurrent control-plane reboots %d, longest apply chain %d, wall %.1fs",
		name, strings.Join(per, " "), maxOverlap(s.events, "reboot", norns), l.longestApplyChain(), s.wall.Seconds())
}

func sortedKeys(evs []labstate.Event) []string {
	seen := map[string]bool{}
	for _, e := range evs {
		if e.Node != "" {
			seen[e.Node] = true
		}
	}
	for addr := range norns {
		seen[addr] = true
	}
	var out []string
	for a := range seen {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

func nameOf(addr string) string {
	if n, ok := norns[addr]; ok {
		return n
	}
	return addr
}

// srcWith is src/ with some files added or replaced.
func srcWith(t *testing.T, files map[string]string) fs.FS {
	t.Helper()
	data, err := src.With(files)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestLabNewClusterAndItsLife(t *testing.T) {
	l := newLab(t, freshWorld(), freshNorns(t))

	t.Run("preview contacts no node", func(t *testing.T) {
		s := l.preview()
		if s.err != nil {
			t.Fatalf("preview failed: %v\n%s", s.err, tail(s.output))
		}
		if evs := simulated(s.events); len(evs) != 0 {
			t.Errorf("preview reached a simulated node or the cluster: %v", evs)
		}
		l.figures("preview", s)
	})

	t.Run("fresh bring-up", func(t *testing.T) {
		s := l.mustUp()
		l.figures("bring-up", s)
		installs, reboots := count(s.events, "install"), count(s.events, "reboot")
		for addr, name := range norns {
			if installs[addr] != 1 || reboots[addr] != 1 {
				t.Errorf("%s: %d installs and %d handover reboots, want 1 and 1", name, installs[addr], reboots[addr])
			}
		}
		if c := maxOverlap(s.events, "reboot", norns); c != 1 {
			t.Errorf("%d control planes rebooted at once", c)
		}
		if n := len(count(s.events, "bootstrap")); n != 1 {
			t.Errorf("%d bootstraps", n)
		}
		for _, e := range s.events {
			if e.Op == "cilium-without-gateway-api" || strings.HasSuffix(e.Op, "-refused") {
				t.Errorf("event %s: %s", e.Op, e.Detail)
			}
		}
		world, err := labstate.Read(l.state)
		if err != nil {
			t.Fatal(err)
		}
		if world.DaemonSets["kube-flannel"] || world.DaemonSets["kube-proxy"] {
			t.Errorf("Flannel or kube-proxy remains: %v", world.DaemonSets)
		}
		for addr, n := range world.Nodes {
			if n.Config.Reboot["cluster.network.cni.name"] != "none" {
				t.Errorf("%s runs CNI %q after the handover", addr, n.Config.Reboot["cluster.network.cni.name"])
			}
		}
		if !world.Objects["CiliumLoadBalancerIPPool/lan"] || !world.Objects["Application/root"] {
			t.Errorf("objects %v lack the pool or the root application", world.Objects)
		}
		if _, ok := world.Written["talos-norns"]["secrets.yaml"]; !ok {
			t.Error("the cluster identity was not backed up to the vault")
		}
		// The handover applies happen only after Cilium: the first reboot follows the chart.
		var chartAt, firstReboot time.Time
		for _, e := range s.events {
			if e.Op == "chart" && strings.HasPrefix(e.Detail, "cilium") {
				chartAt = e.Time
			}
			if e.Op == "reboot" && firstReboot.IsZero() {
				firstReboot = e.Start
			}
		}
		if chartAt.IsZero() || firstReboot.Before(chartAt) {
			t.Errorf("first handover reboot at %v, Cilium installed at %v", firstReboot, chartAt)
		}
	})

	t.Run("second up changes nothing", func(t *testing.T) {
		s := l.mustUp()
		l.figures("re-up", s)
		for name, op := range s.ops {
			if op != "same" && op != "read" {
				t.Errorf("%s: %s on a re-run with no change", name, op)
			}
		}
		if ops := nodeOps(s.events); len(ops) != 0 {
			t.Errorf("nodes touched: %v", ops)
		}
	})

	t.Run("live change reaches every node in parallel without a reboot", func(t *testing.T) {
		l.setData(srcWith(t, map[string]string{"talos/patches/kubelet.yaml": "machine:\n  kubelet:\n    extraConfig:\n      maxPods: 250\n"}))
		p := l.preview()
		for name, op := range p.ops {
			if strings.HasPrefix(name, "config-reboot-") && op != "same" {
				t.Errorf("preview: %s %s for a live change", name, op)
			}
		}
		s := l.mustUp()
		l.figures("live change", s)
		if r := count(s.events, "reboot"); len(r) != 0 {
			t.Errorf("reboots: %v", r)
		}
		if live := count(s.events, "apply-live"); len(live) != 3 {
			t.Errorf("live applies %v, want one per node", live)
		}
		if c := maxOverlap(s.events, "apply-live", nil); c < 2 {
			t.Errorf("at most %d live applies ran at once; they must run in parallel", c)
		}
	})

	t.Run("reboot change rolls one node at a time", func(t *testing.T) {
		real, err := fs.ReadFile(src.FS, "talos/schematic.yaml")
		if err != nil {
			t.Fatal(err)
		}
		l.setData(srcWith(t, map[string]string{
			"talos/patches/kubelet.yaml": "machine:\n  kubelet:\n    extraConfig:\n      maxPods: 250\n",
			"talos/schematic.yaml":       strings.Replace(string(real), "      - siderolabs/gvisor\n", "", 1),
		}))
		p := l.preview()
		for addr, name := range norns {
			if p.ops["config-reboot-"+name] != "update" {
				t.Errorf("preview does not show %s (%s) rebooting: %q", name, addr, p.ops["config-reboot-"+name])
			}
		}
		if evs := simulated(p.events); len(evs) != 0 {
			t.Errorf("preview reached a simulated node or the cluster: %v", evs)
		}
		s := l.mustUp()
		l.figures("reboot change", s)
		reboots := count(s.events, "reboot")
		for addr, name := range norns {
			if reboots[addr] != 1 {
				t.Errorf("%s rebooted %d times, want exactly once", name, reboots[addr])
			}
		}
		if c := maxOverlap(s.events, "reboot", norns); c != 1 {
			t.Errorf("%d control planes rebooted at once", c)
		}
	})

	t.Run("adopting the running cluster reboots nothing", func(t *testing.T) {
		c := freshNorns(t)
		c["adopt"] = true
		l.configure(c)
		p := l.preview()
		for name, op := range p.ops {
			if strings.Contains(op, "replace") {
				t.Errorf("preview after adopt: %s %s", name, op)
			}
		}
		s := l.mustUp()
		l.figures("adopt", s)
		if ops := nodeOps(s.events); len(ops) != 0 {
			t.Errorf("nodes touched: %v", ops)
		}
	})

	t.Run("adding a node touches no other node", func(t *testing.T) {
		if err := labstate.Update(l.state, func(w *labstate.State) error {
			w.Nodes["192.168.0.123"] = &labstate.Node{Address: "192.168.0.123", Role: "worker", Mode: labstate.Maintenance}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		c := freshNorns(t)
		c["adopt"] = true
		c["nodes"] = append(c["nodes"].([]any), map[string]any{"name": "mimir", "address": "192.168.0.123", "role": "worker"})
		l.configure(c)
		s := l.mustUp()
		l.figures("add node", s)
		for addr, ops := range nodeOps(s.events) {
			if addr != "192.168.0.123" {
				t.Errorf("adding mimir touched %s: %v", nameOf(addr), ops)
			}
		}
		if got := strings.Join(nodeOps(s.events)["192.168.0.123"], ","); got != "install,stage,apply-live" {
			t.Errorf("mimir went through %q; want install,stage,apply-live: straight into the final config, no extra reboot", got)
		}
		world, _ := labstate.Read(l.state)
		if world.DaemonSets["kube-flannel"] {
			t.Error("Flannel came back")
		}
	})

	t.Run("state export holds no secret in clear", func(t *testing.T) {
		// Plain `pulumi stack export`: the Automation API's Export shows secrets.
		text, stderr, _, err := l.cmd.Run(context.Background(), l.work, nil, nil, nil, l.env, "stack", "export", "--stack", "norns")
		if err != nil {
			t.Fatalf("pulumi stack export: %v\n%s", err, stderr)
		}
		for _, line := range strings.Split(text, "\n") {
			if strings.Contains(line, "LAB-SECRET") {
				t.Logf("clear secret: %s", strings.TrimSpace(line))
			}
		}
		for _, secret := range []string{"LAB-SECRET", "LAB-KUBECONFIG-SECRET", "LAB-TALOSCONFIG-SECRET", connectToken, "fixture-credentials", serviceAccount, "fixture-server-key"} {
			if strings.Contains(text, secret) {
				t.Errorf("the plain stack export contains %q", secret)
			}
		}
		if !strings.Contains(text, "ciphertext") {
			t.Error("the export has no encrypted value at all: the test would prove nothing")
		}
	})

	t.Run("destroy stops at the protected resources and harms nothing", func(t *testing.T) {
		n, start := l.eventCount(), time.Now()
		var out bytes.Buffer
		_, err := l.stack.Destroy(context.Background(), optdestroy.ProgressStreams(&out))
		evs := l.since(n)
		t.Logf("FIGURES destroy: wall %.1fs", time.Since(start).Seconds())
		if err == nil || !strings.Contains(err.Error()+out.String(), "protect") {
			t.Errorf("destroy did not stop at a protected resource: %v\n%s", err, tail(out.String()))
		}
		for _, e := range evs {
			if e.Op == "reset" || e.Op == "delete" || e.Op == "reboot" {
				t.Errorf("destroy did %s %s %s", e.Op, e.Node, e.Detail)
			}
		}
		world, _ := labstate.Read(l.state)
		for addr, node := range world.Nodes {
			if node.Mode != labstate.Running {
				t.Errorf("%s is %s after destroy", addr, node.Mode)
			}
		}
		dep, err := l.stack.Export(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(dep.Deployment), "cluster-secrets") {
			t.Error("the secrets bundle left the state")
		}
	})
}

// adoptedWorld is norns as it runs today: on Cilium, bootstrapped, no Flannel or kube-proxy.
func adoptedWorld(t *testing.T) *labstate.State {
	s := emptyWorld()
	s.Bootstrapped = true
	s.Charts["cilium"] = "1.18.3"
	talos, err := talosplan.Load(src.FS)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := stackfile.LoadConfig(".", "norns")
	if err != nil {
		t.Fatal(err)
	}
	for addr, name := range norns {
		s.Nodes[addr] = &labstate.Node{Address: addr, Role: "controlplane", Mode: labstate.Running, Config: &labstate.Config{
			Hostname: name, Reboot: map[string]string{
				"cluster.network.cni.name": "none", "cluster.proxy.disabled": "true",
				"machine.install.image": talos.InstallerImage(cfg.Cluster),
			},
		}}
	}
	return s
}

func TestLabAdoptionReplacesAndRebootsNothing(t *testing.T) {
	l := newLab(t, adoptedWorld(t), stack(t, "norns"))
	p := l.preview()
	if p.err != nil {
		t.Fatalf("preview failed: %v\n%s", p.err, tail(p.output))
	}
	for name, op := range p.ops {
		if strings.Contains(op, "replace") || strings.Contains(op, "delete") {
			t.Errorf("preview after adoption: %s %s", name, op)
		}
	}
	if evs := simulated(p.events); len(evs) != 0 {
		t.Errorf("preview reached a simulated node or the cluster: %v", evs)
	}
	s := l.mustUp()
	l.figures("adoption", s)
	for _, e := range s.events {
		switch e.Op {
		case "bootstrap", "reboot", "install", "bootstrap-refused":
			t.Errorf("adoption did %s on %s", e.Op, nameOf(e.Node))
		}
	}
	if again := l.mustUp(); len(nodeOps(again.events)) != 0 {
		t.Errorf("the run after adoption touched nodes: %v", nodeOps(again.events))
	}
}

func TestLabMissingVaultItemStopsBeforeAnyNode(t *testing.T) {
	world := freshWorld()
	delete(world.Vault["onepassword-connect"], "token")
	l := newLab(t, world, freshNorns(t))
	s := l.up()
	t.Logf("FIGURES missing vault item: wall %.1fs", s.wall.Seconds())
	if s.err == nil {
		t.Fatal("pulumi up went on without the vault field")
	}
	if !strings.Contains(s.output, `item "onepassword-connect" in vault "kubernetes" lacks field "token"`) {
		t.Errorf("the output does not name vault, item and field:\n%s", tail(s.output))
	}
	if ops := nodeOps(s.events); len(ops) != 0 {
		t.Errorf("nodes touched: %v", ops)
	}
	for name, op := range s.ops {
		// The engine's default 1Password provider, created for the vault reads, is no resource of the program.
		if op != "same" && !strings.HasPrefix(name, "homelab-") && !strings.HasPrefix(name, "default_") {
			t.Errorf("%s %s", name, op)
		}
	}
}

func TestLabDestroyResetsNodesOnlyOnOptIn(t *testing.T) {
	c := freshNorns(t)
	c["resetOnDestroy"] = true
	l := newLab(t, freshWorld(), c)
	l.mustUp()
	n, start := l.eventCount(), time.Now()
	_, err := l.stack.Destroy(context.Background())
	t.Logf("FIGURES destroy with resetOnDestroy: wall %.1fs", time.Since(start).Seconds())
	if err == nil || !strings.Contains(err.Error(), "protect") {
		t.Errorf("destroy did not stop at the protected resources: %v", err)
	}
	resets := count(l.since(n), "reset")
	world, _ := labstate.Read(l.state)
	for addr, name := range norns {
		if resets[addr] != 1 || world.Nodes[addr].Mode != labstate.Maintenance {
			t.Errorf("%s: %d resets, now %s; the stack opted in to resetting nodes", name, resets[addr], world.Nodes[addr].Mode)
		}
	}
}
