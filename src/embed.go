// Package src is the program's data: Talos patches and schematic, Helm values, manifests and Argo CD
// applications. Go code reads it only through FS, so tests can substitute an in-memory tree.
package src

import (
	"embed"
	"fmt"
	"io/fs"
	"testing/fstest"
)

// FS holds everything under src/ that the program reads.
//
//go:embed talos bootstrap apps lib
var FS embed.FS

// With returns FS in memory with some files added or replaced (path → content), for tests that
// change the data.
func With(files map[string]string) (fs.FS, error) {
	out := fstest.MapFS{}
	err := fs.WalkDir(FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(FS, p)
		out[p] = &fstest.MapFile{Data: b}
		return err
	})
	for name, content := range files {
		out[name] = &fstest.MapFile{Data: []byte(content)}
	}
	return out, err
}

// Preamble is the shared start of every script the program runs (src/lib/preamble.sh).
const Preamble = "lib/preamble.sh"

// Script returns the script at name in fsys as the program runs it: the preamble, then the script.
func Script(fsys fs.FS, name string) (string, error) {
	pre, err := fs.ReadFile(fsys, Preamble)
	if err != nil {
		return "", fmt.Errorf("src/%s: %w", Preamble, err)
	}
	body, err := fs.ReadFile(fsys, name)
	if err != nil {
		return "", fmt.Errorf("src/%s: %w", name, err)
	}
	return string(pre) + "\n" + string(body), nil
}
