package world

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/blang/semver/v4"
)

// release is the Talos release a node runs. One node model serves every release the lab knows
// (1.11, 1.12, 1.13); what changed between them is a gate on the release, each citing the source
// of the release that changed it. Talos paths are at that release's tag.
type release struct{ v semver.Version }

func parseRelease(tag string) release {
	v, err := semver.ParseTolerant(tag)
	if err != nil {
		return release{}
	}
	return release{v: v}
}

func (r release) String() string { return "v" + r.v.String() }

// minor is the release's vX.Y.
func (r release) minor() string { return fmt.Sprintf("v%d.%d", r.v.Major, r.v.Minor) }

func (r release) atLeast(major, minor uint64) bool {
	return r.v.Major > major || (r.v.Major == major && r.v.Minor >= minor)
}

// hasLifecycleAPI: Talos 1.13 serves LifecycleService (Install, Upgrade) and ImageService next to
// the machine API, and apid streams the lifecycle calls (v1.13.9 internal/app/machined/internal/
// server/v1alpha1/v1alpha1_server.go:154-156, internal/app/apid/service.go:85-103); 1.11 and 1.12
// register neither, so a call answers Unimplemented "unknown service ...".
func (r release) hasLifecycleAPI() bool { return r.atLeast(1, 13) }

// appliesOneAtATime: from 1.13 ApplyConfiguration refuses a second apply while one runs, and any
// apply after an apply with a reboot until that reboot (v1.13.9 v1alpha1_server.go:183-190).
func (r release) appliesOneAtATime() bool { return r.atLeast(1, 13) }

// appliesManifestsWithSSA: from 1.13 Talos server-side applies its bootstrap manifests (field
// manager "talos"), still creating only what is missing, and records them in the inventory
// ConfigMap kube-system/talos-bootstrap-manifests-inventory, each object annotated
// config.k8s.io/owning-inventory (v1.13.9 internal/app/machined/pkg/controllers/k8s/
// manifest_apply.go); before, it creates missing objects with a plain create.
func (r release) appliesManifestsWithSSA() bool { return r.atLeast(1, 13) }

// validate checks a machine config as a node of this release does before it takes it: with the
// real talosctl of the release's minor, `talosctl validate --mode metal` (Talos's configloader
// and Validate, the code machined runs: v1alpha1_server.go:181-201), so a document kind or field
// the release does not know is refused in its own words ("HostnameConfig" "v1alpha1": not
// registered; unknown keys). An installed node no longer needs .machine.install (the modeWrapper
// of v1alpha1_server.go:158-167); talosctl has no such mode, so a config without it is refused
// here where an installed node would take it: the program's configs always have one.
func (r release) validate(config []byte) error {
	bin := talosctlFor(r)
	if bin == "" {
		return fmt.Errorf("lab: no talosctl of Talos %s to validate with (lab/build builds one per minor release)", r.minor())
	}
	f, err := os.CreateTemp("", "machineconfig-*.yaml")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(config); err != nil {
		f.Close()
		return err
	}
	f.Close()
	out, err := exec.Command(bin, "validate", "--mode", "metal", "--config", f.Name()).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s", strings.TrimSpace(string(out)))
	}
	return nil
}

// talosctlFor is the lab's talosctl of the release's minor: $LAB_TALOSCTL/<vX.Y>/talosctl.
func talosctlFor(r release) string {
	p := filepath.Join(os.Getenv("LAB_TALOSCTL"), r.minor(), "talosctl")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}
