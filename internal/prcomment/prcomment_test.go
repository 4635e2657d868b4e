package prcomment

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"

	_ "homelab/internal/golden" // defines -update, so `go test ./... -update` runs here too
	"homelab/internal/stackconfig"
)

var cluster = stackconfig.Cluster{Nodes: []stackconfig.Node{
	{Name: "w1", Role: "worker"}, {Name: "urd", Role: "controlplane"}, {Name: "verdandi", Role: "controlplane"},
}}

func event(op, typ, name, parentType string, old, new map[string]any) apitype.EngineEvent {
	urn := "urn:pulumi:norns::homelab::" + parentType + "$" + typ + "::" + name
	parent := "urn:pulumi:norns::homelab::" + parentType + "::parent"
	state := func(inputs map[string]any) *apitype.StepEventStateMetadata {
		if inputs == nil {
			return nil
		}
		return &apitype.StepEventStateMetadata{Type: typ, URN: urn, Custom: true, Parent: parent, Inputs: inputs}
	}
	return apitype.EngineEvent{ResourcePreEvent: &apitype.ResourcePreEvent{Metadata: apitype.StepEventMetadata{
		Op: apitype.OpType(op), URN: urn, Type: typ, Old: state(old), New: state(new)}}}
}

func gate(node string, env map[string]any) map[string]any {
	e := map[string]any{"NODE_NAME": node, "IMAGE": "factory/installer:v1.11.5", "TALOS_VERSION": "v1.11.5",
		"SCHEMATIC": "abc", "KERNEL_ARGS": "", "REBOOT_SETTINGS": "", "KUBECONFIG_DATA": "[secret]"}
	for k, v := range env {
		e[k] = v
	}
	return map[string]any{"environment": e}
}

func patches(text string) map[string]any { return map[string]any{"configPatches": []any{text}} }

func row(t *testing.T, comment, node string) string {
	t.Helper()
	for _, line := range strings.Split(comment, "\n") {
		if strings.HasPrefix(line, "| "+node+" |") {
			return line
		}
	}
	t.Fatalf("no row for %s:\n%s", node, comment)
	return ""
}

func TestNodesComeInRollOrderWithTheirAction(t *testing.T) {
	before, after := "machine:\n  env: {}\n", "machine:\n  env:\n    A: b\n"
	cni := map[string]any{"REBOOT_SETTINGS": "cluster.network.cni.name: \"none\""}
	env := map[string]any{"REBOOT_SETTINGS": "cluster.network.cni.name: \"none\"\nmachine.env.A: \"b\""}
	events := []apitype.EngineEvent{
		// Registration order is not roll order.
		event("update", "command:local:Command", "config-gate-w1", "homelab:talos:Rollout", gate("w1", cni), gate("w1", env)),
		event("update", "talos:machine/configurationApply:ConfigurationApply", "config-apply-w1", "homelab:talos:Rollout", patches(before), patches(after)),
		event("update", "talos:machine/configurationApply:ConfigurationApply", "config-apply-verdandi", "homelab:talos:Rollout", patches("a: 1\n"), patches("a: 2\n")),
		event("update", "command:local:Command", "config-gate-urd", "homelab:talos:Rollout", gate("urd", cni), gate("urd", env)),
		event("update", "talos:machine/configurationApply:ConfigurationApply", "config-apply-urd", "homelab:talos:Rollout", patches(before), patches(after)),
	}
	c := Build("norns", cluster, stackconfig.Rollout{}, FromEvents(events))
	order := []int{strings.Index(c, "| urd |"), strings.Index(c, "| verdandi |"), strings.Index(c, "| w1 |")}
	if order[0] < 0 || order[0] > order[1] || order[1] > order[2] {
		t.Errorf("rows not in roll order (control planes, then workers):\n%s", c)
	}
	if !strings.Contains(row(t, c, "urd"), "| reboot |") || !strings.Contains(row(t, c, "w1"), "| reboot |") || !strings.Contains(row(t, c, "verdandi"), "| live |") {
		t.Errorf("actions wrong:\n%s", c)
	}
	if r := row(t, c, "urd"); !strings.Contains(r, "`machine.env.A: \"b\"`") || strings.Contains(r, "cni") {
		t.Errorf("urd's row does not name exactly the changed setting: %s", r)
	}
	if !strings.Contains(c, "one at a time: urd → w1.") {
		t.Errorf("the nodes that go down are not listed in roll order:\n%s", c)
	}
	if !strings.Contains(c, "- a: 1\n+ a: 2") {
		t.Errorf("a changed line does not read as the old line removed, then the new one added:\n%s", c)
	}
	// urd and w1 change the same way: one diff for both.
	if !strings.Contains(c, "nodes urd, w1:") || strings.Count(c, "+     A: b") != 2 { // once shown, once in the details
		t.Errorf("identical patch changes are not grouped:\n%s", c)
	}
}

