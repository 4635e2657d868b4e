// Package prcomment turns the engine events of a `pulumi preview` into the pull-request comment a
// reviewer reads in a minute: what each node will go through (live apply, reboot, upgrade,
// removal), in roll order; the patch and version changes in clear text; then the other resources
// that change. Long details go in a collapsed section. It reads only what the engine displays, in
// which every secret is already masked ("[secret]"), and it repeats no value of a masked field.
package prcomment

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"

	"homelab/internal/stackconfig"
)

// MainLines is the most lines the comment shows before its collapsed section.
const MainLines = 60

// Marker starts the comment of a stack; a workflow finds its earlier comment by it and updates it.
func Marker(stack string) string { return "<!-- homelab-preview:" + stack + " -->" }

// Step is one planned step of the preview, as the engine reported it.
type Step struct {
	Op, Type, Name string
	// ParentType and ParentName name the resource's parent.
	ParentType, ParentName string
	Custom                 bool
	Old, New               map[string]any
	// Diffs are the changed top-level keys; DetailedDiff the changed paths.
	Diffs        []string
	DetailedDiff map[string]apitype.PropertyDiff
}

// Preview is what a preview reported.
type Preview struct {
	Steps []Step
	// Errors are the error diagnostics; a preview with errors failed.
	Errors []string
}

