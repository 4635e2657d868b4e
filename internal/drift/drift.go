// Package drift compares the machine config each node runs with the config the program would
// apply, field by field, and says what undoing each difference costs the node (live, reboot,
// upgrade: src/talos/reboot.yaml). Secret fields are compared like the others; a difference in one
// is reported by its path, never by its values. The Talos provider's Read does nothing, so neither
// `pulumi refresh` nor a preview ever sees a node changed by hand; this is how such a change shows.
package drift

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"reflect"
	"sort"
	"strings"

	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	"gopkg.in/yaml.v3"

	"homelab/internal/render"
	"homelab/internal/stackconfig"
	"homelab/internal/talosplan"
)

// redacted replaces every secret value before a config is shown.
const redacted = "<secret>"

// Difference is one field that differs between what a node runs and what the program applies.
type Difference struct {
	// Path is the field: <document>: dotted.path (the document is omitted for v1alpha1).
	Path string
	// Running and Program are the field's values as YAML, "(absent)" when missing; both empty
	// for a secret field.
	Running, Program string
	// Secret is true when the field holds a secret: its values are never shown.
	Secret bool
	// Cost is what applying the program's value costs the node: live, reboot or upgrade.
	Cost string
}

// Node is the drift of one node.
type Node struct {
	Node stackconfig.Node
	// Running are the differences of the config the node runs (machineconfig v1alpha1); Staged
	// those of the config it will boot (machineconfig persistent), when that differs from the
	// running one: a change staged by hand that the next reboot would bring.
	Running, Staged []Difference
}

// Drifted reports whether the node differs from the program.
func (n Node) Drifted() bool { return len(n.Running)+len(n.Staged) > 0 }

// Cost is what undoing the node's drift costs it: the highest cost of its differences.
func (n Node) Cost() string {
	rank := map[string]int{"": 0, "live": 1, "reboot": 2, "upgrade": 3}
	cost := ""
	for _, d := range append(append([]Difference(nil), n.Running...), n.Staged...) {
		if rank[d.Cost] > rank[cost] {
			cost = d.Cost
		}
	}
	if len(n.Staged) > 0 && rank[cost] < rank["reboot"] {
		// Only a reboot, or another apply, clears a staged config.
		cost = "reboot"
	}
	return cost
}

