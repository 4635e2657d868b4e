package cluster

import (
	"errors"
	"io/fs"

	"homelab/internal/manifests"
	"homelab/internal/stackconfig"
	"homelab/internal/talosplan"
)

// inputs is everything the program reads from src/, loaded and checked once.
type inputs struct {
	talos   *talosplan.Data
	net     *manifests.Networking
	connect *manifests.Connect
	argocd  *manifests.ArgoCD // nil when Argo CD is off
}

// loadData reads src/ and reports every problem at once, each naming its file.
func loadData(data fs.FS, cfg *stackconfig.Config) (*inputs, error) {
	in := &inputs{}
	var errs [5]error
	if in.talos, errs[0] = talosplan.Load(data); errs[0] == nil {
		errs[4] = in.talos.CheckKernelArgs(cfg.Cluster)
	}
	in.net, errs[1] = manifests.Load(data, cfg.Networking)
	in.connect, errs[2] = manifests.LoadConnect(data)
	if cfg.ArgoCD.On() {
		in.argocd, errs[3] = manifests.LoadArgoCD(data, cfg.ArgoCD, cfg.OnePassword.Vault)
	}
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	return in, nil
}
