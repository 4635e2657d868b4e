package manifests

import (
	"errors"
	"fmt"
	"io/fs"

	"homelab/internal/stackconfig"
)

// Paths inside src/ of the secrets and GitOps data.
const (
	ConnectNamespace = "bootstrap/onepassword/namespace.yaml"
	ConnectValues    = "bootstrap/onepassword/values.yaml"
	ArgoCDNamespace  = "bootstrap/argocd/namespace.yaml"
	ArgoCDValues     = "bootstrap/argocd/values.yaml"
	ArgoCDAdmin      = "bootstrap/argocd/admin-secret.yaml"
	ArgoCDRootApp    = "bootstrap/argocd/root-app.yaml"
)

// Connect is the data of the 1Password Connect install.
type Connect struct {
	Namespace Object
	Values    string
}

// ArgoCD is the data of the Argo CD install.
type ArgoCD struct {
	Namespace Object
	Values    string
	// AdminSecret is the OnePasswordItem of argocd-secret, its itemPath set from the stack file.
	AdminSecret Object
	// RootApp is the app-of-apps Application, its source set from the stack file.
	RootApp Object
}

// LoadConnect reads the 1Password Connect data.
func LoadConnect(fsys fs.FS) (*Connect, error) {
	ns, nsErr := one(fsys, ConnectNamespace, "Namespace")
	values, vErr := ReadValues(fsys, ConnectValues)
	if err := errors.Join(nsErr, vErr); err != nil {
		return nil, err
	}
	return &Connect{Namespace: ns, Values: values}, nil
}

// LoadArgoCD reads the Argo CD data and fills in what the stack file decides.
func LoadArgoCD(fsys fs.FS, argo stackconfig.ArgoCD, vault string) (*ArgoCD, error) {
	a := &ArgoCD{}
	var errs []error
	var err error
	if a.Namespace, err = one(fsys, ArgoCDNamespace, "Namespace"); err != nil {
		errs = append(errs, err)
	}
	if a.Values, err = ReadValues(fsys, ArgoCDValues); err != nil {
		errs = append(errs, err)
	}
	if a.AdminSecret, err = one(fsys, ArgoCDAdmin, "OnePasswordItem"); err == nil {
		a.AdminSecret.Fields["spec"] = map[string]any{"itemPath": ItemPath(vault, argo.AdminItem)}
	} else {
		errs = append(errs, err)
	}
	if a.RootApp, err = one(fsys, ArgoCDRootApp, "Application"); err == nil {
		spec, _ := a.RootApp.Fields["spec"].(map[string]any)
		source, _ := spec["source"].(map[string]any)
		if source == nil {
			errs = append(errs, fmt.Errorf("src/%s: spec.source is missing", ArgoCDRootApp))
		} else {
			source["repoURL"], source["targetRevision"], source["path"] = argo.RepoURL, argo.Revision, argo.Path
		}
	} else {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return a, nil
}

// ItemPath is how the 1Password operator names an item: vaults/<vault>/items/<item>.
func ItemPath(vault, item string) string {
	return "vaults/" + vault + "/items/" + item
}

// one reads a manifest that must hold exactly one object of the given kind.
func one(fsys fs.FS, name, kind string) (Object, error) {
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return Object{}, fmt.Errorf("src/%s: %w", name, err)
	}
	objs, err := Decode(name, data)
	if err != nil {
		return Object{}, err
	}
	if len(objs) != 1 || objs[0].Kind != kind {
		return Object{}, fmt.Errorf("src/%s: must hold exactly one %s", name, kind)
	}
	return objs[0], nil
}