// Compare returns the differences between a config a node runs and the program's config for it.
func Compare(running, program []byte, settings talosplan.Settings) ([]Difference, error) {
	run, runRedacted, err := documents(running)
	if err != nil {
		return nil, fmt.Errorf("the node's config: %w", parseError(err))
	}
	prog, progRedacted, err := documents(program)
	if err != nil {
		return nil, fmt.Errorf("the program's config: %w", parseError(err))
	}
	var out []Difference
	keys := map[string]bool{}
	for k := range run {
		keys[k] = true
	}
	for k := range prog {
		keys[k] = true
	}
	for doc := range keys {
		var paths []string
		diffPaths("", run[doc], prog[doc], &paths)
		for _, p := range paths {
			d := Difference{Path: p}
			if doc != "v1alpha1" {
				d.Path = doc + ": " + p
			}
			if doc == "v1alpha1" {
				d.Cost = settings.Costs(p)
			} else {
				// Other documents (network, volumes, extensions config) are applied by their own
				// controllers; Talos applies them live.
				d.Cost = "live"
			}
			r, rok := lookup(runRedacted[doc], p)
			g, gok := lookup(progRedacted[doc], p)
			if containsSecret(r) || containsSecret(g) || (rok && gok && reflect.DeepEqual(r, g)) {
				// Equal once redacted, different in clear: a secret differs.
				d.Secret = true
			} else {
				d.Running, d.Program = show(r, rok), show(g, gok)
			}
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// documents parses a machine config with Talos's loader and returns its documents as plain
// values, keyed by kind (and name), in clear and with secrets redacted.
func documents(b []byte) (clear, hidden map[string]any, err error) {
	cfg, err := configloader.NewFromBytes(b)
	if err != nil {
		return nil, nil, err
	}
	enc := func(c interface {
		EncodeBytes(...encoder.Option) ([]byte, error)
	}) (map[string]any, error) {
		text, err := c.EncodeBytes(encoder.WithComments(encoder.CommentsDisabled))
		if err != nil {
			return nil, err
		}
		out := map[string]any{}
		dec := yaml.NewDecoder(bytes.NewReader(text))
		for {
			var doc map[string]any
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			if err != nil {
				return nil, err
			}
			if doc == nil {
				continue
			}
			key := "v1alpha1"
			if kind, ok := doc["kind"].(string); ok {
				key = kind
				if name, ok := doc["name"].(string); ok {
					key += "/" + name
				}
			}
			out[key] = doc
		}
	}
	if clear, err = enc(cfg); err != nil {
		return nil, nil, err
	}
	if hidden, err = enc(cfg.RedactSecrets(redacted)); err != nil {
		return nil, nil, err
	}
	for _, doc := range hidden {
		hideMore(doc)
		if m, ok := doc.(map[string]any); ok {
			for _, p := range secretPaths {
				hidePath(m, p)
			}
		}
	}
	return clear, hidden, nil
}

// parseError is what a config that does not parse says, without its values: Talos's loader quotes
// the offending document (its unknown keys with their values, which may be secrets) after the
// first line, and a drift report goes to a job log.
func parseError(err error) error {
	first, rest, _ := strings.Cut(err.Error(), "\n")
	if strings.TrimSpace(rest) != "" {
		first += " (its keys and values are not shown here: read the node's config with talosctl get machineconfig -o yaml)"
	}
	return errors.New(first)
}

// secretPaths are whole subtrees whose values are never shown: the machine's environment
// (machine.env: proxy URLs with credentials, tokens), its static pods (machine.pods: whole pod specs,
// their env included) and its log destinations (machine.logging.destinations: endpoints that may
// carry credentials).
var secretPaths = [][]string{{"machine", "env"}, {"machine", "pods"}, {"machine", "logging", "destinations"}}

// secretKeys are fields that hold secrets beyond those Talos's own redaction covers (which is the
// bundle's keys and tokens only: pkg/machinery/config/types/v1alpha1/v1alpha1_provider.go:124-168
// in v1.11.5): registry credentials (machine.registries.config.*.auth), WireGuard keys, disk
// encryption passphrases, file and inline-manifest contents, manifest headers, registry client
// identities, and the environment of extension services. Their values are compared, never shown.
var secretKeys = map[string]bool{
	"auth": true, "password": true, "identityToken": true, "privateKey": true, "presharedKey": true,
	"passphrase": true, "content": true, "contents": true, "extraManifestHeaders": true, "environment": true,
	"clientIdentity": true, // machine.registries.config.*.tls.clientIdentity: a certificate and its key
}

// hideMore replaces the values of secretKeys, at any depth, with the redaction marker.
func hideMore(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if secretKeys[k] {
				v[k] = redacted
				continue
			}
			hideMore(x)
		}
	case []any:
		for _, x := range v {
			hideMore(x)
		}
	}
}

// hidePath replaces the value at path, when present, with the redaction marker.
func hidePath(doc map[string]any, path []string) {
	cur := doc
	for i, k := range path {
		v, ok := cur[k]
		if !ok {
			return
		}
		if i == len(path)-1 {
			cur[k] = redacted
			return
		}
		if cur, ok = v.(map[string]any); !ok {
			return
		}
	}
}

// diffPaths lists the dotted paths where a and b differ: the deepest maps are walked key by key;
// lists and scalars compare whole.
func diffPaths(prefix string, a, b any, out *[]string) {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		keys := map[string]bool{}
		for k := range am {
			keys[k] = true
		}
		for k := range bm {
			keys[k] = true
		}
		for k := range keys {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			diffPaths(p, am[k], bm[k], out)
		}
		return
	}
	if !reflect.DeepEqual(a, b) {
		*out = append(*out, prefix)
	}
}

func lookup(doc any, path string) (any, bool) {
	cur := doc
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

// containsSecret reports whether v holds the redaction marker anywhere.
func containsSecret(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.Contains(v, redacted)
	case map[string]any:
		for _, x := range v {
			if containsSecret(x) {
				return true
			}
		}
	case []any:
		for _, x := range v {
			if containsSecret(x) {
				return true
			}
		}
	}
	return false
}

