// Command render writes each node's final Talos machine config without Pulumi, from the same stack
// file, src/ data and patch list the program uses, after the same checks of the stack the program
// runs before it registers anything (validate.Stack), and validates each config the way
// `talosctl validate --mode metal` does.
//
//	go run ./cmd/render --stack norns --out out/               # throwaway secrets: check and review
//	go run ./cmd/render --stack norns --out out/ --secrets secrets.yaml   # the real configs
//
// With the cluster's secrets.yaml the output is what each node runs: the disaster-recovery path is
// `talosctl apply-config --nodes <address> --file out/<node>.yaml` when Pulumi is unavailable.
// Run it from the repository root. On invalid input it lists every problem, writes nothing and
// exits with status 1. A file it wrote for a node the stack no longer lists is removed (it keeps
// the list of what it wrote in <out>/.rendered); other files in <out> are left alone.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"

	"homelab/internal/render"
	"homelab/internal/stackfile"
	"homelab/internal/talosplan"
	"homelab/internal/validate"
)

func main() {
	os.Exit(guard(os.Stderr, func() int { return cli(os.Args[1:], os.Stdout, os.Stderr) }))
}

// guard runs fn and turns a panic into status 1 with a message: a slip must never end in a Go
// stack trace and exit 2.
func guard(stderr io.Writer, fn func() int) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "render: internal error: %v (please report it with the command you ran)\n", r)
			code = 1
		}
	}()
	return fn()
}

func cli(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("render", flag.ContinueOnError)
	flags.SetOutput(stderr)
	stack := flags.String("stack", "", "stack name: reads Pulumi.<stack>.yaml from the working directory (required)")
	out := flags.String("out", "", "directory to write <node>.yaml into (required)")
	secretsFile := flags.String("secrets", "", "the cluster's talosctl secrets.yaml; without it a throwaway bundle is used")
	bringUp := flags.Bool("bring-up", false, "render the bring-up phase of a new cluster (default CNI, before the Cilium handover)")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *stack == "" || *out == "" {
		fmt.Fprintln(stderr, "render: --stack and --out are required")
		flags.Usage()
		return 2
	}
	if err := run(".", *stack, *out, *secretsFile, *bringUp, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "render:", err)
		return 1
	}
	return 0
}

func run(dir, stack, out, secretsFile string, bringUp bool, stdout, stderr io.Writer) error {
	if _, err := os.Stat(filepath.Join(dir, "Pulumi.yaml")); err != nil {
		return fmt.Errorf("there is no Pulumi.yaml in %s: run render from the repository root (the directory with Pulumi.yaml and src/)", absolute(dir))
	}
	cfg, warnings, err := stackfile.LoadConfig(dir, stack)
	if err != nil {
		return err
	}
	checked, err := validate.Stack(cfg, os.DirFS(filepath.Join(dir, "src")), nil, false)
	if err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	for _, n := range checked.Notes {
		fmt.Fprintln(stderr, "render: note:", n)
	}

	var bundle *secrets.Bundle
	if secretsFile != "" {
		if bundle, err = render.LoadSecrets(secretsFile); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(stderr, "render: no --secrets given: using a throwaway secrets bundle; the configs check patches and settings but cannot join the real cluster")
		if bundle, err = render.ThrowawaySecrets(cfg.Cluster); err != nil {
			return err
		}
	}
	phase := talosplan.Final
	if bringUp {
		phase = talosplan.BringUp
	}
	nodes, err := render.Render(cfg.Cluster, checked.Talos, bundle, phase)
	if err != nil {
		return err
	}

	if err := os.MkdirAll(out, 0o700); err != nil {
		return err
	}
	written := map[string]bool{}
	for _, n := range nodes {
		for _, w := range n.Warnings {
			fmt.Fprintf(stderr, "warning: node %s: %s\n", n.Node.Name, w)
		}
		name := n.Node.Name + ".yaml"
		// The configs hold the cluster's keys: readable by the owner only.
		if err := os.WriteFile(filepath.Join(out, name), n.Config, 0o600); err != nil {
			return err
		}
		written[name] = true
		fmt.Fprintln(stdout, filepath.Join(out, name))
	}
	return forgetStale(out, written, stderr)
}

// renderedList is the file in the output directory that lists what render wrote there.
const renderedList = ".rendered"

// forgetStale removes the files an earlier render wrote to out for nodes this one no longer
// renders, and records what this one wrote. Files render did not write are never touched.
func forgetStale(out string, written map[string]bool, stderr io.Writer) error {
	list := filepath.Join(out, renderedList)
	if old, err := os.ReadFile(list); err == nil {
		for _, name := range strings.Split(string(old), "\n") {
			if name == "" || written[name] || name != filepath.Base(name) || !strings.HasSuffix(name, ".yaml") {
				continue
			}
			if err := os.Remove(filepath.Join(out, name)); err == nil {
				fmt.Fprintf(stderr, "render: removed %s: its node is no longer in the stack\n", filepath.Join(out, name))
			} else if !errors.Is(err, os.ErrNotExist) {
				return err
			}
		}
	}
	names := make([]string, 0, len(written))
	for n := range written {
		names = append(names, n)
	}
	sort.Strings(names)
	return os.WriteFile(list, []byte(strings.Join(names, "\n")+"\n"), 0o600)
}

func absolute(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}
