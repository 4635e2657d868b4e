// Package lifecycle compares what a stack deployed last with what its config asks for now, and
// decides before anything is registered which lifecycle steps a run takes: a Talos upgrade, a
// Kubernetes upgrade, nodes to remove. It refuses what Talos or Kubernetes would refuse or what
// would break the cluster: a downgrade, a version outside Talos's support matrix (machinery's
// compatibility package, the matrix talosctl and the installer check), a Kubernetes jump of more
// than one minor version, removing the last control plane, the endpoint's node, or two control
// planes in one run.
package lifecycle

import (
	"errors"
	"fmt"
	"strings"

	"github.com/blang/semver/v4"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/compatibility"

	"homelab/internal/stackconfig"
)

// Deployed is a stack's record of what it deployed, exported by every run as the stack output
// "deployed" and read back by the next one.
type Deployed struct {
	Cluster           string `json:"cluster"`
	TalosVersion      string `json:"talosVersion"`
	KubernetesVersion string `json:"kubernetesVersion"`
	// SecureBoot is the boot mode the nodes were installed with; nil in records of older runs.
	SecureBoot *bool  `json:"secureBoot,omitempty"`
	Nodes      []Node `json:"nodes"`
}

// Node is a deployed node.
type Node struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Role    string `json:"role"`
}

// Record is what a run with cluster c deploys.
func Record(c stackconfig.Cluster) Deployed {
	secureBoot := c.SecureBoot
	d := Deployed{Cluster: c.Name, TalosVersion: c.TalosVersion, KubernetesVersion: c.KubernetesVersion, SecureBoot: &secureBoot}
	for _, n := range c.Nodes {
		d.Nodes = append(d.Nodes, Node{Name: n.Name, Address: n.Address, Role: n.Role})
	}
	return d
}

// Plan is what a run does to the cluster's lifecycle.
type Plan struct {
	// TalosFrom and TalosTo are set when the nodes move to another Talos version.
	TalosFrom, TalosTo string
	// KubernetesFrom and KubernetesTo are set when Kubernetes moves to another version.
	KubernetesFrom, KubernetesTo string
	// Removed are nodes the last run deployed that the config no longer lists.
	Removed []Node
}

// Decide compares the last deployment (nil for a stack that never deployed) with the config and
// returns the plan, or every reason the change cannot be made, each naming the key and the fix.
func Decide(prev *Deployed, c stackconfig.Cluster) (Plan, error) {
	var p Plan
	var errs []error
	talosTo, err := talosVersion(c.TalosVersion)
	if err != nil {
		return p, fmt.Errorf("homelab:cluster.talosVersion: %w", err)
	}
	kubeTo, err := compatibility.ParseKubernetesVersion(strings.TrimPrefix(c.KubernetesVersion, "v"))
	if err != nil {
		return p, fmt.Errorf("homelab:cluster.kubernetesVersion: %w", err)
	}
	if err := kubeTo.SupportedWith(talosTo); err != nil {
		errs = append(errs, fmt.Errorf("homelab:cluster.kubernetesVersion: %w (Talos %s supports the versions in its support matrix; "+
			"pick one it supports, or move talosVersion first)", err, c.TalosVersion))
	}
	if prev == nil || prev.TalosVersion == "" {
		return p, errors.Join(errs...)
	}
	if prev.TalosVersion != c.TalosVersion {
		p.TalosFrom, p.TalosTo = prev.TalosVersion, c.TalosVersion
		errs = append(errs, checkTalos(prev.TalosVersion, c.TalosVersion, talosTo), checkContract(prev.TalosVersion, c))
	}
	if prev.KubernetesVersion != c.KubernetesVersion {
		p.KubernetesFrom, p.KubernetesTo = prev.KubernetesVersion, c.KubernetesVersion
		errs = append(errs, checkKubernetes(prev, c.KubernetesVersion))
	}
	if prev.SecureBoot != nil && *prev.SecureBoot != c.SecureBoot {
		// The installer image kind changes with it, but an upgrade keeps the node's boot loader: a
		// node installed with GRUB does not come up under systemd-boot with enrolled keys, or back.
		errs = append(errs, fmt.Errorf("homelab:cluster.secureBoot: the nodes were installed with secureBoot %t and the stack says %t; "+
			"switching the boot mode of a running node is not an upgrade but a new install from the other boot media (and, to turn "+
			"secure boot on, the firmware's keys enrolled), which this program does not do to a running cluster: set it back to %t", *prev.SecureBoot, c.SecureBoot, *prev.SecureBoot))
	}
	p.Removed, err = removed(prev, c)
	errs = append(errs, err)
	return p, errors.Join(errs...)
}

func talosVersion(v string) (*compatibility.TalosVersion, error) {
	return compatibility.ParseTalosVersion(&machine.VersionInfo{Tag: v})
}

