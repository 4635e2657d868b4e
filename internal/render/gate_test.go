package render_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/encoder"
	"github.com/siderolabs/talos/pkg/machinery/config/types/v1alpha1"

	"homelab/internal/talosplan"
	"homelab/src"
)

// The gate (src/talos/gate.sh) reads the staged config's kernel arguments with awk, to put them
// in effect before an upgrade. It must read them exactly as Talos encodes a config, with or without
// comments, whatever the arguments hold.
func TestGateReadsKernelArgumentsAsTalosEncodesThem(t *testing.T) {
	script, err := os.ReadFile("../../src/talos/gate.sh")
	if err != nil {
		t.Fatal(err)
	}
	fn := regexp.MustCompile(`(?ms)^kernel_args\(\) \{\n.*?^\}\n`).Find(script)
	if fn == nil {
		t.Fatal("src/talos/gate.sh has no kernel_args function")
	}
	nodes, err := renderNorns(t, src.FS, talosplan.Final)
	if err != nil {
		t.Fatal(err)
	}
	base, err := configloader.NewFromBytes(nodes[0].Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		nil,
		{"console=ttyS0,115200n8"},
		{"net.ifnames=0", `a="b c"`, "x: y", `back\slash`, "-", "it's", "talos.dashboard.disabled=1"},
	} {
		cfg, err := base.PatchV1Alpha1(func(c *v1alpha1.Config) error {
			c.MachineConfig.MachineInstall.InstallExtraKernelArgs = args
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, comments := range []encoder.CommentsFlags{encoder.CommentsDisabled, encoder.CommentsAll} {
			text, err := cfg.EncodeBytes(encoder.WithComments(comments))
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "config.yaml")
			if err := os.WriteFile(file, text, 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("sh", "-c", string(fn)+`kernel_args "$1"`, "sh", file).Output()
			if err != nil {
				t.Fatalf("kernel_args: %v", err)
			}
			var got []string
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("kernel_args printed %q, not a JSON list: %v", out, err)
			}
			if !slices.Equal(got, args) && !(len(got) == 0 && len(args) == 0) {
				t.Errorf("comments %v: kernel_args read %q, the config holds %q", comments, got, args)
			}
		}
	}
}
