// Package src is the program's data: Talos patches and schematic, Helm values, manifests and Argo CD
// applications. Go code reads it only through FS, so tests can substitute an in-memory tree.
package src

import "embed"

// FS holds everything under src/ that the program reads.
//
//go:embed talos bootstrap apps
var FS embed.FS
