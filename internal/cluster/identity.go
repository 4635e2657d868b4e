package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/internal/lifecycle"
)

// identityFile is the cluster identity of an adopted cluster when the operator gives it: talosctl's
// secrets.yaml in the project directory (.gitignore lists it). The Talos provider imports it by
// this path, relative to the project directory, where the engine runs providers.
const identityFile = "secrets.yaml"

// identity is where this run's cluster identity comes from.
type identity struct {
	// Restore is true when the stack has no state and the cluster already runs (adopt: true):
	// the identity must be imported, never created.
	Restore bool
	// Given is true when the operator put secrets.yaml in the project directory.
	Given bool
	// New is true for a new cluster: no state, and the nodes wait in maintenance mode.
	New bool
	// Import is the import ID of the secrets bundle, "" when the state holds it (or, for a new
	// cluster, when the run creates it).
	Import string
	// written is the file this run wrote from the 1Password backup, removed once imported.
	written string
}

// planIdentity decides where the identity comes from: a stack that has deployed keeps the one in
// its state; a new cluster creates one; an adopted cluster with no state imports its own, from
// secrets.yaml when given, otherwise from the 1Password backup item (read with the vault).
func planIdentity(ctx *pulumi.Context, adopt bool, prev *lifecycle.Deployed) identity {
	id := identity{Restore: adopt && prev == nil, New: !adopt && prev == nil}
	if id.Restore {
		_, err := os.Stat(filepath.Join(projectDir(ctx), identityFile))
		id.Given = err == nil
	}
	return id
}

func projectDir(ctx *pulumi.Context) string {
	if d := ctx.RootDirectory(); d != "" {
		return d
	}
	return "."
}

// prepare makes the identity importable: from the vault's backup, it writes secrets.yaml (mode
// 0600) for the provider to read, and says so in the run's output, preview included.
func (id *identity) prepare(ctx *pulumi.Context, backup string) error {
	if !id.Restore {
		return nil
	}
	source := "secrets.yaml in the project directory"
	if !id.Given {
		path := filepath.Join(projectDir(ctx), identityFile)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("writing the cluster identity from the 1Password backup to %s: %w", path, err)
		}
		_, err = f.WriteString(backup)
		if err = errors.Join(err, f.Close()); err != nil {
			return fmt.Errorf("writing the cluster identity from the 1Password backup to %s: %w", path, err)
		}
		id.written, source = path, "the 1Password backup item"
	}
	id.Import = identityFile
	return ctx.Log.Warn(fmt.Sprintf("restore: this stack has no state and homelab:cluster.adopt is true, so this run rebuilds the state "+
		"from the running cluster; the cluster identity is imported from %s, never created; nodes get their managed config staged, "+
		"and only a node whose running config differs in a way Talos cannot apply live reboots, one at a time; the nodes' configs "+
		"show here as creates, so to see first what would change on which node, run cmd/drift with the backup item's secrets.yaml "+
		"and talosconfig (docs/operations.md, \"The Pulumi state is gone\")", source), nil)
}

// discard removes the file prepare wrote, when the run stops before its import.
func (id *identity) discard() {
	if id.written != "" {
		_ = os.Remove(id.written)
		id.written = ""
	}
}

// done removes the file prepare wrote, once the provider has imported it.
func (id *identity) done(imported pulumi.IDOutput) {
	if id.written == "" {
		return
	}
	path := id.written
	imported.ApplyT(func(pulumi.ID) error { return os.Remove(path) })
}
