package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"homelab/internal/fixture"
	"homelab/internal/golden"
)

// graph renders the registered resource tree as reviewable text: one block per resource, sorted,
// with its parent, dependencies and the options that decide what the engine may do with it. A
// rename or re-parent (which needs an alias) or a lost dependency shows up in review. A chart's
// objects are what `helm template` renders (in mock runs, stand-ins): they collapse into one
// "objects of chart X" block, and a dependency on them reads "chart X".
func (r *result) graph() string {
	chartOf := map[string]string{} // object name -> chart
	for _, res := range r.resources {
		if p := res.Req.GetParent(); p != "" && urnType(p) == chartToken {
			chartOf[res.Name] = urnName(p)
		}
	}
	lines := make([]string, 0, len(r.resources))
	seenChart := map[string]bool{}
	for _, res := range r.resources {
		var b strings.Builder
		chart, isObject := chartOf[res.Name]
		if isObject {
			if seenChart[chart] {
				continue
			}
			seenChart[chart] = true
			fmt.Fprintf(&b, "objects of chart %s\n", chart)
			fmt.Fprintf(&b, "  parent: %s\n", chart)
		} else {
			fmt.Fprintf(&b, "%s %s\n", res.Type, res.Name)
			if p := res.Req.GetParent(); p != "" {
				fmt.Fprintf(&b, "  parent: %s\n", urnName(p))
			}
		}
		deps := res.deps()
		if isObject {
			// The union of what the chart's objects wait for outside the chart.
			deps = map[string]bool{}
			for _, o := range r.resources {
				if chartOf[o.Name] == chart {
					for d := range o.deps() {
						if chartOf[d] != chart {
							deps[d] = true
						}
					}
				}
			}
		}
		if len(deps) > 0 {
			set := map[string]bool{}
			for d := range deps {
				if c, ok := chartOf[d]; ok {
					d = "chart " + c
				}
				set[d] = true
			}
			names := make([]string, 0, len(set))
			for d := range set {
				names = append(names, d)
			}
			sort.Strings(names)
			fmt.Fprintf(&b, "  dependsOn: %s\n", strings.Join(names, ", "))
		}
		if p := res.Req.GetProvider(); p != "" {
			parts := strings.Split(p, "::") // <provider URN>::<provider ID>
			fmt.Fprintf(&b, "  provider: %s\n", parts[len(parts)-2])
		}
		if res.Req.GetProtect() {
			b.WriteString("  protect: true\n")
		}
		if res.Req.GetRetainOnDelete() {
			b.WriteString("  retainOnDelete: true\n")
		}
		for _, opt := range []struct {
			name   string
			values []string
		}{
			{"ignoreChanges", res.Req.GetIgnoreChanges()},
			{"replaceOnChanges", res.Req.GetReplaceOnChanges()},
			{"additionalSecretOutputs", res.Req.GetAdditionalSecretOutputs()},
		} {
			if len(opt.values) > 0 {
				v := append([]string(nil), opt.values...)
				sort.Strings(v)
				fmt.Fprintf(&b, "  %s: %s\n", opt.name, strings.Join(v, ", "))
			}
		}
		if mode, ok := res.Inputs["applyMode"]; ok {
			fmt.Fprintf(&b, "  applyMode: %s\n", str(mode))
		}
		// The versions a command moves nodes to: an upgrade shows in the graph as these.
		if env := res.Inputs["environment"]; env.IsObject() {
			for _, k := range []resource.PropertyKey{"TALOS_VERSION", "KUBERNETES_VERSION"} {
				if v, ok := env.ObjectValue()[k]; ok && v.IsString() {
					fmt.Fprintf(&b, "  %s: %s\n", k, v.StringValue())
				}
			}
		}
		lines = append(lines, b.String())
	}
	sort.Strings(lines)
	return strings.Join(lines, "")
}

func TestResourceGraphMatchesReviewedGolden(t *testing.T) {
	// A five-node stack that deployed and now drops a worker: the removal runs before the health
	// gate; with resetOnDestroy, resets are chained.
	removal := fixture.FiveNodes(t)
	removal["adopt"], removal["resetOnDestroy"] = true, true
	before := deployedRecord(removal)
	var stay []any
	for _, n := range removal["nodes"].([]any) {
		if n.(map[string]any)["name"] != "w2" {
			stay = append(stay, n)
		}
	}
	removal["nodes"] = stay
	// The same stack dropping a control plane instead: it leaves etcd before the gate.
	cpRemoval := fixture.FiveNodes(t)
	cpRemoval["adopt"] = true
	cpBefore := deployedRecord(cpRemoval)
	var cpStay []any
	for _, n := range cpRemoval["nodes"].([]any) {
		if n.(map[string]any)["name"] != "skuld" {
			cpStay = append(cpStay, n)
		}
	}
	cpRemoval["nodes"] = cpStay
	// norns moving to Talos v1.11.6 and Kubernetes v1.34.2: upgrade-k8s before any config that
	// carries the new version, then the gates upgrade each node in roll order.
	upgrade := fixture.Cluster(t, "norns")
	upgradeBefore := deployedRecord(upgrade)
	upgrade["talosVersion"], upgrade["kubernetesVersion"] = "v1.11.6", "v1.34.2"
	// Three control planes and six workers, three workers down at once: each control plane's
	// gate alone, then two batches of three worker gates, each waiting for the whole batch before.
	batches := fixture.NineNodes(t)
	for name, run := range map[string]struct {
		cluster map[string]any
		opts    runOpts
	}{
		"workers-in-batches-of-three":  {batches, runOpts{config: map[string]string{"homelab:rollout": `{"maxUnavailable": 3}`}}},
		"norns-adopted":                {fixture.Cluster(t, "norns"), runOpts{}},
		"fresh-five-nodes":             {fixture.FiveNodes(t), runOpts{}},
		"remove-a-worker":              {removal, runOpts{previous: before}},
		"remove-a-control-plane":       {cpRemoval, runOpts{previous: cpBefore}},
		"upgrade-talos-and-kubernetes": {upgrade, runOpts{previous: upgradeBefore}},
	} {
		r := mustRun(t, run.cluster, run.opts)
		golden.Check(t, filepath.Join("testdata", "graph", name+".golden"), []byte(r.graph()))
	}
}

