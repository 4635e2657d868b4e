package cluster

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/components"
	"homelab/internal/lifecycle"
	"homelab/internal/onepassword"
	"homelab/internal/stackconfig"
)

// vault is what the program reads from 1Password: the vault, the Connect credentials and, for a
// restore, the cluster identity's backup. The values are secrets and leave this file only through
// pulumi.ToSecret (the backup only into the file the Talos provider imports).
type vault struct {
	UUID                      string
	ConnectCredentials, Token pulumi.StringOutput
	// BackupVaultUUID is the UUID of the vault the backup item is registered in this run.
	BackupVaultUUID string
	Backup          string
	// BackupID is the provider ID of the backup item a restore finds in the vault: the run adopts
	// it rather than adding a second item of the same title, which would break every later read
	// of the backup by its title. "" when the run creates the item, or the state holds it.
	BackupID string
}

// readVault checks that every item and field the cluster needs is in the vaults, before anything
// is registered: a missing one stops the run with the vault, item and field to add. The backup
// item lives in its own vault (homelab:onepassword.backupVault), out of the Connect server's reach.
func readVault(ctx *pulumi.Context, cfg *stackconfig.Config, id identity, backup lifecycle.Backup) (*vault, error) {
	o := cfg.OnePassword
	needs := []onepassword.Need{{Title: o.ConnectItem, Fields: map[string]string{
		"credentials": "the content of 1password-credentials.json of your Connect server, as JSON or base64",
		"token":       "a Connect token for the 1Password operator (op connect token create)",
	}}}
	if cfg.ArgoCD.On() {
		needs = append(needs, onepassword.Need{Title: cfg.ArgoCD.AdminItem, Fields: map[string]string{
			"admin.password":   "the bcrypt hash of the Argo CD admin password (argocd account bcrypt)",
			"server.secretkey": "a random string, e.g. from openssl rand -base64 32",
		}})
	}
	uuid, items, err := onepassword.Require(ctx, o.Vault, needs)
	if err != nil {
		return nil, err
	}
	v := &vault{
		UUID:               uuid,
		ConnectCredentials: pulumi.ToSecret(pulumi.String(field(items[o.ConnectItem], "credentials"))).(pulumi.StringOutput),
		Token:              pulumi.ToSecret(pulumi.String(field(items[o.ConnectItem], "token"))).(pulumi.StringOutput),
	}
	fromBackup := id.Restore && !id.Given
	if ctx.DryRun() && backup.VaultUUID != "" && !id.Restore && !id.New {
		// A preview of a deployed stack never opens the identity vault: the last run recorded its
		// UUID, so the preview's 1Password account needs no access to it (docs/security.md).
		v.BackupVaultUUID = backup.VaultUUID
		return v, logBackupMove(ctx, o, backup)
	}
	bv, err := onepassword.GetVault(ctx, backup.Vault)
	if err != nil || bv.UUID == "" {
		return nil, fmt.Errorf("1Password: cannot read vault %q (%v), where the cluster identity's backup %q goes "+
			"(homelab:onepassword.backupVault): create it, give the provider's account read and write access to it, and keep "+
			"the Connect server out of it (it holds the cluster's root keys); nothing was registered and no node was touched",
			backup.Vault, err, o.BackupItem)
	}
	v.BackupVaultUUID = bv.UUID
	switch {
	case fromBackup:
		_, found, err := onepassword.Require(ctx, backup.Vault, []onepassword.Need{{Title: o.BackupItem, Fields: map[string]string{
			"secrets.yaml": "the cluster's Talos secrets bundle in talosctl's secrets.yaml form, which pulumi up writes there; " +
				"a restore imports it, so put it back from another copy, or put secrets.yaml in the project directory instead",
		}}})
		if err != nil {
			return nil, fmt.Errorf("this stack has no state and homelab:cluster.adopt is true: the run would restore it, and the "+
				"running cluster's identity must be imported, never created (if the backup still sits in another vault, as before a "+
				"move, set homelab:onepassword.backupVault to that vault for the restore); nothing was registered and no node was touched: %w", err)
		}
		item := found[o.BackupItem]
		v.Backup = field(item, "secrets.yaml")
		v.BackupID = onepassword.ItemID(bv.UUID, item.UUID)
	case id.Restore || id.New:
		item, err := onepassword.Lookup(ctx, bv.UUID, backup.Vault, o.BackupItem)
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
				"the item (or set homelab:onepassword.backupItem to another title)", backup.Vault, o.BackupItem)
		}
		if item != nil {
			v.BackupID = onepassword.ItemID(bv.UUID, item.UUID)
		}
	}
	return v, logBackupMove(ctx, o, backup)
}

// logBackupMove says, in both runs of a move of the identity backup, what the run does with it.
func logBackupMove(ctx *pulumi.Context, o stackconfig.OnePassword, backup lifecycle.Backup) error {
	switch backup.Step {
	case lifecycle.BackupArm:
		return ctx.Log.Warn(fmt.Sprintf("the identity backup %q moves from vault %q to %q (homelab:onepassword.backupVault) in two runs, "+
			"so that no second copy ever exists: this run keeps it where it is and makes it deletable; the next pulumi up deletes it "+
			"there, then writes it to %q", o.BackupItem, backup.From, o.BackupVault, o.BackupVault), nil)
	case lifecycle.BackupMove:
		return ctx.Log.Warn(fmt.Sprintf("the identity backup %q moves from vault %q to %q: deleted there first, then written here "+
			"(the stack's state keeps the identity meanwhile)", o.BackupItem, backup.From, backup.Vault), nil)
	}
	return nil
}

// field is an item's field value ("" when absent: Require has checked the fields it needs).
func field(it *onepassword.Item, label string) string {
	if it == nil {
		return ""
	}
	v, _ := it.Field(label)
	return v
}
