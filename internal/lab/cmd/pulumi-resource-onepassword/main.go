// Command pulumi-resource-onepassword simulates the 1Password provider (pulumi-onepassword 1.1.4)
// for the lab: getVault and getItem serve the fixture vault in the lab state; Item writes there.
package main

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"homelab/internal/lab/labstate"
	"homelab/internal/lab/simprov"
)

const vault = "kubernetes"

func main() {
	simprov.Main(simprov.Provider{
		Name: "onepassword", Version: "1.1.4",
		Resources: map[string]simprov.Resource{
			"onepassword:index/item:Item": {
				Replaces: []string{"vault"},
				Create: func(r simprov.Request) (string, resource.PropertyMap, error) {
					out, err := write(r)
					return "item-" + simprov.Str(r.News, "title"), out, err
				},
				Update: write,
			},
		},
		Functions: map[string]func(resource.PropertyMap) (resource.PropertyMap, error){
			"onepassword:index/getVault:getVault": func(args resource.PropertyMap) (resource.PropertyMap, error) {
				if simprov.Str(args, "name") != vault {
					return nil, fmt.Errorf("vault %q not found", simprov.Str(args, "name"))
				}
				return resource.NewPropertyMapFromMap(map[string]any{"name": vault, "uuid": "lab-vault-uuid", "description": ""}), nil
			},
			"onepassword:index/getItem:getItem": getItem,
		},
	})
}

func getItem(args resource.PropertyMap) (resource.PropertyMap, error) {
	title := simprov.Str(args, "title")
	s, err := labstate.Read(labstate.Dir())
	if err != nil {
		return nil, err
	}
	labstate.Log(labstate.Dir(), labstate.Event{Actor: "onepassword", Op: "read-item", Detail: title})
	fields, ok := s.Vault[title]
	if !ok {
		return nil, fmt.Errorf("error looking up item %q: item not found", title)
	}
	var fs []any
	for label, value := range fields {
		fs = append(fs, map[string]any{"id": label, "label": label, "type": "CONCEALED", "purpose": "", "value": value})
	}
	return resource.NewPropertyMapFromMap(map[string]any{
		"id": "item-" + title, "uuid": "item-" + title, "vault": simprov.Str(args, "vault"), "title": title,
		"sections": []any{map[string]any{"id": "s", "label": "", "fields": fs}},
	}), nil
}

func write(r simprov.Request) (resource.PropertyMap, error) {
	title := simprov.Str(r.News, "title")
	fields := map[string]string{}
	sections := r.News["sections"]
	for sections.IsSecret() {
		sections = sections.SecretValue().Element
	}
	for _, sec := range sections.ArrayValue() {
		fv := sec.ObjectValue()["fields"]
		for fv.IsSecret() {
			fv = fv.SecretValue().Element
		}
		for _, f := range fv.ArrayValue() {
			fields[simprov.Str(f.ObjectValue(), "label")] = simprov.Str(f.ObjectValue(), "value")
		}
	}
	err := labstate.Update(labstate.Dir(), func(s *labstate.State) error {
		s.Written[title] = fields
		return nil
	})
	if err != nil {
		return nil, err
	}
	labstate.Log(labstate.Dir(), labstate.Event{Actor: "onepassword", Op: "write-item", Detail: title})
	out := r.News.Copy()
	out["uuid"] = resource.NewStringProperty("item-" + title)
	return out, nil
}
