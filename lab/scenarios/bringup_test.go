package scenarios

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/auto/optdestroy"
	"gopkg.in/yaml.v3"

	"homelab/internal/fixture"
)

var nornsControlPlanes = map[string]bool{"urd": true, "verdandi": true, "skuld": true}

// TestLabNewClusterAndItsLife brings a new norns up from maintenance mode, then lives with it:
// a re-run, a live change, adoption, a new worker, a state export and a destroy.
func TestLabNewClusterAndItsLife(t *testing.T) {
	c := fixture.FreshNorns(t)
	l := newLab(t, freshNodes(c), c)

	t.Run("preview contacts no node", func(t *testing.T) {
		p := l.preview()
		if p.err != nil {
			t.Fatalf("preview failed: %v\n%s", p.err, tail(p.output))
		}
		for _, e := range p.events {
			if e.Actor != "onepassword" {
				t.Errorf("preview reached a node or the cluster: %s %s %s", e.Actor, e.Op, e.Detail)
			}
		}
	})

	t.Run("bring-up hands over to Cilium", func(t *testing.T) {
		s := l.mustUp()
		l.figures("bring-up", s)
		installs, reboots := count(s.events, "install"), count(s.events, "reboot")
		for _, n := range l.nodeNames() {
			if installs[n] != 1 || reboots[n] != 1 {
				t.Errorf("%s: %d installs and %d handover reboots, want 1 and 1", n, installs[n], reboots[n])
			}
		}
		if c := maxConcurrent(downtimes(s.events), nornsControlPlanes); c != 1 {
			t.Errorf("%d control planes were down at once", c)
		}
		checkOnlyCilium(t, l.w)
		// A gate's output reaches the engine as it comes (what a hung gate waited for shows).
		for _, n := range l.nodeNames() {
			if lines := said(s.engine, "config-gate-"+n); !slices.Contains(lines, n+": reboot") {
				t.Errorf("config-gate-%s logged %q, without its last line %q", n, lines, n+": reboot")
			}
		}
		// The handover reboots follow the Cilium chart.
		var chartAt, firstReboot time.Time
		for _, e := range s.events {
			// Cilium is ready once the provider's await of its agent and operator returns.
			if e.Op == "apply" && (e.Detail == "DaemonSet/cilium" || e.Detail == "Deployment/cilium-operator") && e.End.After(chartAt) {
				chartAt = e.End
			}
			if e.Op == "reboot" && firstReboot.IsZero() {
				firstReboot = e.Start
			}
		}
		if chartAt.IsZero() || firstReboot.Before(chartAt) {
			t.Errorf("first handover reboot at %v, Cilium ready at %v", firstReboot, chartAt)
		}
		if out, err := l.w.kubectl("get", "ciliumloadbalancerippool/lan", "application/root", "-n", "argocd", "-o", "name"); err != nil {
			t.Errorf("the pool or the root application is missing: %v\n%s", err, out)
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
		if ops := nodeEvents(s.events, "apply-live", "apply-staged", "reboot", "install", "upgrade"); len(ops) != 0 {
			t.Errorf("nodes touched: %v", ops)
		}
	})

	t.Run("live change reaches every node in parallel without a reboot", func(t *testing.T) {
		l.setData(fixture.SrcWith(t, map[string]string{"talos/patches/kubelet.yaml": "machine:\n  kubelet:\n    extraConfig:\n      maxPods: 250\n"}))
		s := l.mustUp()
		l.figures("live change", s)
		if r := count(s.events, "reboot"); len(r) != 0 {
			t.Errorf("reboots: %v", r)
		}
		out, err := l.w.kubectl("get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.allocatable.pods} {end}")
		if err != nil {
			t.Fatal(err, out)
		}
		for _, n := range l.nodeNames() {
			if !strings.Contains(out, n+"=250") {
				t.Errorf("node %s does not report 250 pods: %s", n, out)
			}
		}
	})

	t.Run("adopting the running cluster reboots nothing", func(t *testing.T) {
		c := fixture.FreshNorns(t)
		c["adopt"] = true
		l.configure(c)
		s := l.mustUp()
		l.figures("adopt", s)
		for name, op := range s.ops {
			if strings.Contains(op, "replace") || (op == "delete" && name != "bootstrap-etcd") { // adopted: no bootstrap resource, and its delete is a no-op
				t.Errorf("%s %s", name, op)
			}
		}
		if ops := nodeEvents(s.events, "reboot", "install", "upgrade"); len(ops) != 0 {
			t.Errorf("nodes rebooted: %v", ops)
		}
	})

	t.Run("a new worker touches no other node and passes its gate", func(t *testing.T) {
		l.w.post("/nodes", map[string]any{"address": labAddr["mimir"]})
		l.w.waitBooted(len(l.nodeNames()) + 1)
		c := fixture.FreshNorns(t)
		c["adopt"] = true
		c["nodes"] = append(c["nodes"].([]any), map[string]any{"name": "mimir", "role": "worker"})
		l.configure(c)
		s := l.mustUp()
		l.figures("add worker", s)
		for n, ops := range nodeEvents(s.events, "apply-live", "apply-staged", "reboot", "install") {
			if n != "mimir" {
				t.Errorf("adding mimir touched %s: %v", n, ops)
			}
		}
		if got := strings.Join(nodeEvents(s.events, "install", "apply-staged", "apply-live", "reboot")["mimir"], ","); got != "install,apply-staged,apply-live" {
			t.Errorf("mimir went through %q; want install,apply-staged,apply-live: straight into the final config, no reboot", got)
		}
		checkOnlyCilium(t, l.w)
	})

	t.Run("state export holds no secret in clear", func(t *testing.T) {
		text, stderr, _, err := l.cmd.Run(context.Background(), l.work, nil, nil, nil, l.env, "stack", "export", "--stack", "norns")
		if err != nil {
			t.Fatalf("pulumi stack export: %v\n%s", err, stderr)
		}
		// Every secret the run handled, in clear and base64: the cluster identity, the admin
		// client keys of the talosconfig and the kubeconfig, the vault's values (the Connect
		// credentials and token reach Secret data base64-encoded), the provider token.
		values := append(bundleSecrets(t, l.w), l.clientKeys(t)...)
		for _, fields := range fixture.Vault() {
			for _, v := range fields {
				values = append(values, v)
			}
		}
		values = append(values, fixture.ServiceAccount)
		for _, secret := range values {
			for _, form := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret))} {
				if len(form) >= 8 && strings.Contains(text, form) {
					t.Errorf("the plain stack export contains a secret value (%.12s...)", form)
				}
			}
		}
		if !strings.Contains(text, "ciphertext") {
			t.Error("the export has no encrypted value at all: the test would prove nothing")
		}
	})

	t.Run("destroy stops at the protected resources and harms nothing", func(t *testing.T) {
		n, start := len(l.w.events()), time.Now()
		var out strings.Builder
		_, err := l.stack.Destroy(context.Background(), optdestroy.ProgressStreams(&out))
		evs := l.w.events()[n:]
		t.Logf("FIGURES destroy: lab %.1fs", time.Since(start).Seconds())
		if err == nil || !strings.Contains(err.Error()+out.String(), "protect") {
			t.Errorf("destroy did not stop at a protected resource: %v\n%s", err, tail(out.String()))
		}
		if ops := nodeEvents(evs, "reset", "reboot", "power-off"); len(ops) != 0 {
			t.Errorf("destroy touched nodes: %v", ops)
		}
		for _, node := range l.w.snapshot().Nodes {
			if node.Phase != "running" {
				t.Errorf("%s is %s after destroy", labNameOf(node.Address), node.Phase)
			}
		}
	})
}

