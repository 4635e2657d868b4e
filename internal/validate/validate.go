// Package validate is the one check of a stack that every entry point runs before it acts: the
// Pulumi program before it registers anything, cmd/render before it writes a config, cmd/drift
// before it reads a node. It covers what needs neither the vault nor the nodes: the stack file's
// own rules (stackconfig: addresses, versions, the contract, the endpoint), the data under src/
// (talosplan: patches, the schematic, the scripts; manifests: the vendored Gateway API release,
// the values), and the lifecycle rules against the last deployment (lifecycle: the support matrix,
// the order of upgrades, removals). So an entry point never accepts what another refuses.
package validate

import (
	"errors"
	"io/fs"

	"homelab/internal/lifecycle"
	"homelab/internal/manifests"
	"homelab/internal/stackconfig"
	"homelab/internal/talosplan"
)

// Result is what a valid stack loads to.
type Result struct {
	Talos      *talosplan.Data
	Networking *manifests.Networking
	// Plan is the run's lifecycle steps against the last deployment.
	Plan lifecycle.Plan
	// Notes say which checks did not run, and why; the caller prints them.
	Notes []string
}

// NoDeployment is the note of a caller that has no last deployment to compare with.
const NoDeployment = "the checks that compare with the last deployment (upgrade order, downgrades, " +
	"removals, the contract's moves) did not run: they need the stack's state, which pulumi preview reads"

// Stack checks cfg (loaded by stackconfig) and data (src/) together, and against prev, the last
// deployment (nil for a stack that never deployed; known says whether the caller could read it).
// It reports every problem at once.
func Stack(cfg *stackconfig.Config, data fs.FS, prev *lifecycle.Deployed, known bool) (*Result, error) {
	r := &Result{}
	var errs []error
	var err error
	if r.Talos, err = talosplan.Load(data); err == nil {
		errs = append(errs, r.Talos.CheckKernelArgs(cfg.Cluster))
	} else {
		errs = append(errs, err)
	}
	if r.Networking, err = manifests.Load(data, cfg.Networking); err != nil {
		errs = append(errs, err)
	}
	if r.Plan, err = lifecycle.Decide(prev, cfg); err != nil {
		errs = append(errs, err)
	}
	if !known {
		r.Notes = append(r.Notes, NoDeployment)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}
