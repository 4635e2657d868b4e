// Command pulumi-resource-talos simulates the Talos provider (pulumiverse/pulumi-talos 0.7.1) for
// the lab: the same tokens and property names, and nodes that behave like Talos 1.11.5 where the
// program depends on it. Maintenance mode accepts only the auto, reboot and try apply modes; auto
// reboots exactly when a reboot setting changed; no_reboot refuses such a change; staged applies
// at the next reboot; a reboot takes $LAB_REBOOT_MS; a second bootstrap fails like Talos's; health
// waits while a node reboots. Every node operation is logged to $LAB_STATE/events.jsonl.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/siderolabs/image-factory/pkg/schematic"
	"gopkg.in/yaml.v3"

	"homelab/internal/lab/labstate"
	"homelab/internal/lab/simprov"
)

// timeout bounds every wait, as the provider's 10-minute timeouts do on real nodes.
const timeout = 60 * time.Second

// applyTime is how long an accepted config apply takes, so parallel applies overlap visibly.
const applyTime = 300 * time.Millisecond

// rebootSettings are the config paths a change of which Talos applies only with a reboot.
var rebootSettings = []string{"cluster.network.cni.name", "cluster.proxy.disabled", "machine.install.image", "machine.install.extraKernelArgs"}

func main() {
	simprov.Main(simprov.Provider{
		Name: "talos", Version: "0.7.1",
		Resources: map[string]simprov.Resource{
			"talos:machine/secrets:Secrets":                       {Replaces: []string{"talosVersion"}, Create: createSecrets},
			"talos:machine/configurationApply:ConfigurationApply": {Create: applyCreate, Update: applyUpdate, Delete: applyDelete},
			"talos:machine/bootstrap:Bootstrap":                   {Create: bootstrap},
			"talos:cluster/kubeconfig:Kubeconfig":                 {Create: kubeconfig},
			"talos:imageFactory/schematic:Schematic":              {Create: createSchematic},
		},
		Functions: map[string]func(resource.PropertyMap) (resource.PropertyMap, error){
			"talos:machine/getConfiguration:getConfiguration": machineConfiguration,
			"talos:client/getConfiguration:getConfiguration":  clientConfiguration,
			"talos:cluster/getHealth:getHealth":               health,
		},
	})
}

func withOutputs(in resource.PropertyMap, extra map[string]any) resource.PropertyMap {
	out := in.Copy()
	for k, v := range resource.NewPropertyMapFromMap(extra) {
		out[k] = v
	}
	return out
}

func createSecrets(r simprov.Request) (string, resource.PropertyMap, error) {
	pair := func(name string) map[string]any {
		return map[string]any{"cert": "LAB-CERT-" + name, "key": "LAB-SECRET-KEY-" + name}
	}
	return "machine_secrets", withOutputs(r.News, map[string]any{
		"machineSecrets": map[string]any{
			"certs": map[string]any{
				"etcd": pair("etcd"), "k8s": pair("k8s"), "k8sAggregator": pair("aggregator"), "os": pair("os"),
				"k8sServiceaccount": map[string]any{"key": "LAB-SECRET-KEY-serviceaccount"},
			},
			"cluster":    map[string]any{"id": "lab-cluster-id", "secret": "LAB-SECRET-cluster"},
			"secrets":    map[string]any{"bootstrapToken": "LAB-SECRET-bootstraptoken", "secretboxEncryptionSecret": "LAB-SECRET-secretbox"},
			"trustdinfo": map[string]any{"token": "LAB-SECRET-trustd"},
		},
		"clientConfiguration": map[string]any{"caCertificate": "LAB-CERT-ca", "clientCertificate": "LAB-CERT-admin", "clientKey": "LAB-SECRET-KEY-admin"},
	}), nil
}

func createSchematic(r simprov.Request) (string, resource.PropertyMap, error) {
	s, err := schematic.Unmarshal([]byte(simprov.Str(r.News, "schematic")))
	if err != nil {
		return "", nil, err
	}
	id, err := s.ID()
	if err != nil {
		return "", nil, err
	}
	labstate.Log(labstate.Dir(), labstate.Event{Actor: "talos", Op: "schematic", Detail: id})
	return id, r.News.Copy(), nil
}

