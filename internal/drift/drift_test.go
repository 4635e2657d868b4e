package drift_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/config/configpatcher"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"

	"homelab/internal/drift"
	_ "homelab/internal/golden" // defines -update, so `go test ./... -update` runs here too
	"homelab/internal/render"
	"homelab/internal/stackconfig"
	"homelab/internal/stackfile"
	"homelab/internal/talosplan"
	"homelab/src"
)

// fixture renders norns with the render package's fixture bundle: the program's configs, by node.
func fixture(t *testing.T) (stackconfig.Cluster, *talosplan.Data, *secrets.Bundle) {
	t.Helper()
	cfg, _, err := stackfile.LoadConfig("../..", "norns")
	if err != nil {
		t.Fatal(err)
	}
	talos, err := talosplan.Load(src.FS)
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := secrets.LoadBundle("../render/testdata/secrets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Cluster, talos, bundle
}

// nodes holds the config each node holds, by node and id; patched applies a patch by hand.
type nodes map[string]map[string][]byte

func (n nodes) read(node stackconfig.Node, id string) ([]byte, error) {
	b, ok := n[node.Name][id]
	if !ok {
		return nil, fmt.Errorf("no %s config", id)
	}
	return b, nil
}

func patched(t *testing.T, config []byte, patch string) []byte {
	t.Helper()
	p, err := configpatcher.LoadPatch([]byte(patch))
	if err != nil {
		t.Fatal(err)
	}
	out, err := configpatcher.Apply(configpatcher.WithBytes(config), []configpatcher.Patch{p})
	if err != nil {
		t.Fatal(err)
	}
	b, err := out.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// inStep is a cluster whose nodes run exactly the program's configs.
func inStep(t *testing.T) (stackconfig.Cluster, *talosplan.Data, *secrets.Bundle, nodes) {
	c, talos, bundle := fixture(t)
	rendered, err := render.Render(c, talos, bundle, talosplan.Final)
	if err != nil {
		t.Fatal(err)
	}
	held := nodes{}
	for _, r := range rendered {
		held[r.Node.Name] = map[string][]byte{"v1alpha1": r.Config, "persistent": r.Config}
	}
	return c, talos, bundle, held
}

func TestAnUnreadableNodeIsAnError(t *testing.T) {
	c, talos, bundle := fixture(t)
	_, err := drift.Nodes(c, talos, bundle, nodes{}.read)
	if err == nil || !strings.Contains(err.Error(), "node urd (192.168.0.120): reading its running config") {
		t.Errorf("err = %v; want each unreadable node named", err)
	}
}

func TestNodesRunningTheProgramsConfigHaveNoDrift(t *testing.T) {
	c, talos, bundle, held := inStep(t)
	// The node holds the same config re-encoded (as Talos stores it): no drift.
	for name := range held {
		held[name]["v1alpha1"] = patched(t, held[name]["v1alpha1"], "machine:\n  kubelet: {}\n")
	}
	got, err := drift.Nodes(c, talos, bundle, held.read)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if drift.Report(&out, got) || len(got) != 3 {
		t.Errorf("nodes in step reported as drifted:\n%s", out.String())
	}
}

func TestALiveChangeByHandIsReportedWithItsValues(t *testing.T) {
	c, talos, bundle, held := inStep(t)
	held["skuld"]["v1alpha1"] = patched(t, held["skuld"]["v1alpha1"], "machine:\n  kubelet:\n    extraConfig:\n      maxPods: 250\n")
	held["skuld"]["persistent"] = held["skuld"]["v1alpha1"]
	got, err := drift.Nodes(c, talos, bundle, held.read)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if !drift.Report(&out, got) {
		t.Fatal("a changed node is not reported")
	}
	for _, n := range got {
		if n.Node.Name != "skuld" && n.Drifted() {
			t.Errorf("%s reported as drifted: %+v", n.Node.Name, n.Running)
		}
		if n.Node.Name == "skuld" {
			if len(n.Running) != 1 || n.Running[0].Path != "machine.kubelet.extraConfig.maxPods" || n.Running[0].Running != "250" ||
				n.Running[0].Program != "300" || n.Cost() != "live" {
				t.Errorf("skuld: %+v, cost %s; want maxPods 250 against 300, live", n.Running, n.Cost())
			}
		}
	}
	if !strings.Contains(out.String(), "machine.kubelet.extraConfig.maxPods: node has 250, program has 300 [live]") {
		t.Errorf("report:\n%s", out.String())
	}
}

func TestAChangeTalosAppliesOnlyOnBootCostsAReboot(t *testing.T) {
	c, talos, bundle, held := inStep(t)
	held["urd"]["persistent"] = patched(t, held["urd"]["persistent"], "machine:\n  env:\n    GODEBUG: netdns=go\n")
	got, err := drift.Nodes(c, talos, bundle, held.read)
	if err != nil {
		t.Fatal(err)
	}
	urd := got[0]
	if urd.Node.Name != "urd" || len(urd.Running) != 0 || len(urd.Staged) != 1 || urd.Staged[0].Path != "machine.env" || urd.Cost() != "reboot" {
		t.Errorf("urd: running %+v, staged %+v, cost %s; want a staged machine.env change that costs a reboot", urd.Running, urd.Staged, urd.Cost())
	}
}

func TestSecretFieldsAreComparedButNeverShown(t *testing.T) {
	c, talos, bundle, held := inStep(t)
	const forged = "Zm9yZ2VkLWJ5LWhhbmQtdG9rZW4="
	held["verdandi"]["v1alpha1"] = patched(t, held["verdandi"]["v1alpha1"], "cluster:\n  secret: "+forged+"\nmachine:\n  token: abcdef.0123456789abcdef\n")
	got, err := drift.Nodes(c, talos, bundle, held.read)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	drift.Report(&out, got)
	report := out.String()
	secretPaths := 0
	for _, n := range got {
		for _, d := range n.Running {
			if d.Secret {
				secretPaths++
			}
		}
	}
	if secretPaths != 2 || !strings.Contains(report, "cluster.secret: differs (a secret: values not shown)") {
		t.Errorf("the changed secrets are not reported by path:\n%s", report)
	}
	for _, s := range []string{forged, "abcdef.0123456789abcdef", bundle.Cluster.Secret, bundle.Secrets.BootstrapToken, bundle.TrustdInfo.Token} {
		if strings.Contains(report, s) {
			t.Errorf("the report shows a secret value:\n%s", report)
		}
	}
}

func TestSecretsTalosDoesNotRedactAreNeverShownEither(t *testing.T) {
	c, talos, bundle, held := inStep(t)
	const password, manifest, authKey = "registry-pass-Qx7", "kind: Secret # inline-manifest-Qx7", "tskey-auth-Qx7"
	const clientKey = "Y2xpZW50LWtleS1ReDc=" // base64 of a registry client key
	held["skuld"]["v1alpha1"] = patched(t, held["skuld"]["v1alpha1"], `machine:
  registries:
    config:
      ghcr.io:
        auth: {username: bot, password: `+password+`}
        tls: {clientIdentity: {crt: Y2xpZW50LWNydC1ReDc=, key: `+clientKey+`}}
  files:
    - {path: /var/etc/token, op: create, permissions: 0o600, content: "`+password+`"}
cluster:
  inlineManifests:
    - {name: extra, contents: "`+manifest+`"}
---
apiVersion: v1alpha1
kind: ExtensionServiceConfig
name: tailscale
environment:
  - TS_AUTHKEY=`+authKey+`
`)
	report := driftReport(t, c, talos, bundle, held)
	for _, s := range []string{password, manifest, authKey, "Qx7", clientKey} {
		if strings.Contains(report, s) {
			t.Errorf("the report shows the secret value %q:\n%s", s, report)
		}
	}
	for _, path := range []string{"machine.registries", "machine.files", "cluster.inlineManifests", "ExtensionServiceConfig/tailscale"} {
		if !strings.Contains(report, path) {
			t.Errorf("the report does not name %s:\n%s", path, report)
		}
	}
}

func TestUndoReappliesOnlyTheDriftedNodes(t *testing.T) {
	c, talos, bundle, held := inStep(t)
	held["skuld"]["v1alpha1"] = patched(t, held["skuld"]["v1alpha1"], "machine:\n  kubelet:\n    extraConfig:\n      maxPods: 250\n")
	held["urd"]["persistent"] = patched(t, held["urd"]["persistent"], "machine:\n  env:\n    A: b\n")
	got, err := drift.Nodes(c, talos, bundle, held.read)
	if err != nil {
		t.Fatal(err)
	}
	u := drift.PlanUndo("homelab", "norns", got)
	joined := strings.Join(u.Replace, "\n")
	for _, want := range []string{"::config-stage-urd", "::config-gate-urd", "::config-apply-urd", "::config-stage-skuld", "::config-apply-skuld"} {
		if !strings.Contains(joined, want) {
			t.Errorf("the undo does not replace %s:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, "verdandi") || strings.Contains(joined, "config-gate-skuld") {
		t.Errorf("the undo touches more than it must (verdandi is in step, skuld needs no reboot):\n%s", joined)
	}
	if !strings.HasPrefix(u.Replace[0], "urn:pulumi:norns::homelab::homelab:talos:Rollout$talos:machine/configurationApply:ConfigurationApply::config-stage-urd") {
		t.Errorf("URN %s does not name the rollout's resource", u.Replace[0])
	}
	args := strings.Join(u.Args("norns"), " ")
	if strings.Count(args, "--target ") != len(u.Replace) || strings.Count(args, "--replace ") != len(u.Replace) {
		t.Errorf("pulumi %s: every replaced resource must also be the only targets", args)
	}
}

// A contract v1.12 cluster runs multi-document configs: nodes in step have no drift, and a hostname
// changed by hand in the HostnameConfig document is found, live (Talos compares only the v1alpha1
// document before a live apply).
func TestMultiDocumentConfigsDriftByDocument(t *testing.T) {
	c, talos, bundle := fixture(t)
	c.TalosVersion, c.KubernetesVersion, c.Contract = "v1.12.6", "v1.35.8", "v1.12"
	rendered, err := render.Render(c, talos, bundle, talosplan.Final)
	if err != nil {
		t.Fatal(err)
	}
	held := nodes{}
	for _, r := range rendered {
		held[r.Node.Name] = map[string][]byte{"v1alpha1": r.Config, "persistent": r.Config}
	}
	got, err := drift.Nodes(c, talos, bundle, held.read)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if drift.Report(&out, got) {
		t.Fatalf("multi-document configs in step reported as drifted:\n%s", out.String())
	}
	held["skuld"]["v1alpha1"] = patched(t, held["skuld"]["v1alpha1"], "apiVersion: v1alpha1\nkind: HostnameConfig\nauto: \"off\"\nhostname: skuld-by-hand\n")
	held["skuld"]["persistent"] = held["skuld"]["v1alpha1"]
	if got, err = drift.Nodes(c, talos, bundle, held.read); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if !drift.Report(&out, got) || !strings.Contains(out.String(), `HostnameConfig: hostname: node has "skuld-by-hand", program has "skuld" [live]`) {
		t.Errorf("a hostname changed by hand in its document is not reported as a live change:\n%s", out.String())
	}
}

// The machine's environment, its static pods and its log destinations may carry credentials: their
// changes are reported by path, never with their values.
func TestEnvironmentPodsAndLogDestinationsAreNeverShown(t *testing.T) {
	c, talos, bundle, held := inStep(t)
	const proxy, podToken, endpoint = "http://user:proxy-pass-Zk4@proxy.lan:3128", "pod-token-Zk4", "tcp://logs:logpass-Zk4@logs.lan:5170/"
	held["urd"]["v1alpha1"] = patched(t, held["urd"]["v1alpha1"], `machine:
  env:
    https_proxy: `+proxy+`
  pods:
    - {apiVersion: v1, kind: Pod, metadata: {name: agent}, spec: {containers: [{name: a, image: busybox, env: [{name: TOKEN, value: `+podToken+`}]}]}}
  logging:
    destinations:
      - {endpoint: "`+endpoint+`", format: json_lines}
`)
	report := driftReport(t, c, talos, bundle, held)
	if strings.Contains(report, "Zk4") {
		t.Errorf("the report shows a value of machine.env, machine.pods or machine.logging:\n%s", report)
	}
	for _, path := range []string{"machine.env", "machine.pods", "machine.logging"} {
		if !strings.Contains(report, path) {
			t.Errorf("the report does not name %s:\n%s", path, report)
		}
	}
}

// A node config that Talos's loader cannot read (here a key it does not know, holding a secret)
// is an error that names neither the key's value nor anything after the loader's first line.
func TestAnUnparsableNodeConfigIsReportedWithoutItsValues(t *testing.T) {
	c, talos, bundle, held := inStep(t)
	held["verdandi"]["v1alpha1"] = []byte(strings.Replace(string(held["verdandi"]["v1alpha1"]), "\nmachine:\n", "\nmachine:\n    notAKey: secret-value-Zk4\n", 1))
	_, err := drift.Nodes(c, talos, bundle, held.read)
	if err == nil {
		t.Fatal("a config the loader refuses was compared")
	}
	if strings.Contains(err.Error(), "Zk4") || !strings.Contains(err.Error(), "verdandi") {
		t.Errorf("err = %v; want the node named and no value of its config", err)
	}
}

// driftReport reads the held nodes and returns the report, failing the test unless it finds drift.
func driftReport(t *testing.T, c stackconfig.Cluster, talos *talosplan.Data, bundle *secrets.Bundle, held nodes) string {
	t.Helper()
	got, err := drift.Nodes(c, talos, bundle, held.read)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if !drift.Report(&out, got) {
		t.Fatal("the changes were not reported as drift")
	}
	return out.String()
}
