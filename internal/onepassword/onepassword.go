// Package onepassword is a minimal typed binding of the 1Password Pulumi provider
// (github.com/1Password/pulumi-onepassword, plugin "onepassword" v1.1.4, which bridges
// terraform-provider-onepassword v2.1.2) for exactly what this program uses: the getVault and
// getItem functions and the Item resource. It registers the real tokens through the Pulumi SDK's
// generic calls, with the plugin version and download URL, so `pulumi up` installs and runs the
// real plugin; and it marks secret what the generated SDK marks secret.
//
// The provider resource is the engine's default provider for the package, configured by the
// provider's own secret stack settings (onepassword:serviceAccountToken, or onepassword:url and
// onepassword:token). An explicit provider (pulumi:providers:onepassword) would have to be
// registered before the vault can be read; with the default one, a missing vault item stops the
// run with nothing registered.
//
// Why not the official SDK: the Go module github.com/1Password/pulumi-onepassword/sdk is refused by
// the module proxy this project builds with. To swap to it once it is served: require
// github.com/1Password/pulumi-onepassword/sdk v1.1.4, replace GetVault, GetItem and NewItem with
// onepassword.GetVault, onepassword.LookupItem and onepassword.NewItem (same tokens and field
// names), keep Require, and delete the rest of this package.
package onepassword

import (
	"fmt"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// The plugin and its tokens.
const (
	PluginVersion     = "1.1.4"
	PluginDownloadURL = "github://api.github.com/1Password/pulumi-onepassword"

	ItemType      = "onepassword:index/item:Item"
	GetItemToken  = "onepassword:index/getItem:getItem"
	GetVaultToken = "onepassword:index/getVault:getVault"
)

// plugin pins the plugin on every call, as the generated SDK does.
func plugin() []pulumi.ResourceOrInvokeOption {
	return []pulumi.ResourceOrInvokeOption{pulumi.Version(PluginVersion), pulumi.PluginDownloadURL(PluginDownloadURL)}
}

// Vault is the result of getVault.
type Vault struct {
	UUID string `pulumi:"uuid"`
	Name string `pulumi:"name"`
}

// GetVault looks a vault up by name.
func GetVault(ctx *pulumi.Context, name string, opts ...pulumi.InvokeOption) (*Vault, error) {
	var v Vault
	for _, o := range plugin() {
		opts = append(opts, o)
	}
	if err := ctx.Invoke(GetVaultToken, map[string]any{"name": name}, &v, opts...); err != nil {
		return nil, err
	}
	return &v, nil
}

// Field is one field of an item section.
type Field struct {
	ID      string `pulumi:"id"`
	Label   string `pulumi:"label"`
	Type    string `pulumi:"type"`
	Purpose string `pulumi:"purpose"`
	Value   string `pulumi:"value"`
}

// Section is one section of an item.
type Section struct {
	ID     string  `pulumi:"id"`
	Label  string  `pulumi:"label"`
	Fields []Field `pulumi:"fields"`
}

// Item is the result of getItem. Its values are secrets: never log them, and wrap any that
// leave this package in pulumi.ToSecret (invoke results carry no secret marks).
type Item struct {
	UUID     string    `pulumi:"uuid"`
	Title    string    `pulumi:"title"`
	Password string    `pulumi:"password"`
	Tags     []string  `pulumi:"tags"`
	Sections []Section `pulumi:"sections"`
}

// HasTag reports whether the item carries tag.
func (it *Item) HasTag(tag string) bool {
	for _, t := range it.Tags {
		if t == tag {
			return true
		}
	}
	return false
}

// GetItem reads an item by vault UUID and title.
func GetItem(ctx *pulumi.Context, vaultUUID, title string, opts ...pulumi.InvokeOption) (*Item, error) {
	var it Item
	for _, o := range plugin() {
		opts = append(opts, o)
	}
	if err := ctx.Invoke(GetItemToken, map[string]any{"vault": vaultUUID, "title": title}, &it, opts...); err != nil {
		return nil, err
	}
	return &it, nil
}

// ItemID is the provider's ID of an item, which an import takes: vaults/<vault UUID>/items/<item
// UUID> (terraform-provider-onepassword v2.1.2, internal/provider/onepassword_item_resource.go:445-458).
func ItemID(vaultUUID, itemUUID string) string {
	return "vaults/" + vaultUUID + "/items/" + itemUUID
}

// Lookup reads an item that may be absent: it returns nil without an error when the vault has no
// item of that title, and an error naming the fix when it has more than one (1Password allows
// that; a read by title then fails). Other errors are returned as they are.
func Lookup(ctx *pulumi.Context, vaultUUID, vault, title string, opts ...pulumi.InvokeOption) (*Item, error) {
	it, err := GetItem(ctx, vaultUUID, title, opts...)
	switch {
	case err == nil:
		return it, nil
	case absent(err):
		return nil, nil
	case duplicated(err):
		return nil, duplicateError(vault, title, err)
	}
	return nil, fmt.Errorf("1Password: reading item %q of vault %q: %w", title, vault, err)
}

// absent and duplicated classify a read by title that failed: the op CLI's own wording for a
// service account ("... isn't an item in the ... vault", "More than one item matches ..."), or the
// Connect SDK's ("Found N item(s) in vault ... with title ...": connect-sdk-go client.go:291-305).
func absent(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "isn't an item") || strings.Contains(msg, "found 0 item(s)")
}

