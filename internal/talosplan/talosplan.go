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
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/siderolabs/image-factory/pkg/schematic"
	"gopkg.in/yaml.v3"

	"homelab/internal/stackconfig"
)

// Paths inside src/.
const (
	PatchDir      = "talos/patches"
	HandoverPatch = "talos/patches/cilium.yaml"
	SchematicFile = "talos/schematic.yaml"
	RebootFile    = "talos/reboot.yaml"
	RebootScript  = "talos/reboot.sh"
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
	// RebootSettings are the dotted machine-config paths whose change needs a reboot.
	RebootSettings []string
	// Schematic is the Image Factory schematic (YAML) and SchematicID its content-addressed ID.
	Schematic, SchematicID string
	// RebootScript is the shell script that reboots one node when needed and waits for its health.
	RebootScript string
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
	if d.RebootSettings, err = loadRebootSettings(fsys); err != nil {
		errs = append(errs, err)
	}
	if d.Schematic, d.SchematicID, err = loadSchematic(fsys); err != nil {
		errs = append(errs, err)
	}
	if b, err := fs.ReadFile(fsys, RebootScript); err != nil {
		errs = append(errs, fmt.Errorf("src/%s: %w", RebootScript, err))
	} else {
		d.RebootScript = string(b)
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
	var doc any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return Patch{}, fmt.Errorf("src/%s: not valid YAML: %w", name, err)
	}
	switch doc.(type) {
	case map[string]any, []any:
	default:
		return Patch{}, fmt.Errorf("src/%s: a patch must be a strategic-merge document (a mapping) or a JSON patch (a list)", name)
	}
	return Patch{Source: name, Content: string(b)}, nil
}

func loadRebootSettings(fsys fs.FS) ([]string, error) {
	b, err := fs.ReadFile(fsys, RebootFile)
	if err != nil {
		return nil, fmt.Errorf("src/%s: %w", RebootFile, err)
	}
	var doc struct {
		Settings []string `yaml:"settings"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("src/%s: %w", RebootFile, err)
	}
	for _, s := range doc.Settings {
		if s == "" || strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") {
			return nil, fmt.Errorf("src/%s: %q is not a dotted config path such as machine.install.image", RebootFile, s)
		}
	}
	return doc.Settings, nil
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
	return append(out, nodePatch(n, d.InstallerImage(c)))
}

func nodePatch(n stackconfig.Node, image string) Patch {
	doc := map[string]any{"machine": map[string]any{
		"network": map[string]any{"hostname": n.Name},
		"install": map[string]any{"disk": n.InstallDisk, "image": image},
	}}
	b, err := yaml.Marshal(doc)
	if err != nil {
		panic(err) // a map of strings always marshals
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

// RebootSettingsOf summarises, one line per setting, the values that patches give the settings
// listed in src/talos/reboot.yaml (a later patch overrides an earlier one). Two configs whose
// summaries are equal differ only in settings Talos applies without a reboot.
func (d *Data) RebootSettingsOf(patches []Patch) string {
	values := map[string]string{}
	for _, p := range patches {
		var doc any
		_ = yaml.Unmarshal([]byte(p.Content), &doc) // checked by Load
		switch doc := doc.(type) {
		case map[string]any:
			for _, s := range d.RebootSettings {
				if v, ok := lookup(doc, strings.Split(s, ".")); ok {
					values[s] = compact(v)
				}
			}
		case []any: // JSON patch: keep every operation that touches a listed setting
			for _, op := range doc {
				m, _ := op.(map[string]any)
				opPath, _ := m["path"].(string)
				dotted := strings.ReplaceAll(strings.TrimPrefix(opPath, "/"), "/", ".")
				for _, s := range d.RebootSettings {
					if dotted == s || strings.HasPrefix(dotted, s+".") || strings.HasPrefix(s, dotted+".") {
						values[s] = compact(m)
					}
				}
			}
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

// Mark identifies a reboot-settings summary; the reboot gate compares marks to decide whether a
// node must reboot.
func Mark(settings string) string {
	sum := sha256.Sum256([]byte(settings))
	return "reboot-settings sha256:" + hex.EncodeToString(sum[:])
}

func lookup(doc map[string]any, keys []string) (any, bool) {
	var cur any = doc
	for _, k := range keys {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func compact(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
