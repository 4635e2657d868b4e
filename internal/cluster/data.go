package cluster

import (
	"errors"
	"io/fs"

	"homelab/internal/lifecycle"
	"homelab/internal/manifests"
	"homelab/internal/stackconfig"
	"homelab/internal/talosplan"
	"homelab/internal/validate"
)

// inputs is everything the program reads from src/, loaded and checked once, and the run's plan.
type inputs struct {
	talos   *talosplan.Data
	net     *manifests.Networking
	connect *manifests.Connect
	argocd  *manifests.ArgoCD // nil when Argo CD is off
	plan    lifecycle.Plan
}

// loadData checks the stack and src/ as every entry point does (validate.Stack), against the last
// deployment, then reads what only the program needs, reporting every problem at once, each
// naming its file or key.
func loadData(data fs.FS, cfg *stackconfig.Config, prev *lifecycle.Deployed) (*inputs, error) {
	in := &inputs{}
	var errs [3]error
	if checked, err := validate.Stack(cfg, data, prev, true); err == nil {
		in.talos, in.net, in.plan = checked.Talos, checked.Networking, checked.Plan
	} else {
		errs[0] = err
	}
	in.connect, errs[1] = manifests.LoadConnect(data)
	if cfg.ArgoCD.On() {
		in.argocd, errs[2] = manifests.LoadArgoCD(data, cfg.ArgoCD, cfg.OnePassword.Vault)
	}
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	return in, nil
}
