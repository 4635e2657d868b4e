//go:build tools

// Package cli only pins the Pulumi CLI's module graph; lab/build builds the CLI from it with
// `go build github.com/pulumi/pulumi/pkg/v3/cmd/pulumi`.
package cli

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
