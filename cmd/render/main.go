// Command render writes each node's final Talos machine config without Pulumi, from the same stack
// file, src/ data and patch list the program uses, and validates each config the way
// `talosctl validate --mode metal` does.
//
//	go run ./cmd/render --stack norns --out out/               # throwaway secrets: check and review
//	go run ./cmd/render --stack norns --out out/ --secrets secrets.yaml   # the real configs
//
// With the cluster's secrets.yaml the output is what each node runs: the disaster-recovery path is
// `talosctl apply-config --nodes <address> --file out/<node>.yaml` when Pulumi is unavailable.
// On invalid input it lists every problem, writes nothing and exits with status 1.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"

	"homelab/internal/render"
	"homelab/internal/stackfile"
	"homelab/internal/talosplan"
)

func main() {
	flags := flag.NewFlagSet("render", flag.ContinueOnError)
	stack := flags.String("stack", "", "stack name: reads Pulumi.<stack>.yaml from the working directory (required)")
	out := flags.String("out", "", "directory to write <node>.yaml into (required)")
	secretsFile := flags.String("secrets", "", "the cluster's talosctl secrets.yaml; without it a throwaway bundle is used")
	bringUp := flags.Bool("bring-up", false, "render the bring-up phase of a new cluster (default CNI, before the Cilium handover)")
	if err := flags.Parse(os.Args[1:]); err != nil {
		os.Exit(exitCode(err))
	}
	if *stack == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "render: --stack and --out are required")
		flags.Usage()
		os.Exit(2)
	}
	if err := run(*stack, *out, *secretsFile, *bringUp); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func run(stack, out, secretsFile string, bringUp bool) error {
	cfg, warnings, cfgErr := stackfile.LoadConfig(".", stack)
	talos, dataErr := talosplan.Load(os.DirFS("src"))
	if err := errors.Join(cfgErr, dataErr); err != nil {
		return err
	}
	for _, w := range warnings {
		fmt.Fprintln(os.Stderr, "warning:", w)
	}

	var bundle *secrets.Bundle
	var err error
	if secretsFile != "" {
		if bundle, err = secrets.LoadBundle(secretsFile); err != nil {
			return fmt.Errorf("--secrets %s: %w", secretsFile, err)
		}
	} else {
		fmt.Fprintln(os.Stderr, "render: no --secrets given: using a throwaway secrets bundle; the configs check patches and settings but cannot join the real cluster")
		if bundle, err = render.ThrowawaySecrets(cfg.Cluster); err != nil {
			return err
		}
	}
	phase := talosplan.Final
	if bringUp {
		phase = talosplan.BringUp
	}
	nodes, err := render.Render(cfg.Cluster, talos, bundle, phase)
	if err != nil {
		return err
	}

	if err := os.MkdirAll(out, 0o700); err != nil {
		return err
	}
	for _, n := range nodes {
		for _, w := range n.Warnings {
			fmt.Fprintf(os.Stderr, "warning: node %s: %s\n", n.Node.Name, w)
		}
		path := filepath.Join(out, n.Node.Name+".yaml")
		// The configs hold the cluster's keys: readable by the owner only.
		if err := os.WriteFile(path, n.Config, 0o600); err != nil {
			return err
		}
		fmt.Println(path)
	}
	return nil
}

// exitCode is the status of a flag-parsing error: 0 for -help, 2 otherwise.
func exitCode(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}
