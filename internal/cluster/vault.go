package cluster

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/components"
	"homelab/internal/onepassword"
	"homelab/internal/stackconfig"
)

// vault is what the program reads from 1Password: the vault, the Connect credentials and, for a
// restore, the cluster identity's backup. The values are secrets and leave this file only through
// pulumi.ToSecret (the backup only into the file the Talos provider imports).
type vault struct {
	UUID                      string
	ConnectCredentials, Token pulumi.StringOutput
	Backup                    string
	// BackupID is the provider ID of the backup item a restore finds in the vault: the run adopts
	// it rather than adding a second item of the same title, which would break every later read
	// of the backup by its title. "" when the run creates the item, or the state holds it.
	BackupID string
}

// readVault checks that every item and field the cluster needs is in the vault, before anything
// is registered: a missing one stops the run with the vault, item and field to add.
func readVault(ctx *pulumi.Context, cfg *stackconfig.Config, id identity) (*vault, error) {
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
	fromBackup := id.Restore && !id.Given
	if fromBackup {
		needs = append(needs, onepassword.Need{Title: cfg.OnePassword.BackupItem, Fields: map[string]string{
			"secrets.yaml": "the cluster's Talos secrets bundle in talosctl's secrets.yaml form, which pulumi up writes there; " +
				"a restore imports it, so put it back from another copy, or put secrets.yaml in the project directory instead",
		}})
	}
	uuid, items, err := onepassword.Require(ctx, cfg.OnePassword.Vault, needs)
	if err != nil {
		if fromBackup {
			return nil, fmt.Errorf("this stack has no state and homelab:cluster.adopt is true: the run would restore it, and the "+
				"running cluster's identity must be imported, never created; nothing was registered and no node was touched: %w", err)
		}
		return nil, err
	}
	connect := items[cfg.OnePassword.ConnectItem]
	credentials, _ := connect.Field("credentials")
	token, _ := connect.Field("token")
	var backup, backupID string
	switch {
	case fromBackup:
		item := items[cfg.OnePassword.BackupItem]
		backup, _ = item.Field("secrets.yaml")
		backupID = onepassword.ItemID(uuid, item.UUID)
	case id.Restore || id.New:
		item, err := onepassword.Lookup(ctx, uuid, cfg.OnePassword.Vault, cfg.OnePassword.BackupItem)
		if err != nil {
			return nil, err
		}
		if item != nil && id.New && item.HasTag(components.StackTag(ctx.Project(), ctx.Stack())) {
			// This stack wrote it in a first run that stopped before its end (the deployment
			// record comes last): the state holds the item, and the run goes on.
			break
		}
		if item != nil && id.New {
			return nil, fmt.Errorf("1Password: vault %q already holds %q, the backup of a cluster identity, and this run would create "+
				"a new cluster (homelab:cluster.adopt is false and the stack has no state) whose backup would be a second item of "+
				"that title; nothing was registered and no node was touched. If that item is this running cluster's, set "+
				"homelab:cluster.adopt to true to restore the stack from it; if its cluster is gone for good, archive or rename "+
				"the item (or set homelab:onepassword.backupItem to another title)", cfg.OnePassword.Vault, cfg.OnePassword.BackupItem)
		}
		if item != nil {
			backupID = onepassword.ItemID(uuid, item.UUID)
		}
	}
	return &vault{
		UUID:               uuid,
		Backup:             backup,
		BackupID:           backupID,
		ConnectCredentials: pulumi.ToSecret(pulumi.String(credentials)).(pulumi.StringOutput),
		Token:              pulumi.ToSecret(pulumi.String(token)).(pulumi.StringOutput),
	}, nil
}
