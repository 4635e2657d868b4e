// Command drift compares the machine config each node of a stack runs with the config the program
// would apply, and can undo the difference:
//
//	go run ./cmd/drift --stack norns          # report; exit 0 in step, 2 drifted, 1 on any error
//	go run ./cmd/drift --stack norns --undo   # then re-apply the program's config to the drifted nodes
//
// `go run` itself exits 1 whenever the command fails; a script that tells 2 from 1 builds it first
// (`go build -o .bin/drift ./cmd/drift`, as `mise run drift` and the drift workflow do).
//
// It reads each node through talosctl (on PATH) with the stack's talosconfig output and renders the
// program's configs with the cluster's real secrets (the stack's talosSecrets output), both from
// `pulumi stack output --show-secrets` unless --talosconfig and --secrets name files. Secret
// fields are compared, never printed. The undo runs `pulumi up` with --target and --replace on the
// drifted nodes' config resources only (internal/drift.PlanUndo): each is re-applied, live or with
// the reboot or upgrade its drift needs, through the usual gates; no other node is touched.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"

	"homelab/internal/drift"
	"homelab/internal/stackfile"
	"homelab/internal/talosplan"
)

func main() {
	flags := flag.NewFlagSet("drift", flag.ContinueOnError)
	stack := flags.String("stack", "", "stack name: reads Pulumi.<stack>.yaml from the working directory (required)")
	talosconfig := flags.String("talosconfig", "", "the stack's talosconfig; default: the stack output talosconfig")
	secretsFile := flags.String("secrets", "", "the cluster's talosctl secrets.yaml; default: the stack output talosSecrets")
	undo := flags.Bool("undo", false, "re-apply the program's config to the drifted nodes with pulumi up")
	yes := flags.Bool("yes", false, "with --undo: pass --yes to pulumi up (no confirmation prompt)")
	if err := flags.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(1) // not flag's usual 2: a scheduled check must never read a typo as "drifted"
	}
	if *stack == "" {
		fmt.Fprintln(os.Stderr, "drift: --stack is required")
		flags.Usage()
		os.Exit(1)
	}
	code, err := run(*stack, *talosconfig, *secretsFile, *undo, *yes)
	if err != nil {
		fmt.Fprintln(os.Stderr, "drift:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(stack, talosconfig, secretsFile string, undo, yes bool) (int, error) {
	cfg, _, cfgErr := stackfile.LoadConfig(".", stack)
	talos, dataErr := talosplan.Load(os.DirFS("src"))
	if err := errors.Join(cfgErr, dataErr); err != nil {
		return 1, err
	}
	dir, err := os.MkdirTemp("", "drift-")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(dir)
	if talosconfig == "" || secretsFile == "" {
		outputs, err := stackOutputs(stack)
		if err != nil {
			return 1, err
		}
		for _, f := range []struct {
			flag *string
			key  string
		}{{&talosconfig, "talosconfig"}, {&secretsFile, "talosSecrets"}} {
			if *f.flag != "" {
				continue
			}
			text, ok := outputs[f.key].(string)
			if !ok || text == "" {
				return 1, fmt.Errorf("the stack %s has no output %s: run pulumi up once with this version of the program", stack, f.key)
			}
			*f.flag = filepath.Join(dir, f.key)
			if err := os.WriteFile(*f.flag, []byte(text), 0o600); err != nil {
				return 1, err
			}
		}
	}
	bundle, err := secrets.LoadBundle(secretsFile)
	if err != nil {
		return 1, fmt.Errorf("the cluster secrets %s: %w", secretsFile, err)
	}
	nodes, err := drift.Nodes(cfg.Cluster, talos, bundle, drift.Talosctl("talosctl", talosconfig))
	if err != nil {
		return 1, err
	}
	if !drift.Report(os.Stdout, nodes) {
		return 0, nil
	}
	if !undo {
		fmt.Println("\nto re-apply the program's config to the drifted nodes: go run ./cmd/drift --stack " + stack + " --undo")
		return 2, nil
	}
	plan := drift.PlanUndo("homelab", stack, nodes)
	args := plan.Args(stack)
	if yes {
		args = append(args, "--yes")
	}
	fmt.Printf("\nundoing: pulumi %s\n", strings.Join(args, " "))
	cmd := exec.Command("pulumi", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return 1, fmt.Errorf("pulumi up: %w", err)
	}
	fmt.Println("\ndone; run go run ./cmd/drift --stack " + stack + " again to confirm the nodes are in step")
	return 0, nil
}

// stackOutputs reads the stack's outputs, secrets shown.
func stackOutputs(stack string) (map[string]any, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("pulumi", "stack", "output", "--stack", stack, "--show-secrets", "--json")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("pulumi stack output: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	out := map[string]any{}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("pulumi stack output: %w", err)
	}
	return out, nil
}