// diagram renders, as a Mermaid flowchart, the order in which the resources group selects run: an
// edge A --> B when B waits for A, directly or through resources left out, without the edges that
// other paths already imply. group names the box a resource belongs to ("" leaves it out).
func (r *result) diagram(group func(registration) string) string {
	byName := map[string]registration{}
	for _, res := range r.resources {
		byName[res.Name] = res
	}
	groupOf := func(name string) string {
		if res, ok := byName[name]; ok {
			return group(res)
		}
		return ""
	}
	// reach[g] is every box a resource of box g waits for.
	reach := map[string]map[string]bool{}
	for _, res := range r.resources {
		g := group(res)
		if g == "" {
			continue
		}
		if reach[g] == nil {
			reach[g] = map[string]bool{}
		}
		seen := map[string]bool{}
		var walk func(registration)
		walk = func(x registration) {
			deps := x.deps()
			if p := x.Req.GetProvider(); p != "" {
				// Waiting for a provider is waiting for what configures it (the kubeconfig).
				parts := strings.Split(p, "::")
				deps[parts[len(parts)-2]] = true
			}
			for d := range deps {
				if seen[d] {
					continue
				}
				seen[d] = true
				if dg := groupOf(d); dg != "" {
					if dg != g {
						reach[g][dg] = true
					}
					continue
				}
				if next, ok := byName[d]; ok {
					walk(next)
				}
			}
		}
		walk(res)
	}
	// Transitive closure, then keep only the edges no longer path implies.
	closure := map[string]map[string]bool{}
	var close func(g string) map[string]bool
	close = func(g string) map[string]bool {
		if c, ok := closure[g]; ok {
			return c
		}
		c := map[string]bool{}
		closure[g] = c
		for d := range reach[g] {
			c[d] = true
			for dd := range close(d) {
				c[dd] = true
			}
		}
		return c
	}
	var boxes []string
	for g := range reach {
		boxes = append(boxes, g)
		close(g)
	}
	sort.Strings(boxes)
	id := map[string]string{}
	for i, g := range boxes {
		id[g] = fmt.Sprintf("n%d", i)
	}
	var b strings.Builder
	b.WriteString("flowchart TD\n")
	for _, g := range boxes {
		fmt.Fprintf(&b, "  %s[\"%s\"]\n", id[g], g)
	}
	for _, g := range boxes {
		var deps []string
		for d := range reach[g] {
			implied := false
			for other := range reach[g] {
				if other != d && closure[other][d] {
					implied = true
					break
				}
			}
			if !implied {
				deps = append(deps, d)
			}
		}
		sort.Strings(deps)
		for _, d := range deps {
			fmt.Fprintf(&b, "  %s --> %s\n", id[d], id[g])
		}
	}
	return b.String()
}

// orderBox groups the resources of the order diagrams: one box per resource, but the Gateway API
// CRDs together and each chart's objects together.
func orderBox(res registration) string {
	p := res.Req.GetParent()
	switch {
	case !res.Req.GetCustom() || strings.HasPrefix(res.Type, "pulumi:"):
		return ""
	case p != "" && urnType(p) == chartToken:
		return "chart " + urnName(p)
	case strings.HasPrefix(res.Name, "gateway-api-"):
		return "Gateway API CRDs"
	case res.Type == itemToken, res.Type == schematicToken, strings.HasPrefix(res.Name, "node-talosconfig"):
		return ""
	}
	return res.Name
}

// generatedBlock replaces, in a document, the text between the markers of block name, or returns
// the current text when update is false.
func generatedBlock(t *testing.T, doc, name, content string) (current, updated string) {
	t.Helper()
	begin := "<!-- generated:" + name + " -->\n"
	end := "<!-- end:" + name + " -->"
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("no block %q (%s ... %s) in the document", name, strings.TrimSpace(begin), end)
	}
	block := "```mermaid\n" + content + "```\n"
	return doc[i+len(begin) : j], doc[:i+len(begin)] + block + doc[j:]
}

func TestOrderDiagramsFollowTheResourceGraph(t *testing.T) {
	path := filepath.Join(fixture.Root(t), "docs", "order.md")
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(text)
	bringUp := fixture.FreshNorns(t)
	for _, d := range []struct {
		name    string
		cluster map[string]any
		box     func(registration) string
	}{
		{"bring-up", bringUp, orderBox},
		{"rollout", fixture.Cluster(t, "norns"), func(res registration) string {
			// A change on a running cluster: the rollout and what it waits for.
			switch box := orderBox(res); {
			case strings.HasPrefix(box, "config-"), box == "k8s-upgrade", box == "chart cilium", box == "cni-cleanup":
				return box
			}
			return ""
		}},
	} {
		r := mustRun(t, d.cluster, runOpts{})
		content := r.diagram(d.box)
		current, updated := generatedBlock(t, doc, d.name, content)
		if *golden.Update {
			doc = updated
			continue
		}
		if current != "```mermaid\n"+content+"```\n" {
			t.Errorf("the %s diagram in %s is out of step with the resource graph; run go test ./... -update and review the diff", d.name, path)
		}
	}
	if *golden.Update {
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
