//go:build tools

// Package realcli pins the module graph of the real talosctl v1.12.1 (github.com/siderolabs/talos,
// with Talos's own replace directives copied into go.mod), which lab/build builds for the lab.
package realcli

import _ "github.com/siderolabs/talos/cmd/talosctl"
