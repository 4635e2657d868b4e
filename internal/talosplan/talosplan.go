// Package talosplan turns the Talos data under src/talos and a validated stack config into what each
// node gets: its ordered patch list, its installer image and the settings whose change needs a reboot.
// The Pulumi program and cmd/render both call NodePatches, so a rendered config is the config the
// program applies. The package needs no Pulumi and no Talos machinery, to keep the program's build lean.
package talosplan

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/siderolabs/image-factory/pkg/schematic"
	"gopkg.in/yaml.v3"

	"homelab/internal/stackconfig"
	"homelab/src"
)

// Paths inside src/.
const (
	PatchDir      = "talos/patches"
	HandoverPatch = "talos/patches/cilium.yaml"
	SchematicFile = "talos/schematic.yaml"
	RebootFile    = "talos/reboot.yaml"
)

// The scripts the program's commands run, under src/talos.
const (
	GateScript              = "talos/gate.sh"
	UpgradeKubernetesScript = "talos/upgrade-k8s.sh"
	RemoveScript            = "talos/remove.sh"
	ResetScript             = "talos/reset.sh"
)

// FactoryHost serves installer images; it is the Talos provider's default imageFactoryUrl.
const FactoryHost = "factory.talos.dev"

// Patch is one machine-config patch and where it comes from.
type Patch struct {
	// Source is the patch's file under src/ (talos/patches/kubelet.yaml), or node/<name> for the
	// patch the program generates per node.
	Source string
	// Content is the patch's YAML text.
	Content string
}

// Phase selects which config a node gets.
type Phase int

const (
	// Final is the config a node runs for good: every patch, including the CNI handover patch.
	Final Phase = iota
	// BringUp is the config of a new cluster's first nodes: Talos's default CNI (Flannel) and
	// kube-proxy, so the cluster can bootstrap before Cilium exists. It lacks the handover patch.
	BringUp
)

// Data is the Talos data under src/, loaded and checked once.
type Data struct {
	// Common patches apply to every node, ControlPlane and Worker only to nodes of that role.
	Common, ControlPlane, Worker []Patch
	// Handover is the CNI handover patch (cilium.yaml), or nil when src/ has none.
	Handover *Patch
	// Settings is what a change of each machine-config setting costs a node (src/talos/reboot.yaml).
	Settings Settings
	// Schematic is the Image Factory schematic (YAML) and SchematicID its content-addressed ID.
	Schematic, SchematicID string
	// Scripts are the shell scripts of the commands that act on nodes.
	Scripts Scripts
}

// Scripts are the shell scripts under src/talos, each as the program runs it: after the shared
// preamble (src/lib/preamble.sh).
type Scripts struct {
	// Gate upgrades or reboots one node when its change needs it, then waits for its health.
	Gate string
	// UpgradeKubernetes runs talosctl upgrade-k8s when Kubernetes runs another version.
	UpgradeKubernetes string
	// Remove takes a node out of the cluster: drain, leave etcd, delete the Node.
	Remove string
	// Reset resets a node back to maintenance mode.
	Reset string
}