func TestAnUpgradeNamesBothVersions(t *testing.T) {
	next := map[string]any{"IMAGE": "factory/installer:v1.11.6", "TALOS_VERSION": "v1.11.6", "REBOOT_SETTINGS": ""}
	events := []apitype.EngineEvent{
		event("update", "command:local:Command", "config-gate-urd", "homelab:talos:Rollout", gate("urd", nil), gate("urd", next)),
		event("update", "command:local:Command", "k8s-upgrade", "homelab:talos:KubernetesUpgrade",
			map[string]any{"environment": map[string]any{"KUBERNETES_VERSION": "v1.34.1"}}, map[string]any{"environment": map[string]any{"KUBERNETES_VERSION": "v1.34.2"}}),
	}
	c := Build("norns", cluster, stackconfig.Rollout{}, FromEvents(events))
	if r := row(t, c, "urd"); !strings.Contains(r, "| upgrade |") || !strings.Contains(r, "Talos v1.11.5 → v1.11.6") {
		t.Errorf("urd: %s", r)
	}
	if !strings.Contains(row(t, c, "verdandi"), "| unchanged |") {
		t.Errorf("an untouched node is not shown as unchanged:\n%s", c)
	}
	if !strings.Contains(c, "**Kubernetes** v1.34.1 → v1.34.2") {
		t.Errorf("the Kubernetes upgrade is missing:\n%s", c)
	}
}

func TestARemovedNodeIsListedAfterTheOthers(t *testing.T) {
	events := []apitype.EngineEvent{
		event("create", "command:local:Command", "remove-skuld", "homelab:talos:NodeRemoval", nil,
			map[string]any{"environment": map[string]any{"ROLE": "controlplane"}}),
		event("delete", "command:local:Command", "config-reset-skuld", "homelab:talos:Rollout", map[string]any{}, nil),
	}
	c := Build("norns", cluster, stackconfig.Rollout{}, FromEvents(events))
	r := row(t, c, "skuld")
	if !strings.Contains(r, "| removal |") || !strings.Contains(r, "leaves etcd") || !strings.Contains(r, "maintenance mode") {
		t.Errorf("skuld: %s", r)
	}
	if strings.Index(c, "| skuld |") < strings.Index(c, "| w1 |") {
		t.Error("the removed node is not listed after the others")
	}
}

func TestOnlyChangesAreListed(t *testing.T) {
	events := []apitype.EngineEvent{
		event("same", "kubernetes:v1:Namespace", "argocd-namespace", "homelab:gitops:ArgoCD", map[string]any{}, map[string]any{}),
		event("update", "kubernetes:v1:ConfigMap", "cilium:ConfigMap:kube-system/cilium-config", "homelab:k8s:Chart", map[string]any{"data": "[secret]"}, map[string]any{"data": "x"}),
		event("read", "pulumi:pulumi:StackReference", "previous-deployment", "pulumi:pulumi:Stack", map[string]any{}, map[string]any{}),
	}
	events[1].ResourcePreEvent.Metadata.Diffs = []string{"data"}
	c := Build("norns", cluster, stackconfig.Rollout{}, FromEvents(events))
	if strings.Contains(c, "argocd-namespace") || strings.Contains(c, "previous-deployment") {
		t.Errorf("unchanged resources are listed:\n%s", c)
	}
	if !strings.Contains(c, "ConfigMap kube-system/cilium-config (chart cilium): data") {
		t.Errorf("the chart object's change is missing:\n%s", c)
	}
	if !strings.Contains(c, "1 to update") || !strings.Contains(c, "No node changes") && !strings.Contains(c, "no node changes") {
		t.Errorf("summary wrong:\n%s", c)
	}
}

