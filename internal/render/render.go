// Package render renders and validates each node's final machine config offline with Talos
// machinery, the way the Talos provider does it for the program: a base config generated with the
// provider's options, then the node's patch list from talosplan.NodePatches. It backs cmd/render
// and the rendered-config tests; the Pulumi program never imports it (machinery is a heavy build).
package render

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/configpatcher"
	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/config/generate"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
	"github.com/siderolabs/talos/pkg/machinery/config/validation"
	"github.com/siderolabs/talos/pkg/machinery/constants"

	"homelab/internal/stackconfig"
	"homelab/internal/talosplan"
)

// Node is one node's rendered config.
type Node struct {
	Node stackconfig.Node
	// Config is the final machine config, as the node receives it.
	Config []byte
	// Warnings are what Talos validation reports without failing.
	Warnings []string
}

// metalMode is the runtime mode `talosctl validate --mode metal` checks against: an installed,
// non-container node.
type metalMode struct{}

func (metalMode) String() string        { return "metal" }
func (metalMode) RequiresInstall() bool { return true }
func (metalMode) InContainer() bool     { return false }

// ThrowawaySecrets generates a secrets bundle for the cluster's contract, for renders that only
// check configs. Its keys sign nothing real.
func ThrowawaySecrets(c stackconfig.Cluster) (*secrets.Bundle, error) {
	contract, err := config.ParseContractFromVersion(c.VersionContract())
	if err != nil {
		return nil, fmt.Errorf("contract %s: %w", c.VersionContract(), err)
	}
	return secrets.NewBundle(secrets.NewFixedClock(time.Now()), contract)
}

// Render renders and validates every node's config in the given phase. It returns every problem
// found, each naming the node and, where one is at fault, the patch file.
func Render(c stackconfig.Cluster, talos *talosplan.Data, bundle *secrets.Bundle, phase talosplan.Phase) ([]Node, error) {
	contract, err := config.ParseContractFromVersion(c.VersionContract())
	if err != nil {
		return nil, fmt.Errorf("contract %s: %w", c.VersionContract(), err)
	}
	// The Talos provider's own generation options (terraform-provider-talos machine configuration
	// data source); install disk and image are then set by each node's patch.
	input, err := generate.NewInput(c.Name, c.Endpoint, strings.TrimPrefix(c.KubernetesVersion, "v"),
		generate.WithVersionContract(contract),
		generate.WithSecretsBundle(bundle),
		generate.WithClusterDiscovery(true),
		generate.WithDNSDomain(constants.DefaultDNSDomain),
		generate.WithInstallDisk("/dev/sda"),
		// The provider also passes WithPersist(true): machinery v1.13 dropped the option and
		// always persists (generate/init.go:22 at v1.13.9).
	)
	if err != nil {
		return nil, fmt.Errorf("generating the config input: %w", err)
	}
	base := map[string][]byte{}
	for role, typ := range map[string]machine.Type{
		stackconfig.RoleControlPlane: machine.TypeControlPlane,
		stackconfig.RoleWorker:       machine.TypeWorker,
	} {
		cfg, err := input.Config(typ)
		if err != nil {
			return nil, fmt.Errorf("generating the %s base config: %w", role, err)
		}
		if base[role], err = cfg.EncodeBytes(encoder.WithComments(encoder.CommentsDisabled)); err != nil {
			return nil, fmt.Errorf("encoding the %s base config: %w", role, err)
		}
	}

	var out []Node
	var errs []error
	for _, n := range c.Nodes {
		r, err := renderNode(base[n.Role], talos.NodePatches(c, n, phase))
		if err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", n.Name, err))
			continue
		}
		r.Node = n
		out = append(out, r)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func renderNode(base []byte, patches []talosplan.Patch) (Node, error) {
	// Patch and validate one patch at a time, so an error names the file that causes it.
	current := base
	var warnings []string
	for _, p := range patches {
		lp, err := configpatcher.LoadPatch([]byte(p.Content))
		if err != nil {
			return Node{}, fmt.Errorf("%s: %w", source(p), err)
		}
		patched, err := configpatcher.Apply(configpatcher.WithBytes(current), []configpatcher.Patch{lp})
		if err != nil {
			return Node{}, fmt.Errorf("%s: %w", source(p), err)
		}
		if current, err = patched.Bytes(); err != nil {
			return Node{}, fmt.Errorf("%s: encoding the patched config: %w", source(p), err)
		}
		if warnings, err = validate(current); err != nil {
			return Node{}, fmt.Errorf("%s: the patched config is invalid in metal mode: %w", source(p), err)
		}
	}
	return Node{Config: current, Warnings: warnings}, nil
}

// validate loads a config with the loader talosctl uses and checks it as
// `talosctl validate --mode metal --strict` does.
func validate(b []byte) ([]string, error) {
	cfg, err := configloader.NewFromBytes(b)
	if err != nil {
		return nil, err
	}
	return cfg.Validate(metalMode{}, validation.WithLocal(), validation.WithStrict())
}

func source(p talosplan.Patch) string {
	if strings.HasPrefix(p.Source, "node/") {
		return "the generated node patch"
	}
	return "src/" + p.Source
}
