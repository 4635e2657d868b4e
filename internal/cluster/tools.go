package cluster

import (
	"encoding/json"
	"os/exec"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/internal/lifecycle"
)

// checkTools stops `pulumi up`, before anything is registered, when the talosctl or kubectl on
// PATH is not one the stack's versions need (lifecycle.NeedTools): the scripts of the nodes'
// gates would otherwise find out halfway through a rollout. A preview skips it: it runs neither.
func checkTools(ctx *pulumi.Context, need lifecycle.Tools) error {
	if ctx.DryRun() {
		return nil
	}
	talosctl, kubectl := clientVersions()
	return need.Check(talosctl, kubectl)
}

// clientVersions reports the versions (vX.Y.Z) of the talosctl and kubectl on PATH, "" for one
// that is missing or does not answer; tests replace it.
var clientVersions = func() (talosctl, kubectl string) {
	if out, err := exec.Command("talosctl", "version", "--client").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Tag:"); ok {
				talosctl = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := exec.Command("kubectl", "version", "--client", "-o", "json").Output(); err == nil {
		var v struct {
			ClientVersion struct {
				GitVersion string `json:"gitVersion"`
			} `json:"clientVersion"`
		}
		if json.Unmarshal(out, &v) == nil {
			kubectl = v.ClientVersion.GitVersion
		}
	}
	return talosctl, kubectl
}
