// Command homelab is the Pulumi program of a bare-metal Talos cluster: `pulumi up` takes nodes in
// maintenance mode to a bootstrapped cluster on Cilium with its secrets from 1Password and its
// applications from Git (Argo CD), and keeps it in step with src/ and the stack file;
// `pulumi preview` shows what would change without contacting any node or the cluster. The
// program itself, in the order it runs, is internal/cluster.Run.
package main

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/internal/cluster"
	"homelab/src"
)

func main() {
	pulumi.Run(func(ctx *pulumi.Context) error {
		_, err := cluster.Run(ctx, src.FS)
		return err
	})
}