// Load reads src/talos from fsys. Every error names the file at fault.
func Load(fsys fs.FS) (*Data, error) {
	d := &Data{}
	var errs []error
	var err error
	if d.Common, err = loadDir(fsys, PatchDir, HandoverPatch); err != nil {
		errs = append(errs, err)
	}
	if d.ControlPlane, err = loadDir(fsys, path.Join(PatchDir, stackconfig.RoleControlPlane), ""); err != nil {
		errs = append(errs, err)
	}
	if d.Worker, err = loadDir(fsys, path.Join(PatchDir, stackconfig.RoleWorker), ""); err != nil {
		errs = append(errs, err)
	}
	if p, err := loadPatch(fsys, HandoverPatch); err == nil {
		d.Handover = &p
	} else if !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	if d.Settings, err = loadSettings(fsys); err != nil {
		errs = append(errs, err)
	}
	if d.Schematic, d.SchematicID, err = loadSchematic(fsys); err != nil {
		errs = append(errs, err)
	}
	for path, dst := range map[string]*string{
		GateScript: &d.Scripts.Gate, UpgradeKubernetesScript: &d.Scripts.UpgradeKubernetes,
		RemoveScript: &d.Scripts.Remove, ResetScript: &d.Scripts.Reset,
	} {
		if *dst, err = src.Script(fsys, path); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return d, nil
}

func loadDir(fsys fs.FS, dir, skip string) ([]Patch, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("src/%s: %w", dir, err)
	}
	var out []Patch
	var errs []error
	for _, e := range entries { // ReadDir sorts by file name
		name := path.Join(dir, e.Name())
		if e.IsDir() || path.Ext(name) != ".yaml" || name == skip {
			continue
		}
		p, err := loadPatch(fsys, name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

func loadPatch(fsys fs.FS, name string) (Patch, error) {
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		return Patch{}, fmt.Errorf("src/%s: %w", name, err)
	}
	docs, err := documents(b)
	if err != nil {
		return Patch{}, fmt.Errorf("src/%s: not valid YAML: %w", name, err)
	}
	for _, doc := range docs {
		switch doc.(type) {
		case map[string]any:
		case []any:
			if len(docs) == 1 {
				continue
			}
			return Patch{}, fmt.Errorf("src/%s: a JSON patch (a list) must be the file's only document", name)
		default:
			return Patch{}, fmt.Errorf("src/%s: a patch must be strategic-merge documents (mappings) or a JSON patch (a list)", name)
		}
	}
	return Patch{Source: name, Content: string(b)}, nil
}

// documents decodes every YAML document of b.
func documents(b []byte) ([]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out []any
	for {
		var doc any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, doc)
	}
}

// Settings sorts machine-config settings (dotted paths, a path covering everything under it) by
// what a change costs a node.
type Settings struct {
	// Live are the parts Talos applies without a reboot; any other setting needs one.
	Live []string `yaml:"live"`
	// Reboot are live settings that are rolled out with a reboot anyway (the CNI handover).
	Reboot []string `yaml:"reboot"`
	// Upgrade are settings that take effect only through an install or an upgrade.
	Upgrade []string `yaml:"upgrade"`
}

func loadSettings(fsys fs.FS) (Settings, error) {
	var s Settings
	b, err := fs.ReadFile(fsys, RebootFile)
	if err != nil {
		return s, fmt.Errorf("src/%s: %w", RebootFile, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("src/%s: %w", RebootFile, err)
	}
	for _, list := range [][]string{s.Live, s.Reboot, s.Upgrade} {
		for _, p := range list {
			if p == "" || strings.HasPrefix(p, ".") || strings.HasSuffix(p, ".") {
				return s, fmt.Errorf("src/%s: %q is not a dotted config path such as machine.install.image", RebootFile, p)
			}
		}
	}
	if len(s.Live) == 0 {
		return s, fmt.Errorf("src/%s: lists no live settings; every change would reboot every node", RebootFile)
	}
	return s, nil
}

// under reports whether path is one of paths or lies under one.
func under(path string, paths []string) bool {
	for _, p := range paths {
		if path == p || strings.HasPrefix(path, p+".") {
			return true
		}
	}
	return false
}

// Costs says what a change of the setting at path costs: "upgrade", "reboot" or "live".
func (s Settings) Costs(path string) string {
	switch {
	case under(path, s.Upgrade):
		return "upgrade"
	case under(path, s.Reboot), !under(path, s.Live):
		return "reboot"
	}
	return "live"
}

func loadSchematic(fsys fs.FS) (string, string, error) {
	b, err := fs.ReadFile(fsys, SchematicFile)
	if err != nil {
		return "", "", fmt.Errorf("src/%s: %w", SchematicFile, err)
	}
	s, err := schematic.Unmarshal(b)
	if err != nil {
		return "", "", fmt.Errorf("src/%s: %w", SchematicFile, err)
	}
	id, err := s.ID()
	if err != nil {
		return "", "", fmt.Errorf("src/%s: %w", SchematicFile, err)
	}
	return string(b), id, nil
}

// InstallerImage is the Image Factory installer image for the cluster's Talos version: the
// secure-boot installer when the cluster uses secure boot.
func (d *Data) InstallerImage(c stackconfig.Cluster) string {
	kind := "metal-installer"
	if c.SecureBoot {
		kind += "-secureboot"
	}
	return fmt.Sprintf("%s/%s/%s:%s", FactoryHost, kind, d.SchematicID, c.TalosVersion)
}

// NodePatches is the ordered patch list of one node: common patches, its role's patches, the
// handover patch (Final phase only), then the generated node patch (hostname, install disk,
// installer image). The program passes exactly this list to Talos; cmd/render applies it.
func (d *Data) NodePatches(c stackconfig.Cluster, n stackconfig.Node, phase Phase) []Patch {
	out := append([]Patch(nil), d.Common...)
	if n.Role == stackconfig.RoleControlPlane {
		out = append(out, d.ControlPlane...)
	} else {
		out = append(out, d.Worker...)
	}
	if phase == Final && d.Handover != nil {
		out = append(out, *d.Handover)
	}
	return append(out, nodePatch(c, n, d.InstallerImage(c)))
}

// nodePatch sets the node's install disk and installer image, and its hostname: in
// .machine.network.hostname up to contract v1.11; from v1.12, where Talos generates a
// HostnameConfig document (auto: stable) and refuses a hostname in both places ("static hostname
// is already set in v1alpha1 config": pkg/machinery/config/types/network/hostname.go:151-161 at
// v1.12.6), in that document, with auto off, as Talos's own static-hostname patch does
// (generate/stdpatches/stdpatches.go:24-40 at v1.12.6). On a control plane of a cluster with a VIP
// it adds the VIP on the selected link (machine.network.interfaces[].vip, which Talos 1.12 and
// 1.13 still take next to their Layer2VIPConfig document) and to the certificates of the Talos API
// (machine.certSANs) and of the API server (cluster.apiServer.certSANs), so clients may use the
// VIP before the endpoint names it.
func nodePatch(c stackconfig.Cluster, n stackconfig.Node, image string) Patch {
	multidoc := c.MultidocConfig()
	machine := map[string]any{"install": map[string]any{"disk": n.InstallDisk, "image": image}}
	network := map[string]any{}
	if !multidoc {
		network["hostname"] = n.Name
	}
	doc := map[string]any{"machine": machine}
	if v := c.VIP; v != nil && n.Role == stackconfig.RoleControlPlane {
		network["interfaces"] = []any{map[string]any{"deviceSelector": v.Interface.Map(), "dhcp": v.DHCPOn(), "vip": map[string]any{"ip": v.Address}}}
		machine["certSANs"] = []any{v.Address}
		doc["cluster"] = map[string]any{"apiServer": map[string]any{"certSANs": []any{v.Address}}}
	}
	if len(network) > 0 {
		machine["network"] = network
	}
	b, err := yaml.Marshal(doc)
	if err != nil {
		panic(err) // a map of strings always marshals
	}
	if multidoc {
		doc, err := yaml.Marshal(map[string]any{"apiVersion": "v1alpha1", "kind": "HostnameConfig", "auto": "off", "hostname": n.Name})
		if err != nil {
			panic(err)
		}
		b = append(append(b, "---\n"...), doc...)
	}
	return Patch{Source: "node/" + n.Name, Content: string(b)}
}

// Contents returns the YAML texts of patches, in order.
func Contents(patches []Patch) []string {
	out := make([]string, len(patches))
	for i, p := range patches {
		out[i] = p.Content
	}
	return out
}

// RebootSettingsOf summarises, one line per setting, the values that patches give every setting
// whose change needs a reboot: the settings listed under reboot in src/talos/reboot.yaml and any
// setting not listed as live (a later patch overrides an earlier one). Two configs whose summaries
// are equal differ only in settings Talos applies live or that an upgrade rolls out.
func (d *Data) RebootSettingsOf(patches []Patch) string {
	return d.summary(patches, "reboot")
}

// KernelArgsOf summarises the kernel arguments patches give: they take effect only through an
// upgrade (the installer image, the other such setting, is compared on its own).
func (d *Data) KernelArgsOf(patches []Patch) string {
	var out []string
	for _, line := range strings.SplitAfter(d.summary(patches, "upgrade"), "\n") {
		if strings.HasPrefix(line, "machine.install.extraKernelArgs") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

func (d *Data) summary(patches []Patch, cost string) string {
	values := map[string]string{}
	for _, p := range patches {
		docs, _ := documents([]byte(p.Content)) // checked by Load
		for _, doc := range docs {
			summarise(d.Settings, doc, cost, values)
		}
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %s\n", k, values[k])
	}
	return b.String()
}

// summarise records in values the settings of one patch document that cost what cost says. Only
// the v1alpha1 document counts: Talos applies every other document (HostnameConfig, LinkConfig,
// ...) live, for it compares only the v1alpha1 parts of the two configs (CanApplyImmediate:
// v1alpha1_runtime.go:119-136 at v1.12.6, :130-147 at v1.13.9).
func summarise(settings Settings, doc any, cost string, values map[string]string) {
	switch doc := doc.(type) {
	case map[string]any:
		if _, other := doc["kind"]; other {
			return
		}
		leaves("", doc, func(path string, v any) {
			if settings.Costs(path) == cost {
				values[path] = compact(v)
			}
		})
	case []any: // JSON patch: keep every operation that touches such a setting
		for _, op := range doc {
			m, _ := op.(map[string]any)
			opPath, _ := m["path"].(string)
			dotted := strings.ReplaceAll(strings.TrimPrefix(opPath, "/"), "/", ".")
			if settings.Costs(dotted) == cost {
				values[dotted] = compact(m)
			}
		}
	}
}

// leaves calls fn for every value of doc that is not a mapping, with its dotted path; a setting
// whose cost is decided by a covering path (such as cluster.network.cni) is reported whole.
func leaves(prefix string, doc map[string]any, fn func(path string, v any)) {
	for k, v := range doc {
		path := k
		if prefix != "" {
			path = prefix + "." + k
		}
		if m, ok := v.(map[string]any); ok && len(m) > 0 {
			leaves(path, m, fn)
			continue
		}
		fn(path, v)
	}
}

// CheckKernelArgs refuses kernel arguments in patches where they would never reach a node's boot
// entry: under secure boot, systemd-boot ignores machine.install.extraKernelArgs (Talos v1.11.5
// v1alpha1_types.go:808); from contract v1.12, Talos generates machine.install.grubUseUKICmdline
// and refuses both together ("install.extraKernelArgs and install.grubUseUKICmdline can't be used
// together": v1alpha1_validation.go:114-115 at v1.12.6), deprecates the field, and its 1.13
// upgrade API no longer applies it. Either way they belong in the schematic, where they become
// part of the installer image.
func (d *Data) CheckKernelArgs(c stackconfig.Cluster) error {
	var why string
	switch {
	case c.SecureBoot:
		why = "which Talos ignores under secure boot (homelab:cluster.secureBoot: true)"
	case c.MultidocConfig():
		why = fmt.Sprintf("which Talos refuses next to the grubUseUKICmdline of contract %s configs and no longer applies "+
			"through its upgrade API (homelab:cluster.contract %s)", c.VersionContract(), c.VersionContract())
	default:
		return nil
	}
	var errs []error
	for _, group := range [][]Patch{d.Common, d.ControlPlane, d.Worker} {
		for _, p := range group {
			if strings.Contains(d.summary([]Patch{p}, "upgrade"), "machine.install.extraKernelArgs") {
				errs = append(errs, fmt.Errorf("src/%s sets machine.install.extraKernelArgs, %s: move the arguments to "+
					"src/talos/schematic.yaml under customization.extraKernelArgs, where they become part of the installer image "+
					"and reach the nodes through an upgrade", p.Source, why))
			}
		}
	}
	return errors.Join(errs...)
}

// Mark identifies a reboot-settings summary; the reboot gate compares marks to decide whether a
// node must reboot.
func Mark(settings string) string {
	sum := sha256.Sum256([]byte(settings))
	return "reboot-settings sha256:" + hex.EncodeToString(sum[:])
}

func compact(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
