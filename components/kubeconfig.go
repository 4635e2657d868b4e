package components

import (
	"bytes"
	"fmt"

	"gopkg.in/yaml.v3"
)

// WithServer returns kubeconfig with every cluster's server set to server, or kubeconfig as it is
// when every server already is.
func WithServer(kubeconfig, server string) (string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(kubeconfig), &doc); err != nil {
		return "", fmt.Errorf("the kubeconfig Talos served does not parse: %w", err)
	}
	changed := false
	var walk func(n *yaml.Node, inCluster bool)
	walk = func(n *yaml.Node, inCluster bool) {
		switch n.Kind {
		case yaml.DocumentNode, yaml.SequenceNode:
			for _, c := range n.Content {
				walk(c, inCluster)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				switch {
				case inCluster && k.Value == "server" && v.Kind == yaml.ScalarNode:
					if v.Value != server {
						v.Value, changed = server, true
					}
				case k.Value == "clusters" || (k.Value == "cluster" && v.Kind == yaml.MappingNode):
					walk(v, true)
				case v.Kind == yaml.SequenceNode && inCluster:
					walk(v, true)
				}
			}
		}
	}
	walk(&doc, false)
	if !changed {
		return kubeconfig, nil
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(4)
	if err := enc.Encode(&doc); err != nil {
		return "", err
	}
	return out.String(), nil
}