// checkOnlyCilium asserts that no Flannel or kube-proxy object or pod is left and that a Ready
// Cilium agent runs on every node.
func checkOnlyCilium(t *testing.T, w *world) {
	t.Helper()
	out, err := w.kubectl("get", "daemonsets,pods", "-A", "-o", "name")
	if err != nil {
		t.Fatalf("kubectl: %v\n%s", err, out)
	}
	if strings.Contains(out, "kube-flannel") || strings.Contains(out, "kube-proxy") {
		t.Errorf("Flannel or kube-proxy remains:\n%s", out)
	}
	for _, n := range w.snapshot().Nodes {
		if n.Hostname == "" {
			continue
		}
		if n.CNI != "none" || !n.ProxyDisabled {
			t.Errorf("%s runs CNI %q, kube-proxy disabled %t", n.Hostname, n.CNI, n.ProxyDisabled)
		}
		pods, err := w.kubectl("-n", "kube-system", "get", "pods", "-l", "k8s-app=cilium", "--field-selector", "spec.nodeName="+n.Hostname,
			"-o", "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}")
		if err != nil || strings.TrimSpace(pods) != "True" {
			t.Errorf("no Ready Cilium agent on %s: %q %v", n.Hostname, pods, err)
		}
	}
}

// bundleSecrets are the secret values of every cluster identity the talos provider made or
// imported (the provider simulator keeps them under $LAB_STATE/secrets).
func bundleSecrets(t *testing.T, w *world) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(w.state, "secrets", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("the provider recorded no secrets bundle")
	}
	var out []string
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var b struct {
			Cluster    struct{ Secret string }                                    `yaml:"cluster"`
			Secrets    struct{ BootstrapToken, SecretboxEncryptionSecret string } `yaml:"secrets"`
			TrustdInfo struct{ Token string }                                     `yaml:"trustdinfo"`
			Certs      map[string]struct{ Key string }                            `yaml:"certs"`
		}
		if err := yaml.Unmarshal(text, &b); err != nil {
			t.Fatal(err)
		}
		out = append(out, b.Cluster.Secret, b.Secrets.BootstrapToken, b.Secrets.SecretboxEncryptionSecret, b.TrustdInfo.Token)
		for _, c := range b.Certs {
			if len(c.Key) > 40 {
				// base64 of the PEM key, as the bundle and the provider's state hold it; skip
				// the PEM header, which every key shares.
				out = append(out, c.Key[40:80])
			}
		}
	}
	return out
}

// clientKeys are the admin client keys of the stack's talosconfig and kubeconfig outputs: the
// base64 of each key's PEM as the file holds it, and a stretch of the PEM's own body.
func (l *lab) clientKeys(t *testing.T) []string {
	t.Helper()
	outputs, err := l.stack.Outputs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, key := range []string{"talosconfig", "kubeconfig"} {
		text, _ := outputs[key].Value.(string)
		for _, m := range regexp.MustCompile(`(?m)^\s*(?:key|client-key-data):\s*(\S+)$`).FindAllStringSubmatch(text, -1) {
			out = append(out, m[1])
			if pem, err := base64.StdEncoding.DecodeString(m[1]); err == nil && len(pem) > 80 {
				out = append(out, string(pem[40:80])) // past the header every key shares
			}
		}
	}
	if len(out) < 4 {
		t.Fatalf("found %d client keys in the talosconfig and kubeconfig outputs, want both files' keys", len(out))
	}
	return out
}
