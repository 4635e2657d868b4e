package etcdbackup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"filippo.io/age"

	"homelab/internal/stackconfig"
)

// RecoverOptions configures a recovery.
type RecoverOptions struct {
	Config *stackconfig.Config
	Talos  Talosctl
	// Store is the bucket; nil when Snapshot is a local file.
	Store *Store
	// Dir is a private directory for the decrypted snapshot.
	Dir string
	// Identity is a file with the age identity; "" reads $AGE_IDENTITY.
	Identity string
	// Snapshot is a name in the bucket or a local (encrypted) file; "" is the newest in the bucket.
	Snapshot string
	// Yes does it; otherwise Recover says what it would do.
	Yes bool
	// Poll is how often a wait asks the nodes again; Timeout how long it waits for each step.
	Poll, Timeout time.Duration
}

// talosctl service etcd prints the service's state (cmd/talosctl/cmd/talos/service.go).
var serviceState = regexp.MustCompile(`(?m)^STATE\s+(\S+)`)

// etcdState is the state of a control plane's etcd service ("" when the node does not answer):
// Running, or Preparing while it waits to join a cluster or for a bootstrap
// (internal/app/machined/pkg/system/services/etcd.go, buildInitialCluster, at v1.11.5).
func etcdState(ctx context.Context, t Talosctl, address string) string {
	out, err := t.run(ctx, address, "service", "etcd")
	if err != nil {
		return ""
	}
	if m := serviceState.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return ""
}