func show(v any, ok bool) string {
	if !ok {
		return "(absent)"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// Report writes the drift of every node, one block per node, and says whether any drifted.
func Report(w io.Writer, nodes []Node) bool {
	drifted := false
	for _, n := range nodes {
		if !n.Drifted() {
			fmt.Fprintf(w, "%s (%s): in step with the program\n", n.Node.Name, n.Node.Address)
			continue
		}
		drifted = true
		fmt.Fprintf(w, "%s (%s): DRIFTED; undoing it costs the node: %s\n", n.Node.Name, n.Node.Address, n.Cost())
		for _, part := range []struct {
			what string
			list []Difference
		}{{"running config", n.Running}, {"staged config (applies at the next reboot)", n.Staged}} {
			if len(part.list) == 0 {
				continue
			}
			fmt.Fprintf(w, "  %s, differs from the program's in %d field(s):\n", part.what, len(part.list))
			for _, d := range part.list {
				if d.Secret {
					fmt.Fprintf(w, "    %s: differs (a secret: values not shown) [%s]\n", d.Path, d.Cost)
					continue
				}
				fmt.Fprintf(w, "    %s: node has %s, program has %s [%s]\n", d.Path, d.Running, d.Program, d.Cost)
			}
		}
	}
	return drifted
}

// Nodes renders the program's config of every node with the cluster's secrets bundle and
// compares it with what the node holds.
func Nodes(cluster stackconfig.Cluster, talos *talosplan.Data, bundle *secrets.Bundle, read ReadConfig) ([]Node, error) {
	rendered, err := render.Render(cluster, talos, bundle, talosplan.Final)
	if err != nil {
		return nil, err
	}
	program := map[string][]byte{}
	for _, r := range rendered {
		program[r.Node.Name] = r.Config
	}
	return Check(cluster, talos.Settings, program, read)
}

// ReadConfig returns the machine config a node holds: id "v1alpha1" is the one it runs,
// "persistent" the one it boots next (nothing when the node has none apart from the running one).
type ReadConfig func(node stackconfig.Node, id string) ([]byte, error)

// Check compares every node of the cluster with program, the configs the program applies (from
// internal/render, rendered with the cluster's real secrets), by node name.
func Check(cluster stackconfig.Cluster, settings talosplan.Settings, program map[string][]byte, read ReadConfig) ([]Node, error) {
	var out []Node
	var errs []error
	for _, n := range cluster.RollOrder() {
		node := Node{Node: n}
		running, err := read(n, "v1alpha1")
		if err != nil {
			errs = append(errs, fmt.Errorf("node %s (%s): reading its running config: %w", n.Name, n.Address, err))
			continue
		}
		if node.Running, err = Compare(running, program[n.Name], settings); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", n.Name, err))
			continue
		}
		staged, err := read(n, "persistent")
		if err != nil {
			errs = append(errs, fmt.Errorf("node %s (%s): reading its staged config: %w", n.Name, n.Address, err))
			continue
		}
		if len(staged) == 0 {
			// Nothing persisted apart from what runs.
			out = append(out, node)
			continue
		}
		if pending, err := Compare(staged, running, settings); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", n.Name, err))
			continue
		} else if len(pending) > 0 {
			if node.Staged, err = Compare(staged, program[n.Name], settings); err != nil {
				errs = append(errs, fmt.Errorf("node %s: %w", n.Name, err))
				continue
			}
		}
		out = append(out, node)
	}
	return out, errors.Join(errs...)
}

// Talosctl reads a node's machine config with the talosctl binary and a talosconfig file.
func Talosctl(binary, talosconfig string) ReadConfig {
	return func(n stackconfig.Node, id string) ([]byte, error) {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(binary, "--talosconfig", talosconfig, "--endpoints", n.Address, "--nodes", n.Address,
			"get", "machineconfig", id, "-o", "jsonpath={.spec}")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			if id == "persistent" && strings.Contains(stderr.String(), "NotFound") {
				return nil, nil
			}
			return nil, fmt.Errorf("talosctl get machineconfig %s: %w: %s", id, err, strings.TrimSpace(stderr.String()))
		}
		return stdout.Bytes(), nil
	}
}

// Undo is how `pulumi up` undoes the drift: the resources to replace, each also a target, so the
// run re-applies the program's config to the drifted nodes and touches no other. A node's staged
// and live config applies are re-created (an apply each); its gate is re-created too when the
// undo needs a reboot or an upgrade, and then decides, as in every rollout, whether the node
// upgrades or reboots (src/talos/gate.sh), one node at a time in roll order.
type Undo struct {
	Replace []string
	// Nodes are the drifted nodes, in roll order, with what undoing costs each.
	Nodes []Node
}

// PlanUndo returns the undo of nodes' drift in stack of project (URNs of components/rollout.go).
func PlanUndo(project, stack string, nodes []Node) Undo {
	urn := func(typ, name string) string {
		return fmt.Sprintf("urn:pulumi:%s::%s::homelab:talos:Rollout$%s::%s", stack, project, typ, name)
	}
	const apply, command = "talos:machine/configurationApply:ConfigurationApply", "command:local:Command"
	var u Undo
	for _, n := range nodes {
		if !n.Drifted() {
			continue
		}
		u.Nodes = append(u.Nodes, n)
		u.Replace = append(u.Replace, urn(apply, "config-stage-"+n.Node.Name))
		if n.Cost() != "live" {
			u.Replace = append(u.Replace, urn(command, "config-gate-"+n.Node.Name))
		}
		u.Replace = append(u.Replace, urn(apply, "config-apply-"+n.Node.Name))
	}
	return u
}

// Args are the arguments of `pulumi up` that carry out the undo.
func (u Undo) Args(stack string) []string {
	args := []string{"up", "--stack", stack}
	for _, r := range u.Replace {
		args = append(args, "--target", r, "--replace", r)
	}
	return args
}
