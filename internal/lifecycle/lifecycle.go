// Package lifecycle compares what a stack deployed last with what its config asks for now, and
// decides before anything is registered which lifecycle steps a run takes: a Talos upgrade, a
// Kubernetes upgrade, a contract move, nodes to remove. It refuses what Talos or Kubernetes would
// refuse or what would break the cluster: a downgrade, a Talos newer than this program can carry
// out, a version outside Talos's support matrix (machinery's compatibility package, the matrix
// talosctl and the installer check), a jump of more than one minor version of Talos, Kubernetes
// or Cilium, a contract that moves back or with a Talos upgrade, removing the last control plane,
// the endpoint's node, or two control planes in one run.
package lifecycle

import (
	"errors"
	"fmt"
	"slices"
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
	// Contract is the machine-config contract the nodes' configs were generated with; "" in
	// records of older runs.
	Contract string `json:"contract,omitempty"`
	// Cilium is the Cilium chart version; "" in records of older runs.
	Cilium string `json:"cilium,omitempty"`
	// Endpoint is the cluster endpoint, and VIP the control planes' shared VIP ("" for none); both
	// "" in records of older runs.
	Endpoint string `json:"endpoint,omitempty"`
	VIP      string `json:"vip,omitempty"`
	// SecureBoot is the boot mode the nodes were installed with; nil in records of older runs.
	SecureBoot *bool `json:"secureBoot,omitempty"`
	// BackupVault is the vault the identity backup item is in ("" in records of older runs: the
	// main vault), and BackupDeletable whether the last run left the item deletable (the first
	// run of a move to another vault: PlanBackup).
	BackupVault     string `json:"backupVault,omitempty"`
	BackupDeletable bool   `json:"backupDeletable,omitempty"`
	// BackupVaultUUID is BackupVault's UUID, so a preview needs no access to that vault.
	BackupVaultUUID string `json:"backupVaultUUID,omitempty"`
	Nodes           []Node `json:"nodes"`
}

// Node is a deployed node.
type Node struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	Role    string `json:"role"`
}

// Record is what a run with cfg and plan p deploys.
func Record(cfg *stackconfig.Config, p Plan) Deployed {
	c := cfg.Cluster
	secureBoot := c.SecureBoot
	d := Deployed{Cluster: c.Name, TalosVersion: c.TalosVersion, KubernetesVersion: c.KubernetesVersion,
		Contract: c.VersionContract(), Cilium: cfg.Networking.Cilium.Version, Endpoint: c.Endpoint, SecureBoot: &secureBoot,
		BackupVault: p.Backup.Vault, BackupDeletable: p.Backup.Step == BackupArm, BackupVaultUUID: p.Backup.VaultUUID}
	if d.BackupVault == "" {
		d.BackupVault = cfg.OnePassword.BackupVault
	}
	if c.VIP != nil {
		d.VIP = c.VIP.Address
	}
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
	// ContractFrom and ContractTo are set when the machine-config contract moves.
	ContractFrom, ContractTo string
	// Removed are nodes the last run deployed that the config no longer lists.
	Removed []Node
	// Backup is what the run does with the identity backup item.
	Backup Backup
}

// BackupStep is what a run does with the identity backup item.
type BackupStep int

const (
	// BackupStay keeps the item where it is.
	BackupStay BackupStep = iota
	// BackupArm is the first run of a move to another vault: the item stays, and is registered
	// deletable (the engine deletes a resource by the options its last run registered it with,
	// and the item is otherwise kept on delete, so it outlives the stack).
	BackupArm
	// BackupMove is the second run: the item is deleted from its vault, then created in the new
	// one, so no second copy ever exists (the state keeps the identity meanwhile).
	BackupMove
)

// Backup is where a run keeps the identity backup item.
type Backup struct {
	Step BackupStep
	// Vault is the vault the item is in after the run, and From the vault it leaves (BackupMove)
	// or will leave (BackupArm).
	Vault, From string
	// VaultUUID is Vault's UUID as the last run recorded it ("" when it did not, or for another vault).
	VaultUUID string
}

