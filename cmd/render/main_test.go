package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"homelab/internal/fixture"
	_ "homelab/internal/golden" // defines -update, so `go test ./... -update` runs here too
)

// Every stack the program refuses, render refuses too, naming the same key, and writes nothing
// (the program's side of this is internal/cluster's TestRefusedStacksAreRefusedByTheProgram).
func TestRenderRefusesWhatTheProgramRefuses(t *testing.T) {
	for _, r := range fixture.RefusedStacks(t) {
		t.Run(filepath.Base(r.Path), func(t *testing.T) {
			dir := fixture.Project(t, r.Path, "refused")
			out := filepath.Join(t.TempDir(), "out")
			var stdout, stderr bytes.Buffer
			err := run(dir, "refused", out, "", false, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), r.Key) {
				t.Errorf("render gave %v; want a refusal naming %s", err, r.Key)
			}
			if _, statErr := os.Stat(out); statErr == nil {
				t.Errorf("render wrote %s for a refused stack", out)
			}
		})
	}
}

func norns(t *testing.T) string {
	return fixture.Project(t, filepath.Join(fixture.Root(t), "Pulumi.norns.yaml"), "norns")
}

// A talosconfig or a machine config given as --secrets is refused with a message, not a panic.
func TestAWrongSecretsFileIsAMessageAndStatusOne(t *testing.T) {
	t.Chdir(norns(t))
	wrong := map[string]string{
		"talosconfig.yaml":   "context: norns\ncontexts:\n  norns:\n    endpoints: [192.168.0.120]\n    ca: Zm9v\n    crt: Zm9v\n    key: Zm9v\n",
		"controlplane.yaml":  "version: v1alpha1\nmachine:\n  type: controlplane\n",
		"empty.yaml":         "",
		"not-yaml.yaml":      "{{{ not yaml",
		"does-not-exist.yml": "",
	}
	for name, content := range wrong {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name)
			if name != "does-not-exist.yml" {
				if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var stdout, stderr bytes.Buffer
			code := guard(&stderr, func() int {
				return cli([]string{"--stack", "norns", "--out", filepath.Join(t.TempDir(), "out"), "--secrets", path}, &stdout, &stderr)
			})
			if code != 1 || !strings.Contains(stderr.String(), "--secrets "+path) || strings.Contains(stderr.String(), "panic") {
				t.Errorf("exit %d, stderr:\n%s\nwant 1 and a message naming --secrets", code, stderr.String())
			}
		})
	}
}

// A panic anywhere in the command is status 1 and a message, never Go's stack trace and 2.
func TestAPanicIsStatusOne(t *testing.T) {
	var stderr bytes.Buffer
	if code := guard(&stderr, func() int { panic("boom") }); code != 1 || !strings.Contains(stderr.String(), "internal error: boom") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

// Rendering again after a node left the stack removes that node's file, and only files render
// wrote.
func TestRenderRemovesTheFilesOfRemovedNodes(t *testing.T) {
	dir := norns(t)
	out := filepath.Join(t.TempDir(), "out")
	var stdout, stderr bytes.Buffer
	if err := run(dir, "norns", out, "", false, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	mine := filepath.Join(out, "notes.yaml")
	if err := os.WriteFile(mine, []byte("mine\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stackFile := filepath.Join(dir, "Pulumi.norns.yaml")
	b, err := os.ReadFile(stackFile)
	if err != nil {
		t.Fatal(err)
	}
	without := strings.Replace(string(b), "      - {name: skuld, address: 192.168.0.122, role: controlplane}\n", "", 1)
	if without == string(b) {
		t.Fatal("Pulumi.norns.yaml no longer lists skuld as the test expects")
	}
	if err := os.WriteFile(stackFile, []byte(without), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(dir, "norns", out, "", false, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "skuld.yaml")); err == nil {
		t.Error("skuld.yaml is still there after skuld left the stack")
	}
	for _, keep := range []string{"urd.yaml", "verdandi.yaml", "notes.yaml"} {
		if _, err := os.Stat(filepath.Join(out, keep)); err != nil {
			t.Errorf("%s: %v", keep, err)
		}
	}
}

// Run from outside the repository, render says where to run it.
func TestOutsideTheRepositoryRenderSaysWhereToRun(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(t.TempDir(), "norns", filepath.Join(t.TempDir(), "out"), "", false, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "run render from the repository root") {
		t.Errorf("got %v", err)
	}
}

// The example stack, a new cluster on the newest Talos the program carries out and the newest
// Kubernetes that release supports, renders offline as it stands: one config per node, each
// holding its hostname, accepted by Talos's validator (render validates what it writes).
func TestTheExampleStackRendersOffline(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	var stdout, stderr bytes.Buffer
	if err := run(fixture.Root(t), "example", out, "", false, &stdout, &stderr); err != nil {
		t.Fatalf("render of the example: %v\n%s", err, stderr.String())
	}
	for _, n := range []string{"cp1", "cp2", "cp3"} {
		b, err := os.ReadFile(filepath.Join(out, n+".yaml"))
		if err != nil || !strings.Contains(string(b), n) || !strings.Contains(string(b), "kubelet:v1.36.5") {
			t.Errorf("%s.yaml: %v; want the node's config on Kubernetes v1.36.5", n, err)
		}
	}
}
