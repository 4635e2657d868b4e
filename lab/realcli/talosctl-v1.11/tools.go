//go:build tools

// Package realcli pins the module graph of the real talosctl (github.com/siderolabs/talos, with
// Talos's own replace directives copied into go.mod) and kubectl (k8s.io/kubectl), which lab/build
// builds for the lab's PATH.
package realcli

import _ "github.com/siderolabs/talos/cmd/talosctl"
