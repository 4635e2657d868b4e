package components

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
	"github.com/pulumiverse/pulumi-talos/sdk/go/talos/machine"
	"gopkg.in/yaml.v3"

	"homelab/internal/onepassword"
)

// ClusterBackupArgs configures the backup of the cluster identity.
type ClusterBackupArgs struct {
	// VaultUUID is the vault's UUID. Required.
	VaultUUID string
	// Title is the item's title. Required.
	Title string
	// Secrets is the cluster identity to back up. Required.
	Secrets *ClusterSecrets
	// Talosconfig is the admin talosconfig (secret). Required.
	Talosconfig pulumi.StringInput
	// Existing is the provider ID of the backup item already in the vault (a restore), which
	// this run adopts instead of adding a second item of the same title. Optional.
	Existing string
	// StackTag is a tag naming the stack that writes the item (StackTag()). Required.
	StackTag string
	// Deletable registers the item to be deleted, not kept, when it is replaced or removed: for the
	// two runs of a move between vaults (lifecycle.PlanBackup), the second of which replaces it
	// deleting the old item first, so no second copy exists. Otherwise the item outlives the stack.
	Deletable bool
}

// StackTag is the tag a stack's backup item carries: a new cluster's first run that stopped
// half-way has written its item already, and its next run must know the item as its own.
func StackTag(project, stack string) string { return "pulumi-stack/" + project + "/" + stack }

// ClusterBackup writes the Talos secrets bundle (in talosctl's secrets.yaml form) and the
// talosconfig to a 1Password item, so losing the Pulumi state does not lose the cluster. Destroy
// leaves the item in the vault.
//
// There is only ever one item of the title: a restore imports the item it restored from, taking
// its fields as they are for that run (the restore renewed the admin client certificate, so the
// next run writes the new talosconfig to the item, in place). The category is never compared:
// a change would replace the item, and with RetainOnDelete leave the old one beside the new.
type ClusterBackup struct {
	pulumi.ResourceState

	// Item is the vault item.
	Item *onepassword.ItemResource
}

// NewClusterBackup registers the item.
func NewClusterBackup(ctx *pulumi.Context, name string, args *ClusterBackupArgs, opts ...pulumi.ResourceOption) (*ClusterBackup, error) {
	b := &ClusterBackup{}
	if err := ctx.RegisterComponentResource(backupType, name, b, opts...); err != nil {
		return nil, err
	}
	bundle := pulumi.ToSecret(args.Secrets.MachineSecrets.ApplyT(SecretsYAML)).(pulumi.StringOutput)
	item, err := onepassword.NewItem(ctx, name, onepassword.ItemArgs{
		Vault:    args.VaultUUID,
		Title:    args.Title,
		Category: "secure_note",
		Tags:     []string{"talos", "pulumi", args.StackTag},
		Section:  "talos",
		Fields: []onepassword.ItemField{
			{Label: "secrets.yaml", Type: "CONCEALED", Value: pulumi.ToSecret(bundle).(pulumi.StringOutput)},
			{Label: "talosconfig", Type: "CONCEALED", Value: args.Talosconfig},
		},
	}, backupOptions(b, args.Existing, args.Deletable)...)
	if err != nil {
		return nil, err
	}
	b.Item = item
	if err := ctx.RegisterResourceOutputs(b, pulumi.Map{}); err != nil {
		return nil, err
	}
	return b, nil
}

func backupOptions(parent pulumi.Resource, existing string, deletable bool) []pulumi.ResourceOption {
	opts := []pulumi.ResourceOption{
		pulumi.Parent(parent),
		// The backup outlives the stack, but for a move between vaults.
		pulumi.RetainOnDelete(!deletable),
		// A replacement (a move to another vault) deletes the old item before it creates the new.
		pulumi.DeleteBeforeReplace(true),
	}
	if existing == "" {
		return append(opts, pulumi.IgnoreChanges([]string{"category"}))
	}
	// An item edited by hand may also hold a note, a URL, a username or a password: the import
	// takes those as they are too.
	return append(opts, pulumi.Import(pulumi.ID(existing)),
		pulumi.IgnoreChanges([]string{"category", "noteValue", "password", "sections", "tags", "url", "username"}))
}

// SecretsYAML writes a bundle in the form of talosctl's secrets.yaml (`talosctl gen secrets`),
// which `pulumi import` of the secrets resource, `talosctl gen config --with-secrets` and
// cmd/render --secrets all read.
func SecretsYAML(s machine.MachineSecrets) (string, error) {
	type pair struct {
		Crt string `yaml:"crt,omitempty"`
		Key string `yaml:"key"`
	}
	doc := struct {
		Cluster struct {
			ID     string `yaml:"id"`
			Secret string `yaml:"secret"`
		} `yaml:"cluster"`
		Secrets struct {
			BootstrapToken            string `yaml:"bootstraptoken"`
			SecretboxEncryptionSecret string `yaml:"secretboxencryptionsecret,omitempty"`
			AESCBCEncryptionSecret    string `yaml:"aescbcencryptionsecret,omitempty"`
		} `yaml:"secrets"`
		TrustdInfo struct {
			Token string `yaml:"token"`
		} `yaml:"trustdinfo"`
		Certs struct {
			Etcd              pair `yaml:"etcd"`
			K8s               pair `yaml:"k8s"`
			K8sAggregator     pair `yaml:"k8saggregator"`
			K8sServiceAccount pair `yaml:"k8sserviceaccount"`
			OS                pair `yaml:"os"`
		} `yaml:"certs"`
	}{}
	doc.Cluster.ID, doc.Cluster.Secret = s.Cluster.Id, s.Cluster.Secret
	doc.Secrets.BootstrapToken = s.Secrets.BootstrapToken
	doc.Secrets.SecretboxEncryptionSecret = s.Secrets.SecretboxEncryptionSecret
	if s.Secrets.AescbcEncryptionSecret != nil {
		doc.Secrets.AESCBCEncryptionSecret = *s.Secrets.AescbcEncryptionSecret
	}
	doc.TrustdInfo.Token = s.Trustdinfo.Token
	doc.Certs.Etcd = pair{s.Certs.Etcd.Cert, s.Certs.Etcd.Key}
	doc.Certs.K8s = pair{s.Certs.K8s.Cert, s.Certs.K8s.Key}
	doc.Certs.K8sAggregator = pair{s.Certs.K8sAggregator.Cert, s.Certs.K8sAggregator.Key}
	doc.Certs.K8sServiceAccount = pair{Key: s.Certs.K8sServiceaccount.Key}
	doc.Certs.OS = pair{s.Certs.Os.Cert, s.Certs.Os.Key}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return "", fmt.Errorf("writing the secrets bundle: %w", err)
	}
	return string(out), nil
}