// PlanBackup decides where the identity backup goes (homelab:onepassword.backupVault). A move
// between vaults takes two runs, BackupArm then BackupMove; a stack with no deployment writes the
// item where the stack file says.
func PlanBackup(prev *Deployed, o stackconfig.OnePassword) Backup {
	to := o.BackupVault
	if prev == nil {
		return Backup{Vault: to}
	}
	from := prev.BackupVault
	if from == "" {
		from = o.Vault // records of older runs: the item was written to the main vault
	}
	known := func(vault string) string {
		if prev.BackupVault == vault {
			return prev.BackupVaultUUID
		}
		return ""
	}
	switch {
	case from == to:
		return Backup{Vault: to, VaultUUID: known(to)}
	case !prev.BackupDeletable:
		return Backup{Step: BackupArm, Vault: from, From: from, VaultUUID: known(from)}
	default:
		return Backup{Step: BackupMove, Vault: to, From: from}
	}
}

// NewestTalos is the newest Talos release this program carries out: the version of its Talos
// machinery, whose support matrix (the compatibility package) vouches for Talos up to this minor
// release, and the newest the lab proves. A test keeps it equal to go.mod's machinery version.
const NewestTalos = "v1.13.9"

// Decide compares the last deployment (nil for a stack that never deployed) with the config and
// returns the plan, or every reason the change cannot be made, each naming the key and the fix.
func Decide(prev *Deployed, cfg *stackconfig.Config) (Plan, error) {
	var p Plan
	var errs []error
	c := cfg.Cluster
	if err := checkKnown(c.TalosVersion); err != nil {
		return p, err
	}
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
		p.Backup = PlanBackup(prev, cfg.OnePassword)
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
	if prev.Contract != "" && prev.Contract != c.VersionContract() {
		p.ContractFrom, p.ContractTo = prev.Contract, c.VersionContract()
		errs = append(errs, checkContractMove(prev, c))
	}
	if prev.Endpoint != "" && prev.Endpoint != c.Endpoint {
		errs = append(errs, checkEndpointMove(prev, c))
	}
	if prev.Cilium != "" && prev.Cilium != cfg.Networking.Cilium.Version {
		errs = append(errs, checkCilium(prev.Cilium, cfg.Networking.Cilium.Version))
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
	p.Backup = PlanBackup(prev, cfg.OnePassword)
	return p, errors.Join(errs...)
}

// checkKnown refuses a Talos release newer than NewestTalos's minor: this program's support matrix
// cannot vouch for it, and neither the lab nor the Talos provider has carried it out.
func checkKnown(v string) error {
	to, err := semver.ParseTolerant(v)
	if err != nil {
		return fmt.Errorf("homelab:cluster.talosVersion: %w", err)
	}
	newest := semver.MustParse(strings.TrimPrefix(NewestTalos, "v"))
	if to.Major > newest.Major || (to.Major == newest.Major && to.Minor > newest.Minor) {
		return fmt.Errorf("homelab:cluster.talosVersion: Talos %s is newer than this program can carry out: its support matrix and "+
			"its lab know Talos up to %d.%d, and the newest release it carries out is %s; set talosVersion to %s or lower "+
			"(docs/upgrading.md says what Talos %d.%d changes and what the program needs for it)",
			v, newest.Major, newest.Minor, NewestTalos, NewestTalos, to.Major, to.Minor)
	}
	return nil
}

func talosVersion(v string) (*compatibility.TalosVersion, error) {
	return compatibility.ParseTalosVersion(&machine.VersionInfo{Tag: v})
}

// checkTalos refuses a downgrade, a jump of more than one minor release, and anything the
// installer would refuse (TalosVersion.UpgradeableFrom: cmd/installer/pkg/install/preflight.go:89-110
// in Talos v1.11.5). The installer would take some two-minor jumps (Talos 1.13 accepts hosts from
// 1.11.0: pkg/machinery/compatibility/talos113/talos113.go:16 at v1.13.9), but each minor release
// changes what a node accepts and how it is upgraded, and the program proves one minor at a time.
func checkTalos(from, to string, target *compatibility.TalosVersion) error {
	f, t := semver.MustParse(strings.TrimPrefix(from, "v")), semver.MustParse(strings.TrimPrefix(to, "v"))
	if t.LT(f) {
		return fmt.Errorf("homelab:cluster.talosVersion: the nodes run Talos %s and %s is older; downgrades are refused: set it back to %s "+
			"(a broken release is fixed by the next patch release, not by going back)", from, to, from)
	}
	if t.Major != f.Major || t.Minor > f.Minor+1 {
		return fmt.Errorf("homelab:cluster.talosVersion: %s to %s skips a minor release; Talos is upgraded one minor release at a "+
			"time, then Kubernetes (docs/upgrading.md): set v%d.%d.x first, run pulumi up, then go on", from, to, f.Major, f.Minor+1)
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
	old, now := (stackconfig.Cluster{TalosVersion: from}).VersionContract(), c.VersionContract()
	if c.Contract != "" || old == now {
		return nil
	}
	return fmt.Errorf("homelab:cluster.contract: talosVersion moves from %s to %s and no contract is set, so the machine-config contract "+
		"would follow from %s to %s and change the defaults Talos generates on every node: set contract: %s to keep it, and move it "+
		"later, deliberately, as its own previewed change", from, c.TalosVersion, old, now, old)
}

// checkContractMove allows the contract to move forward only, in a run of its own: the new
// contract's defaults change every node's config (Talos applies some of them only at a boot, so
// each node reboots), and the nodes must already run a Talos that accepts its documents.
func checkContractMove(prev *Deployed, c stackconfig.Cluster) error {
	to := c.VersionContract()
	switch {
	case stackconfig.ContractOlder(to, prev.Contract):
		return fmt.Errorf("homelab:cluster.contract: the nodes' configs follow contract %s and %s is older; a contract never moves back "+
			"(the nodes would lose the defaults they run with): set it back to %s", prev.Contract, to, prev.Contract)
	case prev.TalosVersion != c.TalosVersion:
		return fmt.Errorf("homelab:cluster.contract: the contract moves from %s to %s in the same run as talosVersion (%s to %s); move "+
			"one at a time, each its own previewed change: upgrade Talos with contract: %s, then move the contract", prev.Contract, to,
			prev.TalosVersion, c.TalosVersion, prev.Contract)
	}
	return nil
}

// checkEndpointMove allows the endpoint onto the VIP only once the VIP runs: the run that adds it
// brings it up on a control plane and into the certificates, and every client that follows the
// endpoint (the gates' kubeconfig, the Kubernetes provider) uses it from the start of the next.
func checkEndpointMove(prev *Deployed, c stackconfig.Cluster) error {
	if c.VIP == nil || !strings.Contains(c.Endpoint, "://"+c.VIP.Address+":") || prev.VIP == c.VIP.Address {
		return nil
	}
	return fmt.Errorf("homelab:cluster.endpoint: moves to the VIP %s in the run that adds the VIP; add the VIP first (keep endpoint: %s, "+
		"run pulumi up: the control planes bring it up and take it into their certificates), then move the endpoint in the next run",
		c.VIP.Address, prev.Endpoint)
}

// checkCilium allows Cilium to move one minor release at a time: "Always perform rollbacks and
// upgrades between one minor release at a time" (cilium Documentation/operations/upgrade-warning.rst,
// included by the upgrade guide at v1.18.3).
func checkCilium(from, to string) error {
	f, errF := semver.Parse(from)
	t, errT := semver.Parse(to)
	if errF != nil || errT != nil {
		return nil // the stack-file checks name a malformed version
	}
	if t.Major != f.Major || t.Minor > f.Minor+1 || t.Minor+1 < f.Minor {
		next := fmt.Sprintf("%d.%d.x", f.Major, f.Minor+1)
		if t.Minor < f.Minor {
			next = fmt.Sprintf("%d.%d.x", f.Major, f.Minor-1)
		}
		return fmt.Errorf("homelab:networking.cilium.version: %s to %s skips a minor release; Cilium is upgraded (and rolled back) one "+
			"minor release at a time: set %s first, run pulumi up, then go on", from, to, next)
	}
	return nil
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

// Tools are the client tools a run of the program needs on PATH.
type Tools struct {
	// Talosctl is the talosctl release (vX.Y) the stack's Talos version needs: the release of the
	// nodes ("Your talosctl version should match the version of Talos Linux": talosctl.md in the
	// Talos docs). In a Talos upgrade that is the target's: it drives the nodes of the previous
	// release through their older API (cmd/talosctl/cmd/talos/upgrade.go:86-131 at v1.13.9), while
	// an older talosctl refuses newer nodes (pkg/machinery/compatibility/kubernetes_version.go:76-77).
	Talosctl string
	// Kubectl are the kubectl minor releases (vX.Y) the run may use: within one minor release of
	// every Kubernetes version it talks to, the last deployment's and the stack's ("kubectl is
	// supported within one minor version (older or newer) of kube-apiserver": Kubernetes's version
	// skew policy).
	Kubectl []string
}

// NeedTools says which talosctl and kubectl a run with cluster c needs, prev being the last
// deployment (nil for a new stack).
func NeedTools(prev *Deployed, c stackconfig.Cluster) Tools {
	t := Tools{Talosctl: c.TalosMinor()}
	versions := []string{c.KubernetesVersion}
	if prev != nil && prev.KubernetesVersion != "" {
		versions = append(versions, prev.KubernetesVersion)
	}
	lo, hi := -1, 1<<30
	var major uint64
	for _, v := range versions {
		sv, err := semver.ParseTolerant(v)
		if err != nil {
			continue
		}
		major = sv.Major
		lo, hi = max(lo, int(sv.Minor)-1), min(hi, int(sv.Minor)+1)
	}
	for m := max(lo, 0); m <= hi && hi < 1<<30; m++ {
		t.Kubectl = append(t.Kubectl, fmt.Sprintf("v%d.%d", major, m))
	}
	return t
}

// Check says what is wrong with the talosctl and kubectl versions found (vX.Y.Z, "" when the tool
// is missing), naming the version to install.
func (t Tools) Check(talosctl, kubectl string) error {
	var errs []error
	if talosctl == "" {
		errs = append(errs, fmt.Errorf("talosctl is not on PATH: install talosctl %s.x on the machine that runs pulumi up (mise run up installs the release .mise.toml pins)", t.Talosctl))
	} else if majorMinor(talosctl) != t.Talosctl {
		errs = append(errs, fmt.Errorf("talosctl %s is on PATH, and the stack's Talos version needs talosctl %s.x (a talosctl of the nodes' "+
			"release; docs/upgrading.md): install it (mise run up installs the release .mise.toml pins); nothing was changed", talosctl, t.Talosctl))
	}
	if kubectl == "" {
		errs = append(errs, fmt.Errorf("kubectl is not on PATH: install kubectl %s.x on the machine that runs pulumi up (mise run up installs the release .mise.toml pins)", t.Kubectl[len(t.Kubectl)-1]))
	} else if !slices.Contains(t.Kubectl, majorMinor(kubectl)) {
		errs = append(errs, fmt.Errorf("kubectl %s is on PATH, and this run talks to Kubernetes through kubectl %s (within one minor "+
			"release of the cluster's Kubernetes, before and after this run): install one of them (mise run up installs the release .mise.toml pins); nothing was changed",
			kubectl, strings.Join(t.Kubectl, ".x or ")+".x"))
	}
	return errors.Join(errs...)
}