func TestLongChangesGoToTheDetails(t *testing.T) {
	var events []apitype.EngineEvent
	for i := 0; i < 200; i++ {
		events = append(events, event("create", "kubernetes:v1:ConfigMap", fmt.Sprintf("argocd:ConfigMap:argocd/c%03d", i), "homelab:k8s:Chart", nil, map[string]any{}))
	}
	long := strings.Repeat("k: v\n", 100)
	events = append(events, event("update", "talos:machine/configurationApply:ConfigurationApply", "config-apply-urd", "homelab:talos:Rollout", patches(""), patches(long)))
	c := Build("norns", cluster, stackconfig.Rollout{}, FromEvents(events))
	head, details, ok := strings.Cut(c, "<details>")
	if !ok {
		t.Fatal("no collapsed section")
	}
	if n := strings.Count(head, "\n"); n >= MainLines {
		t.Errorf("%d lines before the details", n)
	}
	if !strings.Contains(details, "argocd/c199") || strings.Count(details, "+ k: v") != 100 {
		t.Error("the details do not hold everything")
	}
}

func TestAFailedPreviewSaysSo(t *testing.T) {
	events := []apitype.EngineEvent{{DiagnosticEvent: &apitype.DiagnosticEvent{Severity: "error",
		Message: "homelab:cluster.nodes[1].address: not an IP address\nmore"}}}
	c := Build("norns", cluster, stackconfig.Rollout{}, FromEvents(events))
	if !strings.Contains(c, "Preview **failed**") || !strings.Contains(c, "> homelab:cluster.nodes[1].address: not an IP address") {
		t.Errorf("the failure is not shown:\n%s", c)
	}
}

