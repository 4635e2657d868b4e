// Command pulumi-resource-onepassword simulates the 1Password provider plugin
// (1Password/pulumi-onepassword 1.1.4, bridging terraform-provider-onepassword v2.1.2) for the
// lab, with a vault kept in $LAB_STATE/vault.json. Items have a UUID and a title, and titles need
// not be unique, as in 1Password. getVault finds a vault by name ("No vault found with name ..."
// otherwise); getItem reads an item (its tags and fields: onepassword_item_data_source.go:160,301-306) by title or UUID through the op CLI (`op item get <title>
// --vault <uuid>`: cli/op.go:99-114), which fails on no match and on more than one, and the data
// source reports "Unable to read item, got error: ..." (onepassword_item_data_source.go:286). The
// op CLI is closed source: its two messages are its wording as printed, not cited from code. An
// Item's create always adds a new item (cli/op.go:116-124), even when one of that title exists;
// its ID is vaults/<vault>/items/<item> (onepassword_item_resource.go:449-458), which an import
// takes as is (:445-447); a change of vault or category replaces it (the only RequiresReplace
// attributes of the TF resource, :160,172; the bridge marks none itself, provider/resources.go:124-129).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"homelab/lab/simkit/labevent"
	"homelab/lab/simkit/simprov"
)

// Vault is the lab's 1Password: vaults by name, each a list of items.
type Vault map[string][]Item

// Item is one vault item; fields are by label.
type Item struct {
	UUID     string            `json:"uuid"`
	Title    string            `json:"title"`
	Category string            `json:"category,omitempty"`
	Tags     []string          `json:"tags,omitempty"`
	Section  string            `json:"section,omitempty"`
	Fields   map[string]string `json:"fields"`
}

func main() {
	simprov.Main(simprov.Provider{
		Name: "onepassword", Version: "1.1.4",
		Resources: map[string]simprov.Resource{
			"onepassword:index/item:Item": {
				Replaces: []string{"vault", "category"},
				Create: func(r simprov.Request) (string, resource.PropertyMap, error) {
					return write(r, "")
				},
				Update: func(r simprov.Request) (resource.PropertyMap, error) {
					_, out, err := write(r, r.ID)
					return out, err
				},
				Read: read,
			},
		},
		Functions: map[string]func(resource.PropertyMap) (resource.PropertyMap, error){
			"onepassword:index/getVault:getVault": getVault,
			"onepassword:index/getItem:getItem":   getItem,
		},
	})
}

func itemID(vault, uuid string) string { return "vaults/" + vault + "/items/" + uuid }

// find returns the items of vault whose title or UUID is key, as `op item get` matches them.
func find(v Vault, vault, key string) []*Item {
	var out []*Item
	for i := range v[vault] {
		if it := &v[vault][i]; it.Title == key || it.UUID == key {
			out = append(out, it)
		}
	}
	return out
}

// one is `op item get key --vault vault`: exactly one item, or op's error.
func one(v Vault, vault, key string) (*Item, error) {
	switch found := find(v, vault, key); len(found) {
	case 0:
		return nil, fmt.Errorf("%q isn't an item in the %q vault. Specify the item with its UUID, name, or domain", key, vault)
	case 1:
		return found[0], nil
	default:
		ids := make([]string, len(found))
		for i, it := range found {
			ids[i] = it.UUID
		}
		return nil, fmt.Errorf("More than one item matches %q. Try again and specify the item by its ID:\n%s", key, strings.Join(ids, "\n"))
	}
}

