package main

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/internal/onepassword"
	"homelab/internal/stackconfig"
)

// vault is what the program reads from 1Password: the vault and the Connect credentials. The
// values are secrets and leave this file only through pulumi.ToSecret.
type vault struct {
	UUID                      string
	ConnectCredentials, Token pulumi.StringOutput
}

// readVault checks that every item and field the cluster needs is in the vault, before anything
// is registered: a missing one stops the run with the vault, item and field to add.
func readVault(ctx *pulumi.Context, cfg *stackconfig.Config) (*vault, error) {
	needs := []onepassword.Need{{Title: cfg.OnePassword.ConnectItem, Fields: map[string]string{
		"credentials": "the content of 1password-credentials.json of your Connect server, as JSON or base64",
		"token":       "a Connect token for the 1Password operator (op connect token create)",
	}}}
	if cfg.ArgoCD.On() {
		needs = append(needs, onepassword.Need{Title: cfg.ArgoCD.AdminItem, Fields: map[string]string{
			"admin.password":   "the bcrypt hash of the Argo CD admin password (argocd account bcrypt)",
			"server.secretkey": "a random string, e.g. from openssl rand -base64 32",
		}})
	}
	uuid, items, err := onepassword.Require(ctx, cfg.OnePassword.Vault, needs)
	if err != nil {
		return nil, err
	}
	connect := items[cfg.OnePassword.ConnectItem]
	credentials, _ := connect.Field("credentials")
	token, _ := connect.Field("token")
	return &vault{
		UUID:               uuid,
		ConnectCredentials: pulumi.ToSecret(pulumi.String(credentials)).(pulumi.StringOutput),
		Token:              pulumi.ToSecret(pulumi.String(token)).(pulumi.StringOutput),
	}, nil
}