func duplicated(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "more than one item matches") ||
		(strings.Contains(msg, " item(s) in vault ") && !strings.Contains(msg, "found 0 item(s)"))
}

func duplicateError(vault, title string, err error) error {
	return fmt.Errorf("1Password: vault %q holds more than one item titled %q, so none can be read by its title: keep the one "+
		"that is this cluster's (for the backup, the one whose secrets.yaml has this cluster's id) and archive or rename the "+
		"others (%v)", vault, title, err)
}

// Field returns the value of the field with this label in any section (or the item's password
// for the label "password"), and whether it exists and is not empty.
func (it *Item) Field(label string) (string, bool) {
	for _, s := range it.Sections {
		for _, f := range s.Fields {
			if f.Label == label && f.Value != "" {
				return f.Value, true
			}
		}
	}
	if label == "password" && it.Password != "" {
		return it.Password, true
	}
	return "", false
}

// ItemField is one field of an Item resource; its value is sent as a secret.
type ItemField struct {
	Label string
	// Type is a 1Password field type: STRING, CONCEALED, URL, ...
	Type  string
	Value pulumi.StringInput
}

// ItemArgs configures an Item resource.
type ItemArgs struct {
	// Vault is the vault's UUID.
	Vault    string
	Title    string
	Category string
	Tags     []string
	// Section holds Fields under one section label.
	Section string
	Fields  []ItemField
}

// ItemResource is an item the program writes to a vault.
type ItemResource struct {
	pulumi.CustomResourceState

	UUID pulumi.StringOutput `pulumi:"uuid"`
}

// NewItem registers an item.
func NewItem(ctx *pulumi.Context, name string, args ItemArgs, opts ...pulumi.ResourceOption) (*ItemResource, error) {
	fields := pulumi.Array{}
	for _, f := range args.Fields {
		fields = append(fields, pulumi.Map{
			"label": pulumi.String(f.Label),
			"type":  pulumi.String(f.Type),
			"value": pulumi.ToSecret(f.Value),
		})
	}
	props := pulumi.Map{
		"vault":    pulumi.String(args.Vault),
		"title":    pulumi.String(args.Title),
		"category": pulumi.String(args.Category),
		"tags":     pulumi.ToStringArray(args.Tags),
		"sections": pulumi.Array{pulumi.Map{"label": pulumi.String(args.Section), "fields": fields}},
	}
	it := &ItemResource{}
	opts = append(opts, pulumi.AdditionalSecretOutputs([]string{"noteValue", "password", "sections"}))
	for _, o := range plugin() {
		opts = append(opts, o)
	}
	if err := ctx.RegisterResource(ItemType, name, props, it, opts...); err != nil {
		return nil, fmt.Errorf("registering the 1Password item %s: %w", args.Title, err)
	}
	return it, nil
}

// Need is an item the cluster needs in the vault, with the fields it must have and, per field,
// what to put there.
type Need struct {
	Title  string
	Fields map[string]string
}

// Require reads every needed item from the vault (by name) and reports every missing vault, item
// or field at once, each with what to add. It only invokes functions, so on failure nothing has
// been registered and nothing applied. It returns the vault's UUID and the items by title.
func Require(ctx *pulumi.Context, vault string, needs []Need, opts ...pulumi.InvokeOption) (string, map[string]*Item, error) {
	v, err := GetVault(ctx, vault, opts...)
	if err != nil || v.UUID == "" {
		return "", nil, fmt.Errorf("1Password: cannot read vault %q (%v): create it, or set homelab:onepassword.vault, "+
			"and give the provider's account read and write access to it", vault, err)
	}
	items := map[string]*Item{}
	var problems []string
	for _, need := range needs {
		it, err := GetItem(ctx, v.UUID, need.Title, opts...)
		if err != nil && duplicated(err) {
			problems = append(problems, duplicateError(vault, need.Title, err).Error())
			continue
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("vault %q has no item %q (%v): add it with %s", vault, need.Title, err, describe(need.Fields, nil)))
			continue
		}
		var missing []string
		for label := range need.Fields {
			if _, ok := it.Field(label); !ok {
				missing = append(missing, label)
			}
		}
		if len(missing) > 0 {
			problems = append(problems, fmt.Sprintf("item %q in vault %q lacks %s: add %s", need.Title, vault, quoteAll(missing), describe(need.Fields, missing)))
			continue
		}
		items[need.Title] = it
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return "", nil, fmt.Errorf("1Password is missing what the cluster needs; nothing was applied:\n  - %s", strings.Join(problems, "\n  - "))
	}
	return v.UUID, items, nil
}

// describe lists fields as `field "x" (what)`, all of them or only those in only.
func describe(fields map[string]string, only []string) string {
	labels := only
	if labels == nil {
		for l := range fields {
			labels = append(labels, l)
		}
	}
	sort.Strings(labels)
	parts := make([]string, 0, len(labels))
	for _, l := range labels {
		parts = append(parts, fmt.Sprintf("field %q (%s)", l, fields[l]))
	}
	return strings.Join(parts, " and ")
}

func quoteAll(labels []string) string {
	sort.Strings(labels)
	q := make([]string, len(labels))
	for i, l := range labels {
		q[i] = fmt.Sprintf("%q", l)
	}
	return "field " + strings.Join(q, ", ")
}
