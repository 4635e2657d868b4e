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

// A panic is status 1, never 2: 2 means "drifted" to the scheduled check.
func TestAPanicIsStatusOneNeverDrifted(t *testing.T) {
	var stderr bytes.Buffer
	if code := guard(&stderr, func() int { panic("boom") }); code != 1 || !strings.Contains(stderr.String(), "internal error: boom") {
		t.Errorf("exit %d, stderr %q; want 1 and the message", code, stderr.String())
	}
}

// A talosconfig given as --secrets, or a secrets.yaml given as --talosconfig, is a message and
// status 1, before any node is read.
func TestWrongFilesAreAMessageAndStatusOne(t *testing.T) {
	root := fixture.Root(t)
	t.Chdir(fixture.Project(t, filepath.Join(root, "Pulumi.norns.yaml"), "norns"))
	dir := t.TempDir()
	talosconfig := filepath.Join(dir, "talosconfig")
	if err := os.WriteFile(talosconfig, []byte("context: norns\ncontexts:\n  norns:\n    endpoints: [192.168.0.120]\n    ca: Zm9v\n    crt: Zm9v\n    key: Zm9v\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secretsFile := filepath.Join(root, "internal", "render", "testdata", "secrets.yaml")
	for name, args := range map[string][2]string{
		"talosconfig as --secrets":      {talosconfig, talosconfig},
		"secrets.yaml as --talosconfig": {secretsFile, secretsFile},
	} {
		t.Run(name, func(t *testing.T) {
			code, err := run("norns", args[0], args[1], false, false)
			if code != 1 || err == nil || !strings.Contains(err.Error(), "is not a") {
				t.Errorf("exit %d, %v; want 1 and a message saying what the file is not", code, err)
			}
		})
	}
}
