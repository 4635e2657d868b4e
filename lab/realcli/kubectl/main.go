// Command kubectl is upstream kubectl: k8s.io/kubectl's command tree, run the way
// k8s.io/kubernetes cmd/kubectl/kubectl.go (v1.35.8) runs it. lab/build stamps the version with
// -ldflags "-X k8s.io/component-base/version.gitVersion=v1.35.8".
package main

import (
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
