package scenarios

// The lab's harness: the real Pulumi engine (the CLI lab/build builds) runs the program (run, as
// an Automation API inline program) against a simulated homelab (labworld: Talos nodes that serve
// the real machine API, and a real Kubernetes control plane), through provider simulators
// installed as the plugins the SDKs request; the program's scripts run the real talosctl and
// kubectl. Scenarios live in lab_*_test.go, one file per family. Without a built lab they skip.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/events"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optpreview"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optremove"
	"github.com/pulumi/pulumi/sdk/v3/go/auto/optup"
	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
	"github.com/pulumi/pulumi/sdk/v3/go/common/workspace"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/internal/cluster"
	"homelab/internal/fixture"
	_ "homelab/internal/golden" // registers -update for go test ./...
	"homelab/internal/stackconfig"
	"homelab/src"
)

// opTimeout bounds one engine operation of a scenario, so a hang fails the scenario instead of CI.
const opTimeout = 8 * time.Minute

// The Talos provider's ConfigurationApply and the command provider's local Command.
const (
	applyToken   = "talos:machine/configurationApply:ConfigurationApply"
	commandToken = "command:local:Command"
)

// labScale compresses hardware time in the lab (see lab/sim/labtime): a 90 s reboot takes 3 s.
const labScale = 30

// labNet is the lab's loopback network, 127.0.<labNet>.0/24: $LAB_NET (default 10), so that
// scenario runs side by side (.ci/run runs three shards) never share a node's address.
var labNet = func() string {
	if n := os.Getenv("LAB_NET"); n != "" {
		return n
	}
	return "10"
}()

// labIP is host h of the lab's network.
func labIP(h int) string { return fmt.Sprintf("127.0.%s.%d", labNet, h) }

// labAddr are the lab's node addresses: loopback addresses, so the real talosctl reaches each
// simulated node.
var labAddr = map[string]string{
	"urd": labIP(120), "verdandi": labIP(121), "skuld": labIP(122),
	"w1": labIP(131), "w2": labIP(132), "mimir": labIP(133),
	"w3": labIP(134), "w4": labIP(135), "w5": labIP(136), "w6": labIP(137),
}

// identityVault is the vault of the identity backup (the default homelab:onepassword.backupVault).
const identityVault = "kubernetes-identity"

// labVIP stands for a stack's VIP (homelab:cluster.vip.address) in the lab.
var labVIP = labIP(119)

func labNameOf(addr string) string {
	for n, a := range labAddr {
		if a == addr {
			return n
		}
	}
	return addr
}

// basePath is the PATH the tests started with.
var basePath string

// labRollout is a homelab:rollout value in lab time: the budgets the operator writes for
// hardware, compressed as the lab compresses the hardware (a 30-minute budget is 60 s), so a
// budget that a hardware node would exceed is exceeded in the lab too. talosctl and kubectl take
// their timeouts in real time.
func labRollout(r map[string]any) map[string]any {
	out := map[string]any{}
	for _, k := range []string{"upgradeTimeout", "rebootTimeout"} {
		v, ok := r[k].(string)
		if !ok {
			v = stackconfig.DefaultNodeDowntime
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			panic(fmt.Sprintf("rollout %s: %v", k, err))
		}
		out[k] = (d / labScale).String()
	}
	for k, v := range r {
		if _, done := out[k]; !done {
			out[k] = v
		}
	}
	return out
}

// labBuilt reports whether LAB_DIR holds a lab that lab/build finished.
func labBuilt() bool {
	dir := os.Getenv("LAB_DIR")
	_, err := os.Stat(filepath.Join(dir, "ready"))
	return dir != "" && err == nil
}

