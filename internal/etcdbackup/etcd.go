package etcdbackup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"

	"homelab/internal/stackconfig"
)

// Talosctl runs the real talosctl with the stack's talosconfig, one node at a time.
type Talosctl struct {
	Talosconfig string
	// Out gets what talosctl prints on stderr while it runs (progress, errors).
	Out io.Writer
}

// run runs talosctl against node (also its endpoint) and returns its standard output.
func (t Talosctl) run(ctx context.Context, node string, args ...string) (string, error) {
	full := append([]string{"--talosconfig", t.Talosconfig, "--endpoints", node, "--nodes", node}, args...)
	cmd := exec.CommandContext(ctx, "talosctl", full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, io.MultiWriter(&stderr, t.Out)
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return stdout.String(), fmt.Errorf("talosctl %s on %s: %w: %s", strings.Join(args, " "), node, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String() + stderr.String(), nil
}

// talosctl etcd snapshot prints the snapshot's revision and size (cmd/talosctl/cmd/talos/etcd.go:
// 390-391 at v1.11.5, the same at v1.13.9): "snapshot info: hash %08x, revision %d, total keys
// %d, total size %d".
var snapshotInfo = regexp.MustCompile(`snapshot info: hash ([0-9a-f]+), revision (\d+), total keys (\d+), total size (\d+)`)

// Info is what a snapshot holds, as etcd's own status of it reports.
type Info struct {
	Hash            string
	Revision, Keys  int64
	Size, Encrypted int64
	Node, Name      string
}

// Snapshot takes a snapshot of the cluster's etcd through the first control plane that gives one,
// encrypts it to homelab:backup.recipients, stores it and deletes the oldest beyond
// homelab:backup.keep. It writes one line: the revision, the sizes and where it went.
func Snapshot(ctx context.Context, cfg *stackconfig.Config, talos Talosctl, store *Store, dir string, w io.Writer) error {
	recipients, err := recipientsOf(cfg.Backup)
	if err != nil {
		return err
	}
	db := filepath.Join(dir, "db.snapshot")
	var info Info
	var errs []error
	for _, n := range cfg.Cluster.ControlPlanes() {
		out, err := talos.run(ctx, n.Address, "etcd", "snapshot", db)
		if err == nil {
			if info, err = parseInfo(out); err == nil {
				info.Node = n.Name
				break
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		errs = append(errs, err)
	}
	if info.Node == "" {
		return fmt.Errorf("no control plane gave a snapshot (etcd needs its quorum for one; if it lost it, see etcd recover): %w", errors.Join(errs...))
	}
	enc := db + ".age"
	if err := encrypt(db, enc, recipients); err != nil {
		return err
	}
	_ = os.Remove(db) // the clear snapshot is not needed once encrypted
	info.Name = fmt.Sprintf("etcd-%s-r%d.db.age", time.Now().UTC().Format("20060102T150405Z"), info.Revision)
	if info.Encrypted, err = store.put(ctx, info.Name, enc); err != nil {
		return err
	}
	deleted, err := store.prune(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "etcd snapshot of %s from %s: revision %d, %d keys, %d bytes (%d encrypted) -> %s%s; %d older deleted, the newest %d kept\n",
		cfg.Cluster.Name, info.Node, info.Revision, info.Keys, info.Size, info.Encrypted, store.display, info.Name, len(deleted), store.keep)
	return nil
}

func parseInfo(out string) (Info, error) {
	m := snapshotInfo.FindStringSubmatch(out)
	if m == nil {
		return Info{}, fmt.Errorf("talosctl etcd snapshot did not report the snapshot's revision and size: %q", strings.TrimSpace(out))
	}
	rev, _ := strconv.ParseInt(m[2], 10, 64)
	keys, _ := strconv.ParseInt(m[3], 10, 64)
	size, _ := strconv.ParseInt(m[4], 10, 64)
	return Info{Hash: m[1], Revision: rev, Keys: keys, Size: size}, nil
}

func recipientsOf(b stackconfig.Backup) ([]age.Recipient, error) {
	if len(b.Recipients) == 0 {
		return nil, errors.New("homelab:backup.recipients is empty: a snapshot is only stored encrypted")
	}
	var out []age.Recipient
	for i, r := range b.Recipients {
		rec, err := age.ParseX25519Recipient(r)
		if err != nil {
			return nil, fmt.Errorf("homelab:backup.recipients[%d]: %w", i, err)
		}
		out = append(out, rec)
	}
	return out, nil
}

// encrypt writes src encrypted with age to dst (mode 0600).
func encrypt(src, dst string, recipients []age.Recipient) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	enc, err := age.Encrypt(out, recipients...)
	if err == nil {
		_, err = io.Copy(enc, in)
	}
	if err == nil {
		err = enc.Close()
	}
	return errors.Join(err, out.Close())
}

// decrypt writes src, encrypted with age, decrypted to dst (mode 0600) with the identities.
func decrypt(src, dst string, identities []age.Identity) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	r, err := age.Decrypt(in, identities...)
	if err != nil {
		return fmt.Errorf("decrypting %s: %w (is the identity one of homelab:backup.recipients?)", filepath.Base(src), err)
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, r)
	return errors.Join(err, out.Close())
}
