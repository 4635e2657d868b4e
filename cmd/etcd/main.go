// Command etcd takes the cluster's etcd snapshots and recovers etcd from one when a majority of
// the control planes lost their etcd data (docs/operations.md, "etcd snapshots" and "etcd lost its
// quorum"):
//
//	go run ./cmd/etcd snapshot --stack norns   # a snapshot, encrypted, to the stack's bucket
//	go run ./cmd/etcd list --stack norns       # the bucket's snapshots, newest first
//	go run ./cmd/etcd recover --stack norns --identity age.key --yes
//	eval "$(go run ./cmd/etcd refs --stack norns)"   # the bucket key's op:// references, for op run
//
// It drives the real talosctl (on PATH, of the stack's Talos release) with the stack's talosconfig
// output (or --talosconfig), as Talos's disaster-recovery guide does by hand. A snapshot is
// encrypted with age to homelab:backup.recipients before it leaves this machine, and stored in
// homelab:backup.s3; the bucket keeps homelab:backup.keep of them. The bucket's access key is read
// from ETCD_BACKUP_ACCESS_KEY_ID and ETCD_BACKUP_SECRET_ACCESS_KEY, which `op run` fills from the vault item
// homelab:backup.item (mise run etcd-snapshot does); recover reads the age identity from
// --identity or AGE_IDENTITY. Every file it writes is private and removed when it ends.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"homelab/internal/etcdbackup"
	"homelab/internal/stackfile"
	"homelab/internal/stackout"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage:
  etcd snapshot --stack <stack> [--talosconfig <file>]
  etcd list     --stack <stack>
  etcd recover  --stack <stack> [--identity <age identity file>] [--snapshot <name in the bucket, or a file>] [--talosconfig <file>] [--yes]
  etcd refs     --stack <stack>   (prints the op:// references of the bucket's key, for op run)`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "snapshot" && args[0] != "list" && args[0] != "recover" && args[0] != "refs") {
		fmt.Fprintln(stderr, usage)
		return 1
	}
	verb := args[0]
	flags := flag.NewFlagSet("etcd "+verb, flag.ContinueOnError)
	flags.SetOutput(stderr)
	stack := flags.String("stack", "", "stack name: reads Pulumi.<stack>.yaml from the working directory (required)")
	talosconfig := flags.String("talosconfig", "", "the stack's talosconfig; default: the stack output talosconfig")
	identity := flags.String("identity", "", "recover: a file with the age identity of one of homelab:backup.recipients; default: $AGE_IDENTITY")
	from := flags.String("snapshot", "", "recover: the snapshot's name in the bucket, or a local file (encrypted); default: the newest in the bucket")
	yes := flags.Bool("yes", false, "recover: do it (without it, recover only says what it would do)")
	if err := flags.Parse(args[1:]); err != nil {
		return 1
	}
	if *stack == "" {
		fmt.Fprintln(stderr, "etcd: --stack is required\n"+usage)
		return 1
	}
	if _, err := os.Stat("Pulumi.yaml"); err != nil {
		fmt.Fprintln(stderr, "etcd:", stackout.ErrNoProject)
		return 1
	}
	cfg, _, err := stackfile.LoadConfig(".", *stack)
	if err != nil {
		fmt.Fprintln(stderr, "etcd:", err)
		return 1
	}
	if verb == "refs" {
		fmt.Fprint(stdout, etcdbackup.Refs(cfg.OnePassword.Vault, cfg.Backup.Item))
		return 0
	}
	// Interrupted, the command removes what it wrote before it exits.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	dir, err := stackout.PrivateDir("homelab-etcd.")
	if err != nil {
		fmt.Fprintln(stderr, "etcd:", err)
		return 1
	}
	defer os.RemoveAll(dir)

	store, err := etcdbackup.OpenStore(cfg.Cluster.Name, cfg.Backup, cfg.OnePassword.Vault)
	if err != nil && (verb != "recover" || !isFile(*from)) {
		fmt.Fprintln(stderr, "etcd:", err)
		return 1
	}
	if verb == "list" {
		err = etcdbackup.List(ctx, store, stdout)
	} else {
		tc := *talosconfig
		if tc == "" {
			outputs, oerr := stackout.Read(*stack, "--talosconfig (mise run talosconfig writes ./talosconfig)")
			if oerr == nil {
				tc, oerr = stackout.File(outputs, *stack, "talosconfig", dir)
			}
			if oerr != nil {
				fmt.Fprintln(stderr, "etcd:", oerr)
				return 1
			}
		}
		talos := etcdbackup.Talosctl{Talosconfig: tc, Out: stderr}
		switch verb {
		case "snapshot":
			err = etcdbackup.Snapshot(ctx, cfg, talos, store, dir, stdout)
		case "recover":
			err = etcdbackup.Recover(ctx, etcdbackup.RecoverOptions{Config: cfg, Talos: talos, Store: store, Dir: dir,
				Identity: *identity, Snapshot: *from, Yes: *yes}, stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "etcd:", err)
		if errors.Is(err, context.Canceled) {
			return 130
		}
		return 1
	}
	return 0
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return path != "" && err == nil && st.Mode().IsRegular()
}