// ReadEvents reads an engine event log (`pulumi preview --event-log <file>`: one JSON event per line).
func ReadEvents(r io.Reader) ([]apitype.EngineEvent, error) {
	var out []apitype.EngineEvent
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var e apitype.EngineEvent
		if err := json.Unmarshal([]byte(text), &e); err != nil {
			return nil, fmt.Errorf("event log line %d: %w", line, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

// FromEvents collects the steps and errors of a preview's events.
func FromEvents(events []apitype.EngineEvent) Preview {
	var p Preview
	for _, e := range events {
		switch {
		case e.ResourcePreEvent != nil:
			m := e.ResourcePreEvent.Metadata
			s := Step{Op: string(m.Op), Type: m.Type, Name: urnName(m.URN), Diffs: m.Diffs, DetailedDiff: m.DetailedDiff}
			for _, st := range []*apitype.StepEventStateMetadata{m.Old, m.New} {
				if st == nil {
					continue
				}
				s.Custom = s.Custom || st.Custom
				if st.Parent != "" {
					s.ParentType, s.ParentName = urnType(st.Parent), urnName(st.Parent)
				}
			}
			if m.Old != nil {
				s.Old = m.Old.Inputs
			}
			if m.New != nil {
				s.New = m.New.Inputs
			}
			p.Steps = append(p.Steps, s)
		case e.DiagnosticEvent != nil && e.DiagnosticEvent.Severity == "error":
			if msg := strings.TrimSpace(e.DiagnosticEvent.Message); msg != "" {
				p.Errors = append(p.Errors, msg)
			}
		}
	}
	return p
}

func urnName(urn string) string { return urn[strings.LastIndex(urn, "::")+2:] }

func urnType(urn string) string {
	parts := strings.Split(urn, "::")
	if len(parts) < 2 {
		return ""
	}
	types := strings.Split(parts[len(parts)-2], "$")
	return types[len(types)-1]
}

// changed reports whether a step changes anything.
func changed(s Step) bool {
	switch s.Op {
	case "same", "read", "refresh", "":
		return false
	}
	return true
}

// NodeAction is what one node goes through in the run.
type NodeAction struct {
	Node, Role string
	// Action is live, reboot, upgrade, install, removal or unchanged.
	Action string
	// Detail says why, in clear text.
	Detail string
}

// Actions decides each node's action from the steps of its resources (components/rollout.go,
// components/lifecycle.go, components/install.go): the gate's environment says whether the
// node upgrades (IMAGE, KERNEL_ARGS) or reboots (REBOOT_SETTINGS); a staged or live apply alone
// is a live change. Nodes come in roll order, removed nodes last.
func Actions(cluster stackconfig.Cluster, p Preview) []NodeAction {
	byName := map[string]Step{}
	for _, s := range p.Steps {
		if changed(s) {
			byName[s.Name] = s
		}
	}
	var out []NodeAction
	for _, n := range cluster.RollOrder() {
		out = append(out, nodeAction(n.Name, n.Role, byName))
	}
	var removed []string
	for name, s := range byName {
		if strings.HasPrefix(name, "remove-") && s.Op == "create" {
			removed = append(removed, strings.TrimPrefix(name, "remove-"))
		}
	}
	sort.Strings(removed)
	for _, n := range removed {
		role, _ := env(byName["remove-"+n].New)["ROLE"].(string)
		out = append(out, nodeAction(n, role, byName))
	}
	return out
}

func nodeAction(node, role string, steps map[string]Step) NodeAction {
	a := NodeAction{Node: node, Role: role, Action: "unchanged"}
	if s, ok := steps["remove-"+node]; ok && s.Op == "create" {
		a.Action, a.Detail = "removal", "drained; its Kubernetes Node deleted"
		if role == "controlplane" {
			a.Detail = "drained; leaves etcd; its Kubernetes Node deleted"
		}
		if r, ok := steps["config-reset-"+node]; ok && r.Op == "delete" {
			a.Detail += "; reset back to maintenance mode"
		}
		return a
	}
	if s, ok := steps["install-"+node]; ok && s.Op == "create" {
		a.Action, a.Detail = "install", "new node: installed with its final config, then joins"
		return a
	}
	if gate, ok := steps["config-gate-"+node]; ok && gate.Op == "update" {
		before, after := env(gate.Old), env(gate.New)
		differs := func(k string) bool { return fmt.Sprint(before[k]) != fmt.Sprint(after[k]) }
		switch {
		case differs("IMAGE") || differs("KERNEL_ARGS"):
			a.Action = "upgrade"
			var parts []string
			if differs("TALOS_VERSION") {
				parts = append(parts, fmt.Sprintf("Talos %v → %v", before["TALOS_VERSION"], after["TALOS_VERSION"]))
			}
			if differs("SCHEMATIC") {
				parts = append(parts, fmt.Sprintf("schematic %s → %s", short(before["SCHEMATIC"]), short(after["SCHEMATIC"])))
			}
			if differs("KERNEL_ARGS") {
				parts = append(parts, fmt.Sprintf("kernel arguments %q → %q", before["KERNEL_ARGS"], after["KERNEL_ARGS"]))
			}
			a.Detail = "talosctl upgrade: " + strings.Join(parts, ", ")
			return a
		case differs("REBOOT_SETTINGS"):
			a.Action, a.Detail = "reboot", "changes Talos applies only on boot: "+settingChanges(before["REBOOT_SETTINGS"], after["REBOOT_SETTINGS"])
			return a
		case differs("CONTRACT") && before["CONTRACT"] != nil:
			a.Action = "reboot"
			a.Detail = fmt.Sprintf("machine-config contract %v → %v: its changed defaults (machine.features) apply only on boot", before["CONTRACT"], after["CONTRACT"])
			return a
		}
	}
	for _, kind := range []string{"config-apply-", "config-stage-"} {
		if s, ok := steps[kind+node]; ok && s.Op == "update" && !onlyCredentials(s) {
			a.Action, a.Detail = "live", "applied without a reboot, all such nodes at once"
			return a
		}
	}
	return a
}

// onlyCredentials reports whether an apply changes nothing but the client certificate it
// authenticates with (a renewal): the node gets the same config again.
func onlyCredentials(s Step) bool {
	for k, v := range s.New {
		if k != "clientConfiguration" && fmt.Sprint(v) != fmt.Sprint(s.Old[k]) {
			return false
		}
	}
	for k := range s.Old {
		if _, ok := s.New[k]; !ok && k != "clientConfiguration" {
			return false
		}
	}
	return true
}

// renewal is the comment's line when the run renews the admin client certificate (the Talos
// provider does, within a month of its expiry) or the kubeconfig's: every resource that
// authenticates with it changes, no node does.
func renewal(steps map[string]Step) string {
	var what []string
	if s, ok := steps["cluster-secrets"]; ok && s.Op == "update" && slices.Contains(s.Diffs, "clientConfiguration") {
		what = append(what, "the Talos admin client certificate")
	}
	if s, ok := steps["bootstrap-kubeconfig"]; ok && s.Op == "update" && slices.Contains(s.Diffs, "kubeconfigRaw") {
		what = append(what, "the kubeconfig's client certificate")
	}
	if len(what) == 0 {
		return ""
	}
	return "**Credentials renewed** (" + strings.Join(what, " and ") + ", within a month of expiry): each node's config is " +
		"sent again unchanged and each gate checks its node's health again, one batch at a time; no node reboots or changes."
}

// settingChanges lists, on one line, the settings summaries (one setting per line) that after adds
// to before and those it drops.
func settingChanges(before, after any) string {
	old, cur := lineSet(before), lineSet(after)
	var parts []string
	for _, l := range strings.Split(fmt.Sprint(after), "\n") {
		if l = strings.TrimSpace(l); l != "" && !old[l] {
			parts = append(parts, "`"+l+"`")
		}
	}
	for _, l := range strings.Split(fmt.Sprint(before), "\n") {
		if l = strings.TrimSpace(l); l != "" && !cur[l] {
			parts = append(parts, "no longer `"+l+"`")
		}
	}
	return strings.ReplaceAll(strings.Join(parts, ", "), "|", "\\|")
}

func lineSet(v any) map[string]bool {
	out := map[string]bool{}
	for _, l := range strings.Split(fmt.Sprint(v), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out[l] = true
		}
	}
	return out
}

func env(inputs map[string]any) map[string]any {
	m, _ := inputs["environment"].(map[string]any)
	return m
}

func short(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}

// patchChange is one node's change of config patches.
type patchChange struct {
	nodes []string
	diff  []string
}

// patchChanges groups the nodes whose config patches change the same way.
func patchChanges(cluster stackconfig.Cluster, p Preview) []patchChange {
	byName := map[string]Step{}
	for _, s := range p.Steps {
		byName[s.Name] = s
	}
	var out []patchChange
	index := map[string]int{}
	for _, n := range cluster.RollOrder() {
		s, ok := byName["config-apply-"+n.Name]
		if !ok || s.Op != "update" {
			continue
		}
		d := lineDiff(patchText(s.Old), patchText(s.New))
		if len(d) == 0 {
			continue
		}
		key := strings.Join(d, "\n")
		if i, ok := index[key]; ok {
			out[i].nodes = append(out[i].nodes, n.Name)
			continue
		}
		index[key] = len(out)
		out = append(out, patchChange{nodes: []string{n.Name}, diff: d})
	}
	return out
}

func patchText(inputs map[string]any) []string {
	list, _ := inputs["configPatches"].([]any)
	var lines []string
	for _, p := range list {
		text := fmt.Sprint(p)
		lines = append(lines, strings.Split(strings.TrimRight(text, "\n"), "\n")...)
		lines = append(lines, "---")
	}
	return lines
}

// lineDiff returns the changed lines of a against b with one line of context, as "-", "+" and
// " " lines; nothing when they are equal.
func lineDiff(a, b []string) []string {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type line struct {
		op   byte
		text string
	}
	var all []line
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			all = append(all, line{' ', a[i]})
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			all = append(all, line{'-', a[i]})
			i++
		default:
			all = append(all, line{'+', b[j]})
			j++
		}
	}
	keep := make([]bool, len(all))
	some := false
	for k, l := range all {
		if l.op != ' ' {
			some = true
			for c := max(0, k-1); c <= min(len(all)-1, k+1); c++ {
				keep[c] = true
			}
		}
	}
	if !some {
		return nil
	}
	var out []string
	for k, l := range all {
		if keep[k] {
			out = append(out, string(l.op)+" "+l.text)
		} else if k > 0 && keep[k-1] {
			out = append(out, "  …")
		}
	}
	return out
}

