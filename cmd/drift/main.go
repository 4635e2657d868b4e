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
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"homelab/internal/drift"
	"homelab/internal/render"
	"homelab/internal/stackfile"
	"homelab/internal/stackout"
	"homelab/internal/validate"
)

func main() {
	os.Exit(guard(os.Stderr, cli))
}

// guard runs fn and turns a panic into status 1 with a message: 2 means "drifted", and a crash
// must never read as one to a scheduled check.
func guard(stderr io.Writer, fn func() int) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "drift: internal error: %v (please report it with the command you ran)\n", r)
			code = 1
		}
	}()
	return fn()
}

func cli() int {
	flags := flag.NewFlagSet("drift", flag.ContinueOnError)
	stack := flags.String("stack", "", "stack name: reads Pulumi.<stack>.yaml from the working directory (required)")
	talosconfig := flags.String("talosconfig", "", "the stack's talosconfig; default: the stack output talosconfig")
	secretsFile := flags.String("secrets", "", "the cluster's talosctl secrets.yaml; default: the stack output talosSecrets")
	undo := flags.Bool("undo", false, "re-apply the program's config to the drifted nodes with pulumi up")
	yes := flags.Bool("yes", false, "with --undo: pass --yes to pulumi up (no confirmation prompt)")
	if err := flags.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 1 // not flag's usual 2: a scheduled check must never read a typo as "drifted"
	}
	if *stack == "" {
		fmt.Fprintln(os.Stderr, "drift: --stack is required")
		flags.Usage()
		return 1
	}
	code, err := run(*stack, *talosconfig, *secretsFile, *undo, *yes)
	if err != nil {
		fmt.Fprintln(os.Stderr, "drift:", err)
		return 1
	}
	return code
}

func run(stack, talosconfig, secretsFile string, undo, yes bool) (int, error) {
	if _, err := os.Stat("Pulumi.yaml"); err != nil {
		return 1, stackout.ErrNoProject
	}
	cfg, _, err := stackfile.LoadConfig(".", stack)
	if err != nil {
		return 1, err
	}
	checked, err := validate.Stack(cfg, os.DirFS("src"), nil, false)
	if err != nil {
		return 1, err
	}
	talos := checked.Talos
	// The talosconfig and the secrets bundle live in a private directory (under $RUNNER_TEMP in a
	// job) only while the nodes are read; a stop by signal (a cancelled job, Ctrl-C) removes it too.
	dir, err := stackout.PrivateDir("homelab-drift.")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(dir)
	stopped := make(chan os.Signal, 1)
	signal.Notify(stopped, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(stopped)
	go func() {
		<-stopped
		os.RemoveAll(dir)
		os.Exit(130)
	}()
	if talosconfig == "" || secretsFile == "" {
		outputs, err := stackout.Read(stack, "both files instead: --talosconfig (mise run talosconfig writes ./talosconfig) and "+
			"--secrets (pulumi stack output --show-secrets talosSecrets, or the vault backup item's secrets.yaml field)")
		if err != nil {
			return 1, err
		}
		if talosconfig == "" {
			if talosconfig, err = stackout.File(outputs, stack, "talosconfig", dir); err != nil {
				return 1, err
			}
		}
		if secretsFile == "" {
			if secretsFile, err = stackout.File(outputs, stack, "talosSecrets", dir); err != nil {
				return 1, err
			}
		}
	}
	if err := render.CheckTalosconfig(talosconfig); err != nil {
		return 1, err
	}
	bundle, err := render.LoadSecrets(secretsFile)
	if err != nil {
		return 1, err
	}
	nodes, err := drift.Nodes(cfg.Cluster, talos, bundle, drift.Talosctl("talosctl", talosconfig))
	os.RemoveAll(dir) // read: the undo's pulumi up needs neither file
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
