package render

import (
	"errors"
	"fmt"
	"os"
	"strings"

	clientconfig "github.com/siderolabs/talos/pkg/machinery/client/config"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
)

// LoadSecrets reads a cluster's secrets bundle, talosctl's secrets.yaml (the stack's talosSecrets
// output), and refuses anything else with a message that says what the file is not: Talos's loader
// takes any YAML and leaves what it does not find nil, and the generator then dereferences it.
func LoadSecrets(path string) (*secrets.Bundle, error) {
	const hint = "pass the cluster's talosctl secrets.yaml: the stack's talosSecrets output " +
		"(pulumi stack output --show-secrets talosSecrets), or the vault backup item's secrets.yaml field"
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--secrets %s: %w", path, err)
	}
	if strings.TrimSpace(string(b)) == "" {
		return nil, fmt.Errorf("--secrets %s is empty: %s", path, hint)
	}
	bundle, err := secrets.LoadBundle(path)
	if err != nil {
		return nil, fmt.Errorf("--secrets %s is not a talosctl secrets.yaml (%v): %s", path, err, hint)
	}
	var missing []string
	if bundle.Cluster == nil || bundle.Cluster.ID == "" || bundle.Cluster.Secret == "" {
		missing = append(missing, "cluster")
	}
	if bundle.Secrets == nil || bundle.Secrets.BootstrapToken == "" {
		missing = append(missing, "secrets")
	}
	if bundle.TrustdInfo == nil || bundle.TrustdInfo.Token == "" {
		missing = append(missing, "trustdinfo")
	}
	c := bundle.Certs
	if c == nil || c.Etcd == nil || c.K8s == nil || c.K8sAggregator == nil || c.K8sServiceAccount == nil || c.OS == nil {
		missing = append(missing, "certs")
	}
	if len(missing) > 0 {
		what := "it"
		switch {
		case strings.Contains(string(b), "contexts:"):
			what = "it looks like a talosconfig"
		case strings.Contains(string(b), "machine:") || strings.Contains(string(b), "kind: "):
			what = "it looks like a machine config"
		}
		return nil, fmt.Errorf("--secrets %s is not a talosctl secrets.yaml: it has no %s section (%s): %s",
			path, strings.Join(missing, ", "), what, hint)
	}
	return bundle, nil
}

// CheckTalosconfig refuses a --talosconfig that is not a talosconfig with a context that holds a
// client certificate, before talosctl is given it.
func CheckTalosconfig(path string) error {
	const hint = "pass the stack's talosconfig output (mise run talosconfig writes it to ./talosconfig)"
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--talosconfig %s: %w", path, err)
	}
	if strings.TrimSpace(string(b)) == "" {
		return fmt.Errorf("--talosconfig %s is empty: %s", path, hint)
	}
	cfg, err := clientconfig.FromBytes(b)
	if err != nil {
		return fmt.Errorf("--talosconfig %s is not a talosconfig (%v): %s", path, err, hint)
	}
	ctx := cfg.Contexts[cfg.Context]
	if ctx == nil || ctx.Crt == "" || ctx.Key == "" {
		return fmt.Errorf("--talosconfig %s is not a talosconfig: %w: %s", path, errors.New("it has no current context with a client certificate"), hint)
	}
	return nil
}
