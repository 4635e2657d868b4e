package golden

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The README and docs/testing.md promise that `go test ./... -update` rewrites every golden file.
// Go fails a test binary that is handed a flag it does not define, so every package with tests must
// link homelab/internal/golden, which defines -update; otherwise that command ends in FAIL.
func TestEveryTestPackageAcceptsUpdate(t *testing.T) {
	importsGolden := map[string]bool{}
	root := filepath.Join("..", "..")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root {
			if strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module (lab/sim, lab/cli, ...): `go test ./...` does not reach it
			}
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		dir := filepath.Dir(path)
		importsGolden[dir] = importsGolden[dir] || false
		if filepath.Base(dir) == "golden" && filepath.Base(filepath.Dir(dir)) == "internal" {
			importsGolden[dir] = true // this package defines -update
		}
		for _, imp := range f.Imports {
			if p, _ := strconv.Unquote(imp.Path.Value); p == "homelab/internal/golden" {
				importsGolden[dir] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(importsGolden) < 5 {
		t.Fatalf("found tests in only %d packages; the walk is wrong", len(importsGolden))
	}
	for dir, ok := range importsGolden {
		if !ok {
			t.Errorf("%s: its tests do not import homelab/internal/golden, so `go test ./... -update` fails there with \"flag provided but not defined: -update\"; add `_ \"homelab/internal/golden\"` to one test file's imports", dir)
		}
	}
}
