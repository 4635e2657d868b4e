// Command pulumi-resource-onepassword simulates the 1Password provider plugin
// (1Password/pulumi-onepassword 1.1.4, bridging terraform-provider-onepassword v2.1.2) for the
// lab, with a vault kept in $LAB_STATE/vault.json. getVault finds a vault by name ("No vault found
// with name ..." otherwise); getItem reads an item by title ("Unable to read item, got error: ..."
// for a missing one); an Item is written to the vault, and a change of vault or category
// replaces it (the only RequiresReplace attributes of the TF resource; the bridge marks none
// itself, provider/resources.go:124-129).
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"homelab/lab/sim/labevent"
	"homelab/lab/sim/simprov"
)

// Vault is the lab's 1Password: vaults by name, items by title, fields by label.
type Vault map[string]map[string]map[string]string

func main() {
	simprov.Main(simprov.Provider{
		Name: "onepassword", Version: "1.1.4",
		Resources: map[string]simprov.Resource{
			"onepassword:index/item:Item": {
				Replaces: []string{"vault", "category"},
				Create: func(r simprov.Request) (string, resource.PropertyMap, error) {
					out, err := write(r)
					return "vaults/" + simprov.Str(r.News, "vault") + "/items/" + simprov.Str(r.News, "title"), out, err
				},
				Update: write,
			},
		},
		Functions: map[string]func(resource.PropertyMap) (resource.PropertyMap, error){
			"onepassword:index/getVault:getVault": getVault,
			"onepassword:index/getItem:getItem":   getItem,
		},
	})
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
	var fields map[string]string
	err := update(func(v Vault) error {
		item, ok := v[vault][title]
		if !ok {
			return fmt.Errorf("Unable to read item, got error: item %q not found in vault %q", title, vault)
		}
		fields = item
		return nil
	})
	labevent.Log(labevent.Dir(), labevent.Event{Actor: "onepassword", Op: "read-item", Detail: title})
	if err != nil {
		return nil, err
	}
	labels := make([]string, 0, len(fields))
	for l := range fields {
		labels = append(labels, l)
	}
	sort.Strings(labels)
	var fs []any
	for _, l := range labels {
		fs = append(fs, map[string]any{"id": l, "label": l, "type": "CONCEALED", "purpose": "", "value": fields[l]})
	}
	return resource.NewPropertyMapFromMap(map[string]any{
		"id": "vaults/" + vault + "/items/" + title, "uuid": title, "vault": vault, "title": title,
		"sections": []any{map[string]any{"id": "s", "label": "", "fields": fs}},
	}), nil
}

func write(r simprov.Request) (resource.PropertyMap, error) {
	vault, title := simprov.Str(r.News, "vault"), simprov.Str(r.News, "title")
	fields := map[string]string{}
	sections := r.News["sections"]
	for sections.IsSecret() {
		sections = sections.SecretValue().Element
	}
	if sections.IsArray() {
		for _, sec := range sections.ArrayValue() {
			for sec.IsSecret() {
				sec = sec.SecretValue().Element
			}
			fv := sec.ObjectValue()["fields"]
			for fv.IsSecret() {
				fv = fv.SecretValue().Element
			}
			for _, f := range fv.ArrayValue() {
				for f.IsSecret() {
					f = f.SecretValue().Element
				}
				fields[simprov.Str(f.ObjectValue(), "label")] = simprov.Str(f.ObjectValue(), "value")
			}
		}
	}
	err := update(func(v Vault) error {
		if v[vault] == nil {
			return fmt.Errorf("1Password Item create error: vault %q not found", vault)
		}
		v[vault][title] = fields
		return nil
	})
	if err != nil {
		return nil, err
	}
	labevent.Log(labevent.Dir(), labevent.Event{Actor: "onepassword", Op: "write-item", Detail: title})
	out := r.News.Copy()
	out["uuid"] = resource.NewStringProperty(title)
	return out, nil
}