// update reads and changes the vault file under a lock.
func update(fn func(Vault) error) error {
	path := filepath.Join(labevent.Dir(), "vault.json")
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	v := Vault{}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := fn(v); err != nil {
		return err
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// Vault UUIDs in the lab are the vault names.
func getVault(args resource.PropertyMap) (resource.PropertyMap, error) {
	name := simprov.Str(args, "name")
	var found bool
	err := update(func(v Vault) error { _, found = v[name]; return nil })
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("No vault found with name '%s'", name)
	}
	return resource.NewPropertyMapFromMap(map[string]any{"name": name, "uuid": name, "description": ""}), nil
}

func getItem(args resource.PropertyMap) (resource.PropertyMap, error) {
	vault, title := simprov.Str(args, "vault"), simprov.Str(args, "title")
	var item Item
	err := update(func(v Vault) error {
		it, err := one(v, vault, title)
		if err != nil {
			return fmt.Errorf("Unable to read item, got error: %w", err)
		}
		item = *it
		return nil
	})
	labevent.Log(labevent.Dir(), labevent.Event{Actor: "onepassword", Op: "read-item", Detail: title})
	if err != nil {
		return nil, err
	}
	fs := fields(&item, func(f map[string]any, label string) { f["id"], f["purpose"] = label, "" })
	return resource.NewPropertyMapFromMap(map[string]any{
		"id": itemID(vault, item.UUID), "uuid": item.UUID, "vault": vault, "title": item.Title, "tags": tags(&item),
		"sections": []any{map[string]any{"id": "s", "label": item.Section, "fields": fs}},
	}), nil
}

// fields are an item's fields by label, in label order; more adds what one reading shows besides.
func fields(it *Item, more func(f map[string]any, label string)) []any {
	labels := make([]string, 0, len(it.Fields))
	for l := range it.Fields {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	var out []any
	for _, l := range labels {
		f := map[string]any{"label": l, "type": "CONCEALED", "value": it.Fields[l]}
		if more != nil {
			more(f, l)
		}
		out = append(out, f)
	}
	return out
}

func tags(it *Item) []any {
	out := make([]any, len(it.Tags))
	for i, t := range it.Tags {
		out[i] = t
	}
	return out
}

// inputs is an item as the provider's state holds it: what an import reads back.
func inputs(vault string, it *Item) resource.PropertyMap {
	m := map[string]any{"vault": vault, "title": it.Title, "sections": []any{map[string]any{"label": it.Section, "fields": fields(it, nil)}}}
	if it.Category != "" {
		m["category"] = it.Category
	}
	if len(it.Tags) > 0 {
		m["tags"] = tags(it)
	}
	return resource.NewPropertyMapFromMap(m)
}

// read answers an import by ID (vaults/<vault>/items/<uuid>); a refresh keeps the state.
func read(r simprov.Request) (string, resource.PropertyMap, resource.PropertyMap, error) {
	if len(r.Olds) > 0 {
		return r.ID, r.Olds, r.OldInputs, nil
	}
	parts := strings.Split(r.ID, "/")
	if len(parts) != 4 || parts[0] != "vaults" || parts[2] != "items" {
		return "", nil, nil, fmt.Errorf("invalid ID %q: want vaults/<vault>/items/<item>", r.ID)
	}
	var in resource.PropertyMap
	err := update(func(v Vault) error {
		it, err := one(v, parts[1], parts[3])
		if err != nil {
			return err
		}
		in = inputs(parts[1], it)
		return nil
	})
	if err != nil {
		return "", nil, nil, err
	}
	out := in.Copy()
	out["uuid"] = resource.NewStringProperty(parts[3])
	labevent.Log(labevent.Dir(), labevent.Event{Actor: "onepassword", Op: "import-item", Detail: simprov.Str(in, "title")})
	return r.ID, out, in, nil
}

// write creates an item (id "") or rewrites the item of id.
func write(r simprov.Request, id string) (string, resource.PropertyMap, error) {
	vault, title := simprov.Str(r.News, "vault"), simprov.Str(r.News, "title")
	it := Item{Title: title, Category: simprov.Str(r.News, "category"), Fields: map[string]string{}}
	if tags := r.News["tags"]; tags.IsArray() {
		for _, t := range tags.ArrayValue() {
			it.Tags = append(it.Tags, t.StringValue())
		}
	}
	sections := r.News["sections"]
	for sections.IsSecret() {
		sections = sections.SecretValue().Element
	}
	if sections.IsArray() {
		for _, sec := range sections.ArrayValue() {
			for sec.IsSecret() {
				sec = sec.SecretValue().Element
			}
			it.Section = simprov.Str(sec.ObjectValue(), "label")
			fv := sec.ObjectValue()["fields"]
			for fv.IsSecret() {
				fv = fv.SecretValue().Element
			}
			for _, f := range fv.ArrayValue() {
				for f.IsSecret() {
					f = f.SecretValue().Element
				}
				it.Fields[simprov.Str(f.ObjectValue(), "label")] = simprov.Str(f.ObjectValue(), "value")
			}
		}
	}
	err := update(func(v Vault) error {
		if _, ok := v[vault]; !ok {
			return fmt.Errorf("1Password Item create error: vault %q not found", vault)
		}
		if id == "" {
			it.UUID = fmt.Sprintf("item%d", time.Now().UnixNano())
			v[vault] = append(v[vault], it)
			id = itemID(vault, it.UUID)
			return nil
		}
		parts := strings.Split(id, "/")
		if len(parts) != 4 {
			return fmt.Errorf("invalid ID %q", id)
		}
		old, err := one(v, vault, parts[3])
		if err != nil {
			return err
		}
		it.UUID = old.UUID
		*old = it
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	labevent.Log(labevent.Dir(), labevent.Event{Actor: "onepassword", Op: "write-item", Detail: title})
	out := r.News.Copy()
	out["uuid"] = resource.NewStringProperty(it.UUID)
	return id, out, nil
}