// Recover restores the cluster's etcd from a snapshot when a majority of its control planes lost
// their etcd data, as Talos's disaster-recovery guide does it (website/content/v1.11/advanced/
// disaster-recovery.md at v1.11.5, the same steps for v1.13): every answering control plane whose
// etcd is not waiting to join gets its EPHEMERAL partition wiped (reset --graceful=false, which
// leaves no etcd member behind), one of them is bootstrapped from the snapshot (bootstrap
// --recover-from, which verifies the snapshot's hash: it comes from etcd's own snapshot, never a
// copied data directory, so --recover-skip-hash-check is never given), and the others join it.
// It refuses while a majority still runs etcd: that cluster has its quorum.
func Recover(ctx context.Context, o RecoverOptions, w io.Writer) error {
	if o.Poll == 0 {
		o.Poll = 2 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Minute
	}
	cps := o.Config.Cluster.ControlPlanes()
	states := map[string]string{}
	running := 0
	for _, n := range cps {
		states[n.Name] = etcdState(ctx, o.Talos, n.Address)
		if states[n.Name] == "Running" {
			running++
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if running*2 > len(cps) {
		return fmt.Errorf("etcd runs on %d of %d control planes (%s): it has its quorum, so there is nothing to recover; a control plane "+
			"that lost its data rejoins once its EPHEMERAL partition is wiped (talosctl reset --graceful=false --reboot "+
			"--system-labels-to-wipe=EPHEMERAL), or leaves by removing it from the stack file", running, len(cps), describe(cps, states))
	}
	db, name, err := fetch(ctx, o)
	if err != nil {
		return err
	}
	var reset, absent []string
	target := ""
	for _, n := range cps {
		switch states[n.Name] {
		case "":
			absent = append(absent, n.Name)
			continue
		case "Preparing":
		default:
			reset = append(reset, n.Name)
		}
		if target == "" {
			target = n.Name
		}
	}
	if target == "" {
		return fmt.Errorf("no control plane answers (%s): bring one back first", describe(cps, states))
	}
	fmt.Fprintf(w, "etcd of %s: %s; recovering from %s:\n", o.Config.Cluster.Name, describe(cps, states), name)
	if len(reset) > 0 {
		fmt.Fprintf(w, "  1. wipe the EPHEMERAL partition of %s (its etcd data), one at a time, and wait for etcd to wait for a bootstrap\n", strings.Join(reset, ", "))
	}
	fmt.Fprintf(w, "  2. bootstrap %s from the snapshot\n  3. wait for the other control planes to join\n", target)
	if len(absent) > 0 {
		fmt.Fprintf(w, "  %s does not answer: when it is back, wipe its EPHEMERAL partition too, and it rejoins\n", strings.Join(absent, ", "))
	}
	if !o.Yes {
		fmt.Fprintln(w, "nothing was done: run again with --yes to do it")
		return nil
	}
	byName := map[string]stackconfig.Node{}
	for _, n := range cps {
		byName[n.Name] = n
	}
	for _, name := range reset {
		if _, err := o.Talos.run(ctx, byName[name].Address, "reset", "--graceful=false", "--reboot",
			"--system-labels-to-wipe=EPHEMERAL", "--wait", "--timeout", o.Timeout.String()); err != nil {
			return err
		}
		if err := waitFor(ctx, o, "etcd on "+name+" to wait for a bootstrap", func() bool {
			return etcdState(ctx, o.Talos, byName[name].Address) == "Preparing"
		}); err != nil {
			return err
		}
	}
	out, err := o.Talos.run(ctx, byName[target].Address, "bootstrap", "--recover-from", db)
	if err != nil {
		return err
	}
	revision := ""
	if m := regexp.MustCompile(`revision (\d+)`).FindStringSubmatch(out); m != nil {
		revision = " at revision " + m[1]
	}
	joined := func() bool {
		for _, n := range cps {
			if states[n.Name] != "" && etcdState(ctx, o.Talos, n.Address) != "Running" {
				return false
			}
		}
		return true
	}
	if err := waitFor(ctx, o, "every answering control plane's etcd to run", joined); err != nil {
		return err
	}
	fmt.Fprintf(w, "etcd recovered from %s%s on %s; the other control planes joined. Now run pulumi up: it should find nothing to do.\n",
		name, revision, target)
	return nil
}

func describe(nodes []stackconfig.Node, states map[string]string) string {
	var parts []string
	for _, n := range nodes {
		s := states[n.Name]
		if s == "" {
			s = "no answer"
		}
		parts = append(parts, n.Name+" "+s)
	}
	return strings.Join(parts, ", ")
}

func waitFor(ctx context.Context, o RecoverOptions, what string, done func() bool) error {
	deadline := time.Now().Add(o.Timeout)
	for !done() {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up after %s waiting for %s", o.Timeout, what)
		}
		time.Sleep(o.Poll)
	}
	return nil
}

// fetch decrypts the chosen snapshot into o.Dir and returns its path and its name.
func fetch(ctx context.Context, o RecoverOptions) (string, string, error) {
	ids, err := identities(o.Identity)
	if err != nil {
		return "", "", err
	}
	enc, name := o.Snapshot, filepath.Base(o.Snapshot)
	if st, err := os.Stat(o.Snapshot); o.Snapshot == "" || err != nil || !st.Mode().IsRegular() {
		if o.Store == nil {
			return "", "", errors.New("no bucket to fetch the snapshot from (homelab:backup.s3)")
		}
		name = o.Snapshot
		if name == "" {
			list, err := o.Store.snapshots(ctx)
			if err != nil {
				return "", "", err
			}
			if len(list) == 0 {
				return "", "", fmt.Errorf("%s holds no snapshot", o.Store.display)
			}
			name = list[0].Name
		}
		enc = filepath.Join(o.Dir, "snapshot.db.age")
		if err := o.Store.get(ctx, name, enc); err != nil {
			return "", "", err
		}
	}
	db := filepath.Join(o.Dir, "db.snapshot")
	if err := decrypt(enc, db, ids); err != nil {
		return "", "", err
	}
	return db, name, nil
}

// identities reads the age identity from file, or from $AGE_IDENTITY.
func identities(file string) ([]age.Identity, error) {
	var text string
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--identity: %w", err)
		}
		text = string(b)
	} else if text = os.Getenv("AGE_IDENTITY"); text == "" || strings.HasPrefix(text, "op://") {
		return nil, errors.New("no age identity: pass --identity <file>, or set AGE_IDENTITY (op run fills it from the vault " +
			"item where the identity of homelab:backup.recipients is kept)")
	}
	ids, err := age.ParseIdentities(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("the age identity does not parse: %w", err)
	}
	return ids, nil
}