// otherChanges lists the changed resources that are not a node's config, gate, install or
// removal, a chart's objects named by their chart.
func otherChanges(p Preview) []string {
	var out []string
	for _, s := range p.Steps {
		if !changed(s) || !s.Custom || nodeResource(s.Name) {
			continue
		}
		what := s.Type + " " + s.Name
		if s.ParentType == "homelab:k8s:Chart" {
			parts := strings.SplitN(s.Name, ":", 3)
			if len(parts) == 3 {
				what = fmt.Sprintf("%s %s (chart %s)", parts[1], parts[2], parts[0])
			}
		}
		line := fmt.Sprintf("%s %s", opSymbol(s.Op), what)
		if keys := changedKeys(s); len(keys) > 0 && s.Op == "update" {
			line += ": " + strings.Join(keys, ", ")
		}
		out = append(out, line)
	}
	sort.Strings(out)
	return out
}

func nodeResource(name string) bool {
	for _, p := range []string{"config-stage-", "config-apply-", "config-gate-", "config-reset-", "install-", "remove-"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

func changedKeys(s Step) []string {
	var keys []string
	for k := range s.DetailedDiff {
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		keys = append(keys, s.Diffs...)
	}
	sort.Strings(keys)
	return keys
}

func opSymbol(op string) string {
	switch op {
	case "create":
		return "`+` create"
	case "update":
		return "`~` update"
	case "delete":
		return "`-` delete"
	case "replace", "create-replacement", "delete-replaced":
		return "`+-` replace"
	}
	return op
}

// Build writes the comment of a stack's preview.
func Build(stack string, cluster stackconfig.Cluster, rollout stackconfig.Rollout, p Preview) string {
	var main, details []string
	add := func(format string, args ...any) { main = append(main, fmt.Sprintf(format, args...)) }
	add("%s", Marker(stack))
	counts := map[string]int{}
	for _, s := range p.Steps {
		if s.Custom && changed(s) {
			counts[s.Op]++
		}
	}
	var summary []string
	for _, op := range []string{"create", "update", "replace", "delete"} {
		if counts[op] > 0 {
			summary = append(summary, fmt.Sprintf("%d to %s", counts[op], op))
		}
	}
	if len(summary) == 0 {
		summary = []string{"no changes"}
	}
	status := "Preview"
	if len(p.Errors) > 0 {
		status = "Preview **failed**"
	}
	add("### %s of stack `%s`: %s", status, stack, strings.Join(summary, ", "))
	for _, e := range p.Errors {
		add("> %s", firstLine(e))
	}

	actions := Actions(cluster, p)
	var touched []NodeAction
	for _, a := range actions {
		if a.Action != "unchanged" {
			touched = append(touched, a)
		}
	}
	add("")
	if len(touched) == 0 {
		add("**Nodes:** no node changes.")
	} else {
		add("**Nodes**, in roll order (control planes first; a node that goes down waits for the one before it to be healthy):")
		add("")
		add("| node | role | action | detail |")
		add("|---|---|---|---|")
		for _, a := range actions {
			add("| %s | %s | %s | %s |", a.Node, a.Role, a.Action, a.Detail)
		}
		goesDown := map[string]bool{}
		for _, a := range touched {
			if a.Action == "reboot" || a.Action == "upgrade" {
				goesDown[a.Node] = true
			}
		}
		// The rollout's batches (stackconfig.RollBatches), each with the nodes of it that go down.
		var order []string
		for _, b := range stackconfig.RollBatches(cluster, rollout.Batch()) {
			var names []string
			for _, n := range b {
				if goesDown[n.Name] {
					names = append(names, n.Name)
				}
			}
			switch {
			case len(names) == 1:
				order = append(order, names[0])
			case len(names) > 1:
				order = append(order, "["+strings.Join(names, ", ")+"]")
			}
		}
		add("")
		switch {
		case len(order) == 0:
			add("No node reboots.")
		case rollout.Batch() == 1:
			add("Nodes that go down, one at a time: %s.", strings.Join(order, " → "))
		default:
			add("Nodes that go down, control planes one at a time, workers up to %d at once (a batch in brackets): %s.",
				rollout.Batch(), strings.Join(order, " → "))
		}
	}
	byName := map[string]Step{}
	for _, s := range p.Steps {
		byName[s.Name] = s
	}
	if line := renewal(byName); line != "" {
		add("")
		add("%s", line)
	}
	if from, to := talosStep(p); to != "" {
		add("")
		add("**Talos** %s → %s: `talosctl upgrade` on each node above marked upgrade, one at a time; this run needs talosctl %s.x.",
			from, to, majorMinor(to))
	}
	if s, ok := byName["k8s-upgrade"]; ok && s.Op == "update" {
		add("")
		add("**Kubernetes** %v → %v: `talosctl upgrade-k8s` once, before any config carries the new version; no node reboots.",
			env(s.Old)["KUBERNETES_VERSION"], env(s.New)["KUBERNETES_VERSION"])
	}

	changes := patchChanges(cluster, p)
	if len(changes) > 0 {
		add("")
		add("**Config changes** (Talos patches):")
		budget := 20
		for _, c := range changes {
			header := "nodes " + strings.Join(c.nodes, ", ")
			details = append(details, "", header+":", "```diff")
			details = append(details, c.diff...)
			details = append(details, "```")
			if budget <= 0 {
				continue
			}
			add("")
			add("%s:", header)
			add("```diff")
			shown := c.diff
			if len(shown) > budget {
				shown = append(shown[:budget:budget], "  … (the rest is in the details)")
			}
			main = append(main, shown...)
			budget -= len(shown)
			add("```")
		}
	}

	others := otherChanges(p)
	if len(others) > 0 {
		add("")
		add("**Other changes** (%d):", len(others))
		limit := max(0, MainLines-len(main)-6)
		for i, o := range others {
			if i == limit {
				add("- … %d more in the details", len(others)-limit)
				break
			}
			add("- %s", o)
		}
		details = append(details, "", "All other changes:")
		for _, o := range others {
			details = append(details, "- "+o)
		}
	}

	var all []Step
	for _, s := range p.Steps {
		if s.Custom && changed(s) {
			all = append(all, s)
		}
	}
	if len(all) > 0 {
		details = append(details, "", "Every changed resource (and, where the provider says, what changes):")
		for _, s := range all {
			line := fmt.Sprintf("- %s %s %s", s.Op, s.Type, s.Name)
			if keys := changedKeys(s); len(keys) > 0 {
				line += ": " + strings.Join(keys, ", ")
			}
			details = append(details, line)
		}
	}
	for _, e := range p.Errors {
		details = append(details, "", "```", e, "```")
	}

	out := strings.Join(main, "\n") + "\n"
	if len(details) > 0 {
		out += "\n<details><summary>Details</summary>\n" + strings.Join(details, "\n") + "\n\n</details>\n"
	}
	return out
}

// talosStep is the Talos version change the gates show, "" when there is none.
func talosStep(p Preview) (from, to string) {
	for _, s := range p.Steps {
		if !strings.HasPrefix(s.Name, "config-gate-") || s.Op != "update" {
			continue
		}
		before, after := env(s.Old)["TALOS_VERSION"], env(s.New)["TALOS_VERSION"]
		if before != nil && after != nil && fmt.Sprint(before) != fmt.Sprint(after) {
			return fmt.Sprint(before), fmt.Sprint(after)
		}
	}
	return "", ""
}

func majorMinor(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return v
	}
	return parts[0] + "." + parts[1]
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