// TestMain skips every scenario with one line when the lab is not built: `go test ./...` then
// costs nothing here.
func TestMain(m *testing.M) {
	if !labBuilt() {
		fmt.Println("lab not built: the scenarios skip; run them with lab/build && LAB_DIR=$PWD/.lab go test -count=1 -timeout 80m -v ./lab/scenarios (or mise run lab)")
		os.Exit(0)
	}
	// The program runs in this process (an inline program) and looks for talosctl and kubectl on
	// its PATH, as it would in the process the Pulumi CLI starts: the lab's come first (useTalosctl).
	basePath = os.Getenv("PATH")
	// The repository's commands (command) are built once into a directory that goes with the run.
	dir, err := os.MkdirTemp("", "lab-commands-")
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	commands.dir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func labDir(t *testing.T) string {
	abs, err := filepath.Abs(os.Getenv("LAB_DIR"))
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// world is one running labworld process.
type world struct {
	t     *testing.T
	state string
	cmd   *exec.Cmd
	http  *http.Client
}

func startWorld(t *testing.T, dir, state string) *world {
	t.Helper()
	cmd := exec.Command(filepath.Join(dir, "bin", "labworld"))
	cmd.Env = append(os.Environ(), "LAB_STATE="+state, "LAB_BIN="+filepath.Join(dir, "bin"),
		"LAB_TALOSCTL="+filepath.Join(dir, "talosctl"), fmt.Sprintf("LAB_TIME_SCALE=%d", labScale))
	logf, err := os.Create(filepath.Join(state, "world.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(state, "world.sock")
	// The control API's calls that wait (a chart's workloads ready) take longer on a loaded machine.
	w := &world{t: t, state: state, cmd: cmd, http: &http.Client{Timeout: 3 * time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return net.Dial("unix", sock) },
	}}}
	t.Cleanup(func() {
		if t.Failed() {
			w.keepGoroutines()
		}
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _, _ = cmd.Process.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
		if t.Failed() {
			keepLogs(t, state)
		}
	})
	// Ready when the control API accepts a connection: the socket file exists a moment before its
	// listener does, a moment a loaded machine can stretch.
	for i := 0; ; i++ {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			break
		}
		if i > 600 {
			t.Fatalf("labworld did not start within 30 s; see %s", logf.Name())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return w
}

// keepLogs keeps a failed scenario's world logs and events, which go with its temporary directory:
// the last 2,000 lines of each into $LAB_DIR/failed/<test>/, and the world's last events and log
// lines in the test's own output, which is all a CI run shows.
func keepLogs(t *testing.T, state string) {
	dest := filepath.Join(labDir(t), "failed", strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()), filepath.Base(filepath.Dir(state)))
	world, events := filepath.Join(state, "world.log"), filepath.Join(state, "events.jsonl")
	logs, _ := filepath.Glob(filepath.Join(state, "kube", "logs", "*.log"))
	kept := map[string][]string{}
	for _, f := range append([]string{world, events}, logs...) {
		lines := lastLines(f, 2000)
		if len(lines) == 0 {
			continue
		}
		kept[f] = lines
		if err := os.MkdirAll(dest, 0o700); err == nil {
			_ = os.WriteFile(filepath.Join(dest, filepath.Base(f)), []byte(strings.Join(lines, "\n")+"\n"), 0o600)
		}
	}
	last := func(lines []string, n int) string { return strings.Join(lines[max(0, len(lines)-n):], "\n") }
	t.Logf("the world's last events and log lines (all in %s):\n%s\n%s", dest, last(kept[events], 30), last(kept[world], 10))
	if b, err := os.ReadFile(filepath.Join(state, "goroutines.txt")); err == nil {
		_ = os.WriteFile(filepath.Join(dest, "goroutines.txt"), b, 0o600)
		if stuck := stuckGoroutines(string(b)); stuck != "" {
			t.Logf("labworld's goroutines in the world's code that waited a minute or more (all in %s):\n%s", filepath.Join(dest, "goroutines.txt"), stuck)
		}
	}
}

// keepGoroutines saves the world's goroutines (GET /goroutines) next to its logs, before it stops:
// a world that hangs (a lock never released, a call that never returns) shows where.
func (w *world) keepGoroutines() {
	resp, err := w.http.Get("http://world/goroutines")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil {
		_ = os.WriteFile(filepath.Join(w.state, "goroutines.txt"), b, 0o600)
	}
}

// stuckGoroutines picks, from a goroutine dump (pprof debug=2), the goroutines that have waited a
// minute or more in the world's own code, other than on a socket: each one's header and its
// frames in lab/sim/world.
func stuckGoroutines(dump string) string {
	var b strings.Builder
	shown := 0
	for _, g := range strings.Split(dump, "\n\n") {
		lines := strings.Split(strings.TrimSpace(g), "\n")
		// A listener waits on its socket for good ("IO wait"): that is no hang.
		if !strings.Contains(lines[0], "minute") || strings.Contains(lines[0], "[IO wait") {
			continue
		}
		var frames []string
		for _, l := range lines[1:] {
			if strings.Contains(l, "lab/sim/world.") {
				frames = append(frames, "    "+strings.TrimSpace(l))
			}
		}
		if len(frames) == 0 {
			continue
		}
		if shown++; shown > 8 {
			b.WriteString("(more in the file)\n")
			break
		}
		fmt.Fprintf(&b, "%s\n%s\n", lines[0], strings.Join(frames[:min(len(frames), 6)], "\n"))
	}
	return strings.TrimRight(b.String(), "\n")
}

// lastLines returns a file's last n lines; none when it cannot be read.
func lastLines(path string, n int) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

func (w *world) post(path string, body any) {
	w.t.Helper()
	b, _ := json.Marshal(body)
	resp, err := w.http.Post("http://world"+path, "application/json", bytes.NewReader(b))
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		text, _ := io.ReadAll(resp.Body)
		w.t.Fatalf("world %s: %s", path, text)
	}
}

// worldState mirrors the world's control API (lab/sim/world/control.go).
type worldState struct {
	Nodes        []worldNode `json:"nodes"`
	Bootstrapped bool        `json:"bootstrapped"`
	EtcdMembers  []struct {
		Name    string `json:"name"`
		Address string `json:"address"`
	} `json:"etcdMembers"`
	Kubeconfig string `json:"kubeconfig"`
	// VIPs maps each shared VIP to the address of its holder ("" for none).
	VIPs          map[string]string `json:"vips"`
	APIServerSANs []string          `json:"apiServerSANs"`
}

type worldNode struct {
	Address   string `json:"address"`
	Phase     string `json:"phase"`
	Installed bool   `json:"installed"`
	Image     struct {
		Ref, Version, Schematic string
		SecureBoot              bool
	} `json:"image"`
	Release        string   `json:"release"`
	KernelArgs     []string `json:"kernelArgs"`
	BootID         string   `json:"bootID"`
	Etcd           bool     `json:"etcd"`
	Hostname       string   `json:"hostname"`
	Role           string   `json:"role"`
	CNI            string   `json:"cni"`
	ProxyDisabled  bool     `json:"proxyDisabled"`
	KubeletVersion string   `json:"kubeletVersion"`
	Staged         bool     `json:"staged"`
	Config         string   `json:"config"`
}

// waitBooted waits until n machines have finished booting (lab time: one boot, a few seconds).
func (w *world) waitBooted(n int) {
	w.t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		booted := 0
		for _, node := range w.snapshot().Nodes {
			if node.Phase == "maintenance" || node.Phase == "running" {
				booted++
			}
		}
		if booted >= n {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%d of %d machines booted within a minute", booted, n)
		}
	}
}