// checkTalos refuses a downgrade and anything the installer would refuse
// (TalosVersion.UpgradeableFrom: cmd/installer/pkg/install/preflight.go:89-110 in Talos v1.11.5).
func checkTalos(from, to string, target *compatibility.TalosVersion) error {
	if semver.MustParse(strings.TrimPrefix(to, "v")).LT(semver.MustParse(strings.TrimPrefix(from, "v"))) {
		return fmt.Errorf("homelab:cluster.talosVersion: the nodes run Talos %s and %s is older; downgrades are refused: set it back to %s "+
			"(a broken release is fixed by the next patch release, not by going back)", from, to, from)
	}
	host, err := talosVersion(from)
	if err != nil {
		return fmt.Errorf("the last deployment's Talos version %q: %w", from, err)
	}
	if err := target.UpgradeableFrom(host); err != nil {
		return fmt.Errorf("homelab:cluster.talosVersion: Talos %s cannot be upgraded to %s directly: %w; upgrade through the versions in between, one run each", from, to, err)
	}
	return nil
}

// checkContract refuses a Talos minor upgrade that would move the config contract unasked: with no
// homelab:cluster.contract the contract is talosVersion's major.minor, and a new contract changes
// the defaults Talos generates on every running node. The contract stays where it was unless the
// stack file says otherwise.
func checkContract(from string, c stackconfig.Cluster) error {
	old, now := majorMinor(from), majorMinor(c.TalosVersion)
	if c.Contract != "" || old == now {
		return nil
	}
	return fmt.Errorf("homelab:cluster.contract: talosVersion moves from %s to %s and no contract is set, so the machine-config contract "+
		"would follow from %s to %s and change the defaults Talos generates on every node: set contract: %s to keep it (and move it "+
		"later, deliberately, as its own previewed change), or contract: %s to move it with the upgrade", from, c.TalosVersion, old, now, old, now)
}

func majorMinor(v string) string {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return v
	}
	return "v" + parts[0] + "." + parts[1]
}

// checkKubernetes allows one minor version up at a time, as talosctl upgrade-k8s does
// (siderolabs/go-kubernetes v0.2.26 kubernetes/upgrade/path.go:58-96), and only to a version the
// Talos the nodes run now supports: the Kubernetes upgrade runs before any Talos upgrade.
func checkKubernetes(prev *Deployed, to string) error {
	from, err := semver.ParseTolerant(prev.KubernetesVersion)
	if err != nil {
		return fmt.Errorf("the last deployment's Kubernetes version %q: %w", prev.KubernetesVersion, err)
	}
	target := semver.MustParse(strings.TrimPrefix(to, "v"))
	switch {
	case target.Major != from.Major || target.Minor < from.Minor || (target.Minor == from.Minor && target.LT(from)):
		return fmt.Errorf("homelab:cluster.kubernetesVersion: the cluster runs Kubernetes %s and %s is older; Kubernetes cannot be downgraded: set it back to %s",
			prev.KubernetesVersion, to, prev.KubernetesVersion)
	case target.Minor > from.Minor+1:
		return fmt.Errorf("homelab:cluster.kubernetesVersion: %s to %s skips a minor version; Kubernetes upgrades one minor version at a time: set v%d.%d.x first, run pulumi up, then %s",
			prev.KubernetesVersion, to, from.Major, from.Minor+1, to)
	}
	now, err := talosVersion(prev.TalosVersion)
	if err != nil {
		return fmt.Errorf("the last deployment's Talos version %q: %w", prev.TalosVersion, err)
	}
	kube, _ := compatibility.ParseKubernetesVersion(target.String())
	if err := kube.SupportedWith(now); err != nil {
		return fmt.Errorf("homelab:cluster.kubernetesVersion: %w; the nodes run Talos %s while Kubernetes is upgraded: upgrade Talos in one run, then Kubernetes in the next",
			err, prev.TalosVersion)
	}
	return nil
}

// removed lists the deployed nodes the config no longer has, and refuses a removal that would
// break the cluster.
func removed(prev *Deployed, c stackconfig.Cluster) ([]Node, error) {
	keep := map[string]bool{}
	for _, n := range c.Nodes {
		keep[n.Name] = true
	}
	var out []Node
	controlPlanes := 0
	for _, n := range prev.Nodes {
		if keep[n.Name] {
			continue
		}
		out = append(out, n)
		if n.Role == stackconfig.RoleControlPlane {
			controlPlanes++
		}
	}
	var errs []error
	if controlPlanes > 1 {
		errs = append(errs, fmt.Errorf("homelab:cluster.nodes: %d control planes removed in one run; etcd loses a member each time and must recover in between: remove one, run pulumi up, then the next", controlPlanes))
	}
	if controlPlanes > 0 && len(c.ControlPlanes()) == 0 {
		errs = append(errs, errors.New("homelab:cluster.nodes: the last control plane cannot be removed: the cluster would have no etcd and no API server"))
	}
	host := strings.TrimPrefix(c.Endpoint, "https://")
	if i := strings.LastIndex(host, ":"); i >= 0 {
		host = strings.Trim(host[:i], "[]")
	}
	for _, n := range out {
		if n.Address == host {
			errs = append(errs, fmt.Errorf("homelab:cluster.nodes: %s is removed but homelab:cluster.endpoint %s points at it: move the endpoint to another control plane first (one run), then remove the node", n.Name, c.Endpoint))
		}
	}
	return out, errors.Join(errs...)
}