func TestEventLogIsReadLineByLine(t *testing.T) {
	log := `{"sequence":1,"timestamp":1,"diagnosticEvent":{"severity":"error","message":"boom"}}` + "\n\n" +
		`{"sequence":2,"timestamp":1,"resourcePreEvent":{"metadata":{"op":"update","urn":"urn:pulumi:norns::homelab::kubernetes:v1:Secret::s","type":"kubernetes:v1:Secret","old":null,"new":null,"detailedDiff":null,"provider":""}}}` + "\n"
	events, err := ReadEvents(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	p := FromEvents(events)
	if len(events) != 2 || len(p.Errors) != 1 || len(p.Steps) != 1 || p.Steps[0].Name != "s" {
		t.Errorf("read %d events, %d errors, steps %+v", len(events), len(p.Errors), p.Steps)
	}
	if _, err := ReadEvents(strings.NewReader("{not json\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a broken log is not reported with its line: %v", err)
	}
}

// An upgrade's comment names its step (from, to, the talosctl it needs) and, per node, upgrade or
// nothing; a contract move shows each node's reboot and why.
func TestAnUpgradeCommentNamesTheStep(t *testing.T) {
	next := map[string]any{"TALOS_VERSION": "v1.12.6", "IMAGE": "factory/installer:v1.12.6"}
	events := []apitype.EngineEvent{
		event("update", "command:local:Command", "config-gate-urd", "homelab:talos:Rollout", gate("urd", nil), gate("urd", next)),
		event("update", "command:local:Command", "config-gate-verdandi", "homelab:talos:Rollout", gate("verdandi", nil), gate("verdandi", next)),
		event("same", "command:local:Command", "config-gate-w1", "homelab:talos:Rollout", gate("w1", next), gate("w1", next)),
	}
	c := Build("norns", cluster, stackconfig.Rollout{}, FromEvents(events))
	if !strings.Contains(c, "**Talos** v1.11.5 → v1.12.6") || !strings.Contains(c, "needs talosctl v1.12.x") {
		t.Errorf("the comment does not name the step and the talosctl it needs:\n%s", c)
	}
	if !strings.Contains(row(t, c, "urd"), "| upgrade |") || !strings.Contains(row(t, c, "w1"), "| unchanged |") {
		t.Errorf("per node, want upgrade or nothing:\n%s", c)
	}
	moved := []apitype.EngineEvent{
		event("update", "command:local:Command", "config-gate-urd", "homelab:talos:Rollout",
			gate("urd", map[string]any{"CONTRACT": "v1.11"}), gate("urd", map[string]any{"CONTRACT": "v1.12"})),
	}
	if r := row(t, Build("norns", cluster, stackconfig.Rollout{}, FromEvents(moved)), "urd"); !strings.Contains(r, "| reboot |") || !strings.Contains(r, "contract v1.11 → v1.12") {
		t.Errorf("a contract move: %s; want a reboot naming the contracts", r)
	}
}

// With maxUnavailable above 1, the comment lists the workers that go down in their batches, after
// the control planes one at a time.
func TestTheCommentShowsTheWorkerBatches(t *testing.T) {
	c := stackconfig.Cluster{Nodes: []stackconfig.Node{{Name: "urd", Role: "controlplane"}, {Name: "verdandi", Role: "controlplane"}}}
	var events []apitype.EngineEvent
	env := map[string]any{"REBOOT_SETTINGS": "machine.env.A: \"b\""}
	for _, n := range []string{"urd", "verdandi", "w1", "w2", "w3", "w4", "w5"} {
		if strings.HasPrefix(n, "w") {
			c.Nodes = append(c.Nodes, stackconfig.Node{Name: n, Role: "worker"})
		}
		if n == "w2" {
			continue // its config does not change: it stays up, and its batch is the others
		}
		events = append(events, event("update", "command:local:Command", "config-gate-"+n, "homelab:talos:Rollout", gate(n, nil), gate(n, env)))
	}
	three := 3
	comment := Build("norns", c, stackconfig.Rollout{MaxUnavailable: &three}, FromEvents(events))
	if !strings.Contains(comment, "workers up to 3 at once (a batch in brackets): urd → verdandi → [w1, w3] → [w4, w5].") {
		t.Errorf("the batches are not shown:\n%s", comment)
	}
}

// A renewal of the admin client certificate changes every resource that authenticates with it and
// no node: the comment says so in one line, and lists no node action.
func TestACertificateRenewalPreviewsAsTheRenewalAlone(t *testing.T) {
	secrets := event("update", "talos:machine/secrets:Secrets", "cluster-secrets", "homelab:talos:ClusterSecrets",
		map[string]any{"talosVersion": "v1.11"}, map[string]any{"talosVersion": "v1.11"})
	secrets.ResourcePreEvent.Metadata.Diffs = []string{"clientConfiguration"}
	renewed := func(in map[string]any, cc string) map[string]any {
		out := map[string]any{"clientConfiguration": cc}
		for k, v := range in {
			out[k] = v
		}
		return out
	}
	events := []apitype.EngineEvent{secrets}
	for _, n := range []string{"urd", "verdandi", "w1"} {
		events = append(events,
			event("update", "talos:machine/configurationApply:ConfigurationApply", "config-apply-"+n, "homelab:talos:Rollout",
				renewed(patches("a: 1\n"), "[secret]"), renewed(patches("a: 1\n"), "04da6b54-80e4-46f7-96ec-b56ff0331ba9")),
			event("update", "command:local:Command", "config-gate-"+n, "homelab:talos:Rollout",
				gate(n, map[string]any{"TALOSCONFIG_DATA": "[secret]"}), gate(n, map[string]any{"TALOSCONFIG_DATA": "04da6b54-80e4-46f7-96ec-b56ff0331ba9"})))
	}
	c := Build("norns", cluster, stackconfig.Rollout{}, FromEvents(events))
	if !strings.Contains(c, "**Credentials renewed** (the Talos admin client certificate, within a month of expiry)") {
		t.Errorf("the renewal is not said:\n%s", c)
	}
	if !strings.Contains(c, "**Nodes:** no node changes.") {
		t.Errorf("a renewal shows node changes:\n%s", c)
	}
}