func (w *world) snapshot() worldState {
	w.t.Helper()
	resp, err := w.http.Get("http://world/state")
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	var s worldState
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		w.t.Fatal(err)
	}
	return s
}

func (s worldState) node(name string) worldNode {
	for _, n := range s.Nodes {
		if n.Address == labAddr[name] {
			return n
		}
	}
	return worldNode{}
}

// labEvent mirrors lab/sim/labevent.Event.
type labEvent struct {
	Time   time.Time     `json:"time"`
	Actor  string        `json:"actor"`
	Op     string        `json:"op"`
	Node   string        `json:"node"`
	Start  time.Time     `json:"start"`
	End    time.Time     `json:"end"`
	Real   time.Duration `json:"real"`
	Detail string        `json:"detail"`
}

func (w *world) events() []labEvent {
	f, err := os.Open(filepath.Join(w.state, "events.jsonl"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		w.t.Fatal(err)
	}
	defer f.Close()
	var out []labEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var e labEvent
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

// kubectl runs the real kubectl against the lab cluster as admin.
func (w *world) kubectl(args ...string) (string, error) {
	w.t.Helper()
	s := w.snapshot()
	kc := filepath.Join(w.state, "admin.kubeconfig")
	if err := os.WriteFile(kc, []byte(s.Kubeconfig), 0o600); err != nil {
		w.t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(labDir(w.t), "bin", "kubectl"), append([]string{"--kubeconfig", kc}, args...)...).CombinedOutput()
	return string(out), err
}

// lab is one world and one stack driving it.
type lab struct {
	t     *testing.T
	w     *world
	stack auto.Stack
	cmd   auto.PulumiCommand
	work  string
	env   []string
	mu    sync.Mutex
	data  fs.FS
	// cluster is the stack's homelab:cluster value.
	cluster map[string]any
	// rollout is the stack's homelab:rollout value, as the operator writes it (hardware time).
	rollout map[string]any
	// newStack (re)creates the stack, empty or as it is.
	newStack func()
	// talosctlRelease is the release (vX.Y) of the talosctl on the program's PATH.
	talosctlRelease string
	// runnerTemp is the scripts' $RUNNER_TEMP.
	runnerTemp string
}

// labNode is a machine of a lab world.
type labNode struct {
	name, role string
	// config, when set, is the machine config it already runs (an existing cluster).
	config string
	etcd   bool
	// firmware is "bios" or "" (UEFI): GRUB or systemd-boot.
	firmware string
	// firmwareSeconds is how long its firmware takes to reach the boot loader at each boot.
	firmwareSeconds int
}

// newLab starts a world with machines in maintenance mode (or running, with config) and a stack
// with the given cluster config, its nodes at their lab addresses.
func newLab(t *testing.T, machines []labNode, c map[string]any) *lab {
	dir := labDir(t)
	work := t.TempDir()
	if keep := os.Getenv("LAB_KEEP"); keep != "" {
		// LAB_KEEP=<dir> keeps each scenario's world (state, logs, events) for a post-mortem.
		work = filepath.Join(keep, strings.ReplaceAll(t.Name(), "/", "_"))
		_ = os.RemoveAll(work)
	}
	state := filepath.Join(work, "state")
	for _, d := range []string{state, filepath.Join(work, "backend")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	writeVault(t, state, map[string]map[string]map[string]string{"kubernetes": fixture.Vault(), identityVault: {}})
	// Each scenario has its own $RUNNER_TEMP, as each job has: scenarios run side by side, and one
	// must not find another's private directories.
	l := &lab{t: t, work: work, data: src.FS, runnerTemp: filepath.Join(work, "runner-temp")}
	l.w = startWorld(t, dir, state)
	for _, m := range machines {
		l.w.post("/nodes", map[string]any{"address": labAddr[m.name], "config": m.config, "etcd": m.etcd, "firmware": m.firmware,
			"firmwareSeconds": m.firmwareSeconds})
	}
	// The operator powers the machines on and waits for them to boot (into maintenance mode, or
	// into the Talos they run) before the first run: a machine still booting does not answer.
	l.w.waitBooted(len(machines))
	cmd, err := auto.NewPulumiCommand(&auto.PulumiCommandOptions{Root: filepath.Join(dir, "cli")})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"PULUMI_HOME":                   filepath.Join(dir, "home"),
		"PULUMI_IGNORE_AMBIENT_PLUGINS": "true",
		"PULUMI_SKIP_UPDATE_CHECK":      "true",
		"PULUMI_CONFIG_PASSPHRASE":      "lab",
		"LAB_STATE":                     state,
		"LAB_TIME_SCALE":                strconv.Itoa(labScale),
		// As in a GitHub Actions job: the scripts keep their key material under it.
		"RUNNER_TEMP": l.runnerTemp,
	}
	if err := os.MkdirAll(env["RUNNER_TEMP"], 0o700); err != nil {
		t.Fatal(err)
	}
	for k, v := range env {
		l.env = append(l.env, k+"="+v)
	}
	l.cmd = cmd
	program := func(ctx *pulumi.Context) error {
		l.mu.Lock()
		data := l.data
		l.mu.Unlock()
		_, err := cluster.Run(ctx, data)
		return err
	}
	l.newStack = func() {
		var err error
		l.stack, err = auto.UpsertStackInlineSource(context.Background(), "norns", "homelab", program,
			auto.Pulumi(cmd), auto.WorkDir(work), auto.EnvVars(env), auto.SecretsProvider("passphrase"),
			auto.Project(workspace.Project{
				Name: "homelab", Runtime: workspace.NewProjectRuntimeInfo("go", nil),
				Backend: &workspace.ProjectBackend{URL: "file://" + filepath.Join(work, "backend")},
			}))
		if err != nil {
			t.Fatal(err)
		}
	}
	l.newStack()
	l.configure(c)
	return l
}

// talosctlPath is the talosctl the stack's operator runs: the lab's of the stack's release.
func (l *lab) talosctlPath() string {
	return filepath.Join(labDir(l.t), "talosctl", l.talosctlRelease, "talosctl")
}

// useTalosctl puts the lab's talosctl of the stack's Talos release on the PATH the program and
// its scripts run with, as an operator installs the release .mise.toml pins: the program needs
// the talosctl of its nodes' release (lifecycle.NeedTools).
func (l *lab) useTalosctl(talosVersion string) {
	l.t.Helper()
	parts := strings.SplitN(talosVersion, ".", 3)
	minor := parts[0] + "." + parts[1]
	if minor == l.talosctlRelease {
		return
	}
	dir := labDir(l.t)
	bin := filepath.Join(dir, "talosctl", minor)
	if _, err := os.Stat(filepath.Join(bin, "talosctl")); err != nil {
		l.t.Fatalf("the lab has no talosctl %s (lab/build builds one per release the program supports): %v", minor, err)
	}
	path := strings.Join([]string{bin, filepath.Join(dir, "bin"), basePath}, string(os.PathListSeparator))
	// The inline program runs in this process; its scripts run from the CLI's environment.
	if err := os.Setenv("PATH", path); err != nil {
		l.t.Fatal(err)
	}
	l.stack.Workspace().SetEnvVar("PATH", path)
	l.talosctlRelease = minor
}

// loseState deletes the stack's state, the cluster left running (pulumi stack rm --force), and
// starts an empty stack of the same name with the same configuration.
func (l *lab) loseState() {
	l.t.Helper()
	if err := l.stack.Workspace().RemoveStack(context.Background(), "norns", optremove.Force()); err != nil {
		l.t.Fatal(err)
	}
	l.newStack()
	l.configure(l.cluster)
}

// labVaultItem is an item of the 1Password simulator's vault file (lab/sim/cmd/pulumi-resource-onepassword).
type labVaultItem struct {
	UUID     string            `json:"uuid"`
	Title    string            `json:"title"`
	Category string            `json:"category,omitempty"`
	Tags     []string          `json:"tags,omitempty"`
	Section  string            `json:"section,omitempty"`
	Fields   map[string]string `json:"fields"`
}

// writeVault writes the lab's vaults, items by title (each item's UUID is its title).
func writeVault(t *testing.T, state string, vault map[string]map[string]map[string]string) {
	t.Helper()
	file := map[string][]labVaultItem{}
	for name, items := range vault {
		file[name] = []labVaultItem{}
		titles := make([]string, 0, len(items))
		for title := range items {
			titles = append(titles, title)
		}
		sort.Strings(titles)
		for _, title := range titles {
			file[name] = append(file[name], labVaultItem{UUID: title, Title: title, Fields: items[title]})
		}
	}
	b, err := json.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, "vault.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// readVaultItems reads the lab's vault: its items by vault.
func readVaultItems(t *testing.T, state string) map[string][]labVaultItem {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "vault.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string][]labVaultItem
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// labCluster turns a cluster config into the lab's: node addresses and the endpoint on loopback.
func labCluster(t *testing.T, c map[string]any) map[string]any {
	t.Helper()
	out := map[string]any{}
	for k, v := range c {
		out[k] = v
	}
	var nodes []any
	for _, n := range c["nodes"].([]any) {
		m := map[string]any{}
		for k, v := range n.(map[string]any) {
			m[k] = v
		}
		addr, ok := labAddr[m["name"].(string)]
		if !ok {
			t.Fatalf("no lab address for node %v", m["name"])
		}
		m["address"] = addr
		nodes = append(nodes, m)
	}
	out["nodes"] = nodes
	out["endpoint"] = "https://" + labAddr["urd"] + ":6443"
	if v, ok := c["vip"].(map[string]any); ok {
		vip := map[string]any{}
		for k, x := range v {
			vip[k] = x
		}
		if ep, _ := c["endpoint"].(string); strings.Contains(ep, "://"+v["address"].(string)+":") {
			out["endpoint"] = "https://" + labVIP + ":6443"
		}
		vip["address"] = labVIP
		out["vip"] = vip
	}
	return out
}

func (l *lab) configure(cluster map[string]any) {
	l.t.Helper()
	l.cluster = labCluster(l.t, cluster)
	l.useTalosctl(l.cluster["talosVersion"].(string))
	text, err := json.Marshal(l.cluster)
	if err != nil {
		l.t.Fatal(err)
	}
	netText, err := json.Marshal(fixture.StackKey(l.t, "norns", "networking"))
	if err != nil {
		l.t.Fatal(err)
	}
	rollout, err := json.Marshal(labRollout(l.rollout))
	if err != nil {
		l.t.Fatal(err)
	}
	err = l.stack.SetAllConfig(context.Background(), auto.ConfigMap{
		"homelab:cluster":                 {Value: string(text)},
		"homelab:rollout":                 {Value: string(rollout)},
		"homelab:networking":              {Value: string(netText)},
		"homelab:argocd":                  {Value: `{"repoURL": "https://github.com/norns-homelab/homelab.git"}`},
		"onepassword:serviceAccountToken": {Value: fixture.ServiceAccount, Secret: true},
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
	ops    map[string]string     // resource name → operation
	engine []apitype.EngineEvent // the engine's events, as pulumi --event-log writes them
	events []labEvent            // simulator events during the operation
	output string
	wall   time.Duration
	err    error
}

// errStreamOpen is a step's error when the engine's event stream never ended: the Automation API
// closes the event channels only when the CLI ends its stream (sdk/go/auto/stack.go:2025-2028 at
// v3.276.0), and a CLI that dies first (a full disk) never opens one, so waiting for it would hang
// the shard until its test binary's timeout.
var errStreamOpen = errors.New("the engine's event stream did not end within 30 s of the operation")

// streamEnded waits a bounded time for collect to finish. When it reports false, collect still owns
// the step's operations and events, and the caller must not read them.
func streamEnded(done chan struct{}) bool {
	select {
	case <-done:
		return true
	case <-time.After(30 * time.Second):
		return false
	}
}

func collect(ch chan events.EngineEvent, ops map[string]string, engine *[]apitype.EngineEvent, done chan struct{}) {
	for e := range ch {
		*engine = append(*engine, e.EngineEvent)
		if e.ResourcePreEvent != nil {
			m := e.ResourcePreEvent.Metadata
			// A component and its resource may share a name (backup): the resource's op wins.
			name := m.URN[strings.LastIndex(m.URN, "::")+2:]
			if _, ok := ops[name]; !ok || !strings.HasPrefix(m.Type, "homelab:") {
				ops[name] = string(m.Op)
			}
		}
	}
	close(done)
}

// inProject runs an engine operation with the test process in the project directory: the real
// CLI runs a program in its project directory, and providers run there (the inline program runs
// in the test process, whose directory is the repository otherwise).
func (l *lab) inProject() func() {
	l.t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		l.t.Fatal(err)
	}
	if err := os.Chdir(l.work); err != nil {
		l.t.Fatal(err)
	}
	return func() {
		if err := os.Chdir(wd); err != nil {
			l.t.Fatal(err)
		}
	}
}

func (l *lab) up() step {
	l.t.Helper()
	return l.upWith()
}

// upWith runs pulumi up with extra options (targets, replacements).
func (l *lab) upWith(opts ...optup.Option) step {
	l.t.Helper()
	return l.engineOp(func(ctx context.Context, out io.Writer, ch chan<- events.EngineEvent) error {
		_, err := l.stack.Up(ctx, append([]optup.Option{optup.ProgressStreams(out), optup.ErrorProgressStreams(out), optup.EventStreams(ch)}, opts...)...)
		return err
	})
}

func (l *lab) preview() step {
	l.t.Helper()
	return l.engineOp(func(ctx context.Context, out io.Writer, ch chan<- events.EngineEvent) error {
		_, err := l.stack.Preview(ctx, optpreview.ProgressStreams(out), optpreview.ErrorProgressStreams(out), optpreview.EventStreams(ch), optpreview.Diff())
		return err
	})
}

// engineOp runs one engine operation in the project directory within opTimeout, and returns what
// it did: its output, the engine's events and operations, and the world's events meanwhile.
func (l *lab) engineOp(run func(ctx context.Context, out io.Writer, ch chan<- events.EngineEvent) error) step {
	l.t.Helper()
	defer l.inProject()()
	n, start := len(l.w.events()), time.Now()
	var out bytes.Buffer
	ch, ops, done := make(chan events.EngineEvent), map[string]string{}, make(chan struct{})
	var engine []apitype.EngineEvent
	go collect(ch, ops, &engine, done)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	err := run(ctx, &out, ch)
	if !streamEnded(done) {
		return step{events: l.w.events()[n:], output: out.String(), wall: time.Since(start), err: errors.Join(err, errStreamOpen)}
	}
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w\n%s", err, inFlight(engine))
	}
	return step{ops: ops, engine: engine, events: l.w.events()[n:], output: out.String(), wall: time.Since(start), err: err}
}

// inFlight names the resources an operation stopped at its deadline had started and not finished,
// each with its last lines of output (a gate's stderr says what it waited for): what a hung run
// waited on, in the few lines a CI log shows.
func inFlight(engine []apitype.EngineEvent) string {
	var b strings.Builder
	for _, u := range unfinished(engine) {
		name := u[strings.LastIndex(u, "::")+2:]
		lines := said(engine, name)
		fmt.Fprintf(&b, "in flight at the deadline: %s\n", name)
		for _, line := range lines[max(0, len(lines)-12):] {
			fmt.Fprintf(&b, "    %s\n", line)
		}
	}
	if b.Len() == 0 {
		return "no resource was in flight at the deadline"
	}
	return strings.TrimRight(b.String(), "\n")
}

// unfinished are the URNs of the resources an operation started and never finished.
func unfinished(engine []apitype.EngineEvent) []string {
	var started []string
	finished := map[string]bool{}
	for _, e := range engine {
		switch {
		case e.ResourcePreEvent != nil:
			started = append(started, e.ResourcePreEvent.Metadata.URN)
		case e.ResOutputsEvent != nil:
			finished[e.ResOutputsEvent.Metadata.URN] = true
		case e.ResOpFailedEvent != nil:
			finished[e.ResOpFailedEvent.Metadata.URN] = true
		}
	}
	return slices.DeleteFunc(started, func(u string) bool { return finished[u] })
}

// said is what the engine logged on the named resource, line by line: a command's output, which
// the command provider logs as it comes.
func said(engine []apitype.EngineEvent, name string) []string {
	var lines []string
	for _, e := range engine {
		if d := e.DiagnosticEvent; d != nil && strings.HasSuffix(d.URN, "::"+name) {
			lines = append(lines, strings.Split(strings.TrimRight(d.Message, "\n"), "\n")...)
		}
	}
	return lines
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
	if len(lines) > 80 {
		lines = lines[len(lines)-80:]
	}
	return strings.Join(lines, "\n")
}

// nodeEvents are the events that changed a node, by node name.
func nodeEvents(evs []labEvent, ops ...string) map[string][]string {
	want := map[string]bool{}
	for _, o := range ops {
		want[o] = true
	}
	out := map[string][]string{}
	for _, e := range evs {
		if e.Actor == "talos-node" && e.Node != "" && (len(want) == 0 || want[e.Op]) {
			out[labNameOf(e.Node)] = append(out[labNameOf(e.Node)], e.Op)
		}
	}
	return out
}

// count counts a node operation per node name.
func count(evs []labEvent, op string) map[string]int {
	out := map[string]int{}
	for _, e := range evs {
		if e.Actor == "talos-node" && e.Op == op {
			out[labNameOf(e.Node)]++
		}
	}
	return out
}

// downtime is one interval a node was down (a reboot or an upgrade, from the first stopped
// service to the node running again).
type downtime struct {
	node       string
	start, end time.Time
}

func downtimes(evs []labEvent) []downtime {
	var out []downtime
	for _, e := range evs {
		if e.Actor == "talos-node" && (e.Op == "reboot" || e.Op == "upgrade") && !e.Start.IsZero() {
			d := downtime{node: labNameOf(e.Node), start: e.Start, end: e.End}
			if e.Op == "upgrade" {
				// The upgrade event ends when the new image is written; the boot follows.
				for _, b := range evs {
					if b.Op == "boot" && b.Node == e.Node && !b.End.Before(e.End) {
						d.end = b.End
						break
					}
				}
			}
			out = append(out, d)
		}
	}
	return out
}

// maxConcurrent is the largest number of the given nodes down at the same time.
func maxConcurrent(ds []downtime, nodes map[string]bool) int {
	best := 0
	for _, a := range ds {
		if !nodes[a.node] {
			continue
		}
		n := 0
		for _, b := range ds {
			if nodes[b.node] && !b.start.After(a.start) && b.end.After(a.start) {
				n++
			}
		}
		best = max(best, n)
	}
	return best
}

// realTime is the real-hardware equivalent of a lab step: the lab wall time with every simulated
// node operation's compressed interval replaced by its real duration (intervals merged, so
// parallel operations count once).
func realTime(s step) time.Duration {
	type iv struct{ a, b time.Time }
	var ivs []iv
	var realSum, labSum time.Duration
	for _, e := range s.events {
		if e.Real > 0 && !e.Start.IsZero() {
			ivs = append(ivs, iv{e.Start, e.End})
		}
	}
	sort.Slice(ivs, func(i, j int) bool { return ivs[i].a.Before(ivs[j].a) })
	var merged []iv
	for _, x := range ivs {
		if len(merged) > 0 && !x.a.After(merged[len(merged)-1].b) {
			if x.b.After(merged[len(merged)-1].b) {
				merged[len(merged)-1].b = x.b
			}
			continue
		}
		merged = append(merged, x)
	}
	for _, m := range merged {
		labSum += m.b.Sub(m.a)
	}
	realSum = time.Duration(float64(labSum) * labScale)
	return s.wall - labSum + realSum
}

// figures prints what a step cost.
func (l *lab) figures(name string, s step) {
	reboots, upgrades := count(s.events, "reboot"), count(s.events, "upgrade")
	// A config change is an apply that changed the node's config, staged or in effect.
	changes := map[string]int{}
	for _, e := range s.events {
		if e.Actor == "talos-node" && (e.Op == "apply-live" || e.Op == "apply-staged") && e.Detail == "changed" {
			changes[labNameOf(e.Node)]++
		}
	}
	var per []string
	for _, n := range l.nodeNames() {
		per = append(per, fmt.Sprintf("%s=%d/%d/%d", n, reboots[n], upgrades[n], changes[n]))
	}
	cps := map[string]bool{}
	for _, n := range l.cluster["nodes"].([]any) {
		m := n.(map[string]any)
		if m["role"] == "controlplane" {
			cps[m["name"].(string)] = true
		}
	}
	workers := map[string]bool{}
	for _, n := range l.nodeNames() {
		workers[n] = !cps[n]
	}
	l.t.Logf("FIGURES %s: reboots/upgrades/config changes per node [%s], max control planes down at once %d, max workers down at once %d, lab %.1fs, hardware ≈ %s",
		name, strings.Join(per, " "), maxConcurrent(downtimes(s.events), cps), maxConcurrent(downtimes(s.events), workers), s.wall.Seconds(), realTime(s).Round(time.Second))
}

func (l *lab) nodeNames() []string {
	var out []string
	for _, n := range l.cluster["nodes"].([]any) {
		out = append(out, n.(map[string]any)["name"].(string))
	}
	return out
}

// longestApplyChain is the longest dependency path through resources that touch nodes.
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
		touches[urn] = r.Type == applyToken || r.Type == commandToken
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

// freshNodes are machines in maintenance mode, named after the cluster config's nodes.
func freshNodes(cluster map[string]any) []labNode {
	var out []labNode
	for _, n := range cluster["nodes"].([]any) {
		m := n.(map[string]any)
		out = append(out, labNode{name: m["name"].(string), role: m["role"].(string)})
	}
	return out
}
