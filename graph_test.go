package main

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"homelab/internal/golden"
)

// graph renders the registered resource tree as reviewable text: one block per resource, sorted,
// with its parent, dependencies and the options that decide what the engine may do with it. A
// rename or re-parent (which needs an alias) or a lost dependency shows up in review.
func (r *result) graph() string {
	lines := make([]string, 0, len(r.resources))
	for _, res := range r.resources {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s\n", res.Type, res.Name)
		if p := res.Req.GetParent(); p != "" {
			fmt.Fprintf(&b, "  parent: %s\n", urnName(p))
		}
		deps := res.deps()
		if len(deps) > 0 {
			names := make([]string, 0, len(deps))
			for d := range deps {
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
		lines = append(lines, b.String())
	}
	sort.Strings(lines)
	return strings.Join(lines, "")
}

func TestResourceGraphMatchesReviewedGolden(t *testing.T) {
	// A five-node stack that deployed and now drops a worker: the removal runs before the health
	// gate; with resetOnDestroy, resets are chained.
	removal := fiveNodes(t)
	removal["adopt"], removal["resetOnDestroy"] = true, true
	before := deployedRecord(removal)
	var stay []any
	for _, n := range removal["nodes"].([]any) {
		if n.(map[string]any)["name"] != "w2" {
			stay = append(stay, n)
		}
	}
	removal["nodes"] = stay
	for name, run := range map[string]struct {
		cluster map[string]any
		opts    runOpts
	}{
		"norns-adopted":    {stack(t, "norns"), runOpts{}},
		"fresh-five-nodes": {fiveNodes(t), runOpts{}},
		"remove-a-worker":  {removal, runOpts{previous: before}},
	} {
		r := mustRun(t, run.cluster, run.opts)
		golden.Check(t, filepath.Join("testdata", "graph", name+".golden"), []byte(r.graph()))
	}
}