// configOf reads what matters of the config an apply sends: its hostname and reboot settings
// from the patches, and a hash of the whole.
func configOf(in resource.PropertyMap) *labstate.Config {
	c := &labstate.Config{Reboot: map[string]string{}}
	h := sha256.New()
	h.Write([]byte(simprov.Str(in, "machineConfigurationInput")))
	for _, p := range simprov.Strings(in, "configPatches") {
		h.Write([]byte(p))
		var doc map[string]any
		if yaml.Unmarshal([]byte(p), &doc) != nil {
			continue
		}
		if v, ok := lookup(doc, "machine.network.hostname"); ok {
			c.Hostname = fmt.Sprint(v)
		}
		for _, s := range rebootSettings {
			if v, ok := lookup(doc, s); ok {
				c.Reboot[s] = fmt.Sprint(v)
			}
		}
	}
	c.Hash = hex.EncodeToString(h.Sum(nil))
	return c
}

func lookup(doc map[string]any, path string) (any, bool) {
	var cur any = doc
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func needsReboot(running, next *labstate.Config) bool {
	if running == nil {
		return true
	}
	for _, s := range rebootSettings {
		if running.Reboot[s] != next.Reboot[s] {
			return true
		}
	}
	return false
}

func applyCreate(r simprov.Request) (string, resource.PropertyMap, error) {
	out, err := apply(r)
	return "machine_configuration_apply", out, err
}

func applyUpdate(r simprov.Request) (resource.PropertyMap, error) { return apply(r) }

// apply pushes a config to a node like Talos's ApplyConfiguration.
func apply(r simprov.Request) (resource.PropertyMap, error) {
	dir, addr := labstate.Dir(), simprov.Str(r.News, "node")
	mode := simprov.Str(r.News, "applyMode")
	if mode == "" {
		mode = "auto"
	}
	next := configOf(r.News)
	// The provider retries while the node is unreachable (rebooting), until its timeout.
	if err := labstate.Wait(dir, timeout, func(s *labstate.State) error {
		n, ok := s.Nodes[addr]
		switch {
		case !ok:
			return nil
		case n.Mode == labstate.Rebooting:
			return fmt.Errorf("node %s is rebooting", addr)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	start := time.Now()
	time.Sleep(applyTime)
	ev := labstate.Event{Actor: "talos", Node: addr, Start: start, Detail: r.Name + " mode " + mode}
	var opErr error
	err := labstate.Update(dir, func(s *labstate.State) error {
		n, ok := s.Nodes[addr]
		if !ok {
			opErr = fmt.Errorf("rpc error: code = Unavailable desc = connection error: dial tcp %s:50000: no route to host", addr)
			return nil
		}
		switch {
		case n.Mode == labstate.Maintenance:
			if mode != "auto" && mode != "reboot" && mode != "try" {
				opErr = fmt.Errorf("rpc error: code = Unimplemented desc = apply mode %s is not supported in maintenance mode", strings.ToUpper(mode))
				return nil
			}
			n.Staged = next
			ev.Op = "install"
			ev.Start, ev.End = s.Reboot(n)
		case mode == "staged":
			n.Staged = next
			ev.Op, ev.End = "stage", time.Now()
		case mode == "no_reboot" && needsReboot(n.Config, next):
			opErr = errors.New("rpc error: code = InvalidArgument desc = apply mode no_reboot: configuration change requires a reboot")
		case mode == "reboot" || (mode == "auto" && needsReboot(n.Config, next)):
			n.Staged = next
			ev.Op = "reboot"
			ev.Start, ev.End = s.Reboot(n)
		default:
			n.Config = next
			ev.Op, ev.End = "apply-live", time.Now()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if opErr != nil {
		labstate.Log(dir, labstate.Event{Actor: "talos", Op: "apply-refused", Node: addr, Detail: opErr.Error()})
		return nil, opErr
	}
	labstate.Log(dir, ev)
	return withOutputs(r.News, map[string]any{
		"machineConfiguration": resource.MakeSecret(resource.NewStringProperty("# lab machine config " + next.Hash)),
		"resolvedApplyMode":    mode,
	}), nil
}

func applyDelete(r simprov.Request) error {
	od := r.OldInputs["onDestroy"]
	for od.IsSecret() {
		od = od.SecretValue().Element
	}
	if od.IsObject() && od.ObjectValue()["reset"].IsBool() && od.ObjectValue()["reset"].BoolValue() {
		addr := simprov.Str(r.OldInputs, "node")
		labstate.Log(labstate.Dir(), labstate.Event{Actor: "talos", Op: "reset", Node: addr})
		return labstate.Update(labstate.Dir(), func(s *labstate.State) error {
			if n := s.Nodes[addr]; n != nil {
				n.Mode, n.Config, n.Staged = labstate.Maintenance, nil, nil
			}
			return nil
		})
	}
	return nil
}

func bootstrap(r simprov.Request) (string, resource.PropertyMap, error) {
	dir, addr := labstate.Dir(), simprov.Str(r.News, "node")
	if err := labstate.Wait(dir, timeout, func(s *labstate.State) error {
		if n := s.Nodes[addr]; n == nil || n.Mode != labstate.Running {
			return fmt.Errorf("rpc error: code = Unimplemented desc = method Bootstrap not implemented (node %s not configured)", addr)
		}
		return nil
	}); err != nil {
		return "", nil, err
	}
	var opErr error
	err := labstate.Update(dir, func(s *labstate.State) error {
		if s.Bootstrapped {
			opErr = errors.New("rpc error: code = AlreadyExists desc = etcd data directory is not empty")
			return nil
		}
		s.Bootstrapped = true
		cfg := s.Nodes[addr].Config
		if cfg.Reboot["cluster.network.cni.name"] != "none" {
			s.DaemonSets["kube-flannel"] = true
		}
		if cfg.Reboot["cluster.proxy.disabled"] != "true" {
			s.DaemonSets["kube-proxy"] = true
		}
		return nil
	})
	if err != nil {
		return "", nil, err
	}
	if opErr != nil {
		labstate.Log(dir, labstate.Event{Actor: "talos", Op: "bootstrap-refused", Node: addr, Detail: opErr.Error()})
		return "", nil, opErr
	}
	labstate.Log(dir, labstate.Event{Actor: "talos", Op: "bootstrap", Node: addr})
	return "machine_bootstrap", r.News.Copy(), nil
}

func kubeconfig(r simprov.Request) (string, resource.PropertyMap, error) {
	dir, addr := labstate.Dir(), simprov.Str(r.News, "node")
	if err := labstate.Wait(dir, timeout, func(s *labstate.State) error {
		if n := s.Nodes[addr]; !s.Bootstrapped || n == nil || n.Mode != labstate.Running {
			return errors.New("the API server is not up")
		}
		return nil
	}); err != nil {
		return "", nil, err
	}
	labstate.Log(dir, labstate.Event{Actor: "talos", Op: "kubeconfig", Node: addr})
	return "cluster_kubeconfig", withOutputs(r.News, map[string]any{
		"kubeconfigRaw": "apiVersion: v1\nkind: Config\n# LAB-KUBECONFIG-SECRET\n",
		"kubernetesClientConfiguration": map[string]any{
			"host": "https://" + addr + ":6443", "caCertificate": "LAB-CERT-k8s", "clientCertificate": "LAB-CERT-k8s-admin", "clientKey": "LAB-SECRET-KEY-k8s-admin",
		},
	}), nil
}

func machineConfiguration(args resource.PropertyMap) (resource.PropertyMap, error) {
	return withOutputs(args, map[string]any{
		"id":                   simprov.Str(args, "clusterName"),
		"machineConfiguration": "version: v1alpha1\n# lab base config of " + simprov.Str(args, "clusterName") + ", " + simprov.Str(args, "machineType") + ", contract " + simprov.Str(args, "talosVersion") + "\n",
	}), nil
}

func clientConfiguration(args resource.PropertyMap) (resource.PropertyMap, error) {
	return withOutputs(args, map[string]any{
		"id":          simprov.Str(args, "clusterName"),
		"talosConfig": "context: " + simprov.Str(args, "clusterName") + "\n# LAB-TALOSCONFIG-SECRET\nendpoints: " + strings.Join(simprov.Strings(args, "endpoints"), ",") + "\n",
	}), nil
}

// health waits, like talosctl health, until etcd runs and no node is down.
func health(args resource.PropertyMap) (resource.PropertyMap, error) {
	dir := labstate.Dir()
	labstate.Log(dir, labstate.Event{Actor: "talos", Op: "health", Detail: strings.Join(simprov.Strings(args, "controlPlaneNodes"), ",")})
	if err := labstate.Wait(dir, timeout, func(s *labstate.State) error { return s.Healthy() }); err != nil {
		return nil, fmt.Errorf("cluster is not healthy: %w", err)
	}
	return withOutputs(args, map[string]any{"id": "cluster_health"}), nil
}
