package stackfile_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "homelab/internal/golden" // registers -update for go test ./...
	"homelab/internal/stackconfig"
	"homelab/internal/stackfile"
)

func TestEveryStackFileLoadsAndValidates(t *testing.T) {
	files, err := filepath.Glob("../../Pulumi.*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no Pulumi.<stack>.yaml found")
	}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "Pulumi."), ".yaml")
		t.Run(name, func(t *testing.T) {
			sf, err := stackfile.Load("../..", name)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := stackconfig.Load(sf.Get); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// project writes a Pulumi.yaml and a stack file into a temporary project directory.
func project(t *testing.T, stack string) string {
	t.Helper()
	dir := t.TempDir()
	proj, err := os.ReadFile("../../Pulumi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Pulumi.yaml"), proj, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Pulumi.lab.yaml"), []byte(stack), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestAMissingStackFileIsReportedAsMissing(t *testing.T) {
	dir := project(t, "config:\n  homelab:cluster: {}\n")
	_, err := stackfile.Load(dir, "typo")
	if err == nil || !strings.Contains(err.Error(), "Pulumi.typo.yaml does not exist (the stacks here are lab)") {
		t.Errorf("error %v; want the missing file named, with the stacks that exist", err)
	}
}

func TestStackFileProblemsAreCaught(t *testing.T) {
	cases := map[string]struct{ stack, want string }{
		"undeclared key":  {"config:\n  homelab:clustr: {}\n  homelab:cluster: {}\n", "homelab:clustr is not declared in Pulumi.yaml"},
		"wrong type":      {"config:\n  homelab:cluster: norns\n", "homelab:cluster must be of type object"},
		"missing key":     {"config:\n  other:key: 1\n", "homelab:cluster is required"},
		"invalid YAML":    {"config:\n  homelab:cluster: [\n", "Pulumi.lab.yaml: not valid YAML at line 2"},
		"misindented key": {"config:\n  homelab:cluster:\n    name: norns\n   endpoint: x\n", `not valid YAML at line 4 ("endpoint: x")`},
		"unclosed flow":   {"config:\n  homelab:cluster:\n    nodes:\n      - {name: urd\n    endpoint: y\n", "not valid YAML at line 4"},
		"other namespace": {"config:\n  talos:imageFactoryUrl: https://factory.example\n  homelab:cluster: {}\n", ""},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := stackfile.Load(project(t, tc.stack), "lab")
			if tc.want == "" {
				if err != nil {
					t.Errorf("a provider's own key is rejected: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v; want it to contain %q", err, tc.want)
			}
		})
	}
}
