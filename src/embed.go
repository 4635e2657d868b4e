// Package src is the program's data: Talos patches and schematic, Helm values, manifests and Argo CD
// applications. Go code reads it only through FS, so tests can substitute an in-memory tree.
package src

import (
	"embed"
	"io/fs"
	"testing/fstest"
)

// FS holds everything under src/ that the program reads.
//
//go:embed talos bootstrap apps
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
