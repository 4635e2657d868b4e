package stackconfig_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	_ "homelab/internal/golden" // registers -update for go test ./...
	"homelab/internal/stackconfig"
)

// norns returns the norns cluster as the stack file has it, as a mutable map.
func norns() map[string]any {
	return map[string]any{
		"name":              "norns",
		"endpoint":          "https://192.168.0.120:6443",
		"talosVersion":      "v1.11.5",
		"kubernetesVersion": "v1.34.1",
		"installDisk":       "/dev/nvme0n1",
		"secureBoot":        true,
		"nodes": []any{
			map[string]any{"name": "urd", "address": "192.168.0.120", "role": "controlplane"},
			map[string]any{"name": "verdandi", "address": "192.168.0.121", "role": "controlplane"},
			map[string]any{"name": "skuld", "address": "192.168.0.122", "role": "controlplane"},
		},
	}
}

func node(c map[string]any, i int) map[string]any { return c["nodes"].([]any)[i].(map[string]any) }

func load(t *testing.T, cluster map[string]any) (*stackconfig.Config, []string, error) {
	t.Helper()
	b, err := json.Marshal(cluster)
	if err != nil {
		t.Fatal(err)
	}
	return stackconfig.Load(func(key string) (string, bool) {
		switch key {
		case "cluster":
			return string(b), true
		case "argocd":
			return argocd, true
		}
		return "", false
	})
}

const argocd = `{"repoURL": "https://github.com/example/homelab.git"}`

func TestNornsStackConfigIsValid(t *testing.T) {
	cfg, warnings, err := load(t, norns())
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings for three control planes: %v", warnings)
	}
	for _, n := range cfg.Cluster.Nodes {
		if n.InstallDisk != "/dev/nvme0n1" {
			t.Errorf("node %s: effective install disk %q, want the cluster default /dev/nvme0n1", n.Name, n.InstallDisk)
		}
	}
	if got := cfg.Cluster.VersionContract(); got != "v1.11" {
		t.Errorf("contract %q, want v1.11 from talosVersion v1.11.5", got)
	}
}

func TestInvalidConfigNamesKeyAndFix(t *testing.T) {
	cases := []struct {
		rule   string
		mutate func(c map[string]any)
		want   string // a problem line: key, then the message
	}{
		{"unknown key is an error with a suggestion", func(c map[string]any) { node(c, 1)["instalDisk"] = "/dev/sda" },
			`homelab:cluster.nodes[1].instalDisk: unknown key; did you mean installDisk?`},
		{"unknown top-level key", func(c map[string]any) { c["kubespan"] = true },
			`homelab:cluster.kubespan: unknown key; known keys: adopt, contract, endpoint, endpointLoadBalancer, installDisk, kubernetesVersion, name, nodes, resetOnDestroy, secureBoot, talosVersion, vip`},
		{"a VIP that is not an object", func(c map[string]any) { c["vip"] = "192.168.0.100" },
			`homelab:cluster.vip: must be an object, not the string "192.168.0.100"`},
		{"the endpoint on a worker", func(c map[string]any) {
			c["nodes"] = append(c["nodes"].([]any), map[string]any{"name": "w1", "address": "192.168.0.131", "role": "worker"})
			c["endpoint"] = "https://192.168.0.131:6443"
		}, `homelab:cluster.endpoint: 192.168.0.131 is worker w1's address (nodes[3]), which serves no API server`},
		{"the endpoint on no node", func(c map[string]any) { c["endpoint"] = "https://192.168.0.99:6443" },
			`homelab:cluster.endpoint: no node and no VIP has the address 192.168.0.99`},
		{"a VIP on a node's address", func(c map[string]any) {
			c["vip"] = map[string]any{"address": "192.168.0.121", "interface": map[string]any{"driver": "igc"}}
		}, `homelab:cluster.vip.address: 192.168.0.121 is node verdandi's address (nodes[1])`},
		{"a VIP without its link", func(c map[string]any) { c["vip"] = map[string]any{"address": "192.168.0.119"} },
			`homelab:cluster.vip.interface: required; pick the control planes' link with a device selector`},
		{"missing name", func(c map[string]any) { delete(c, "name") },
			`homelab:cluster.name: required; set the cluster name, a DNS label such as norns`},
		{"missing endpoint", func(c map[string]any) { delete(c, "endpoint") },
			`homelab:cluster.endpoint: required; set the Kubernetes API endpoint, e.g. https://192.168.0.120:6443`},
		{"missing talos version", func(c map[string]any) { delete(c, "talosVersion") },
			`homelab:cluster.talosVersion: required; set a version of the form vX.Y.Z, e.g. v1.11.5`},
		{"missing nodes", func(c map[string]any) { delete(c, "nodes") },
			`homelab:cluster.nodes: required; list at least one node as {name, address, role: controlplane}`},
		{"missing node address", func(c map[string]any) { delete(node(c, 0), "address") },
			`homelab:cluster.nodes[0].address: required; set the node's IP address`},
		{"missing role", func(c map[string]any) { delete(node(c, 2), "role") },
			`homelab:cluster.nodes[2].role: required; set controlplane or worker`},
		{"cluster name not a DNS label", func(c map[string]any) { c["name"] = "Norns_Lab" },
			`homelab:cluster.name: "Norns_Lab" is not a DNS label; use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit`},
		{"duplicate node name", func(c map[string]any) { node(c, 2)["name"] = "urd" },
			`homelab:cluster.nodes[2].name: "urd" is already the name of nodes[0]; node names must be unique`},
		{"duplicate address", func(c map[string]any) { node(c, 1)["address"] = "192.168.0.120" },
			`homelab:cluster.nodes[1].address: 192.168.0.120 is already the address of nodes[0]; node addresses must be unique`},
		{"node name not an RFC 1123 hostname", func(c map[string]any) { node(c, 0)["name"] = "Bad_Host!" },
			`homelab:cluster.nodes[0].name: "Bad_Host!" is not an RFC 1123 hostname; use lowercase letters, digits and '-' (labels of 1-63, separated by dots)`},
		{"node name label too long", func(c map[string]any) { node(c, 0)["name"] = strings.Repeat("a", 64) },
			`is not an RFC 1123 hostname`},
		{"address not an IP", func(c map[string]any) { node(c, 0)["address"] = "urd.lan" },
			`homelab:cluster.nodes[0].address: "urd.lan" is not an IP address; set the node's IPv4 or IPv6 address, e.g. 192.168.0.120`},
		{"endpoint without https", func(c map[string]any) { c["endpoint"] = "ftp://192.168.0.120:6443" },
			`homelab:cluster.endpoint: "ftp://192.168.0.120:6443" must use the https scheme; write it as https://host:port, e.g. https://192.168.0.120:6443`},
		{"endpoint without port", func(c map[string]any) { c["endpoint"] = "https://192.168.0.120" },
			`homelab:cluster.endpoint: "https://192.168.0.120" has no port; write it as https://host:port`},
		{"endpoint with path", func(c map[string]any) { c["endpoint"] = "https://192.168.0.120:6443/api" },
			`homelab:cluster.endpoint: "https://192.168.0.120:6443/api" must have no user, path or query`},
		{"endpoint not a URL", func(c map[string]any) { c["endpoint"] = "192.168.0.120" },
			`homelab:cluster.endpoint: "192.168.0.120" must use the https scheme`},
		{"no control plane", func(c map[string]any) {
			for i := range 3 {
				node(c, i)["role"] = "worker"
			}
		}, `homelab:cluster.nodes: no node has role controlplane; a cluster needs at least one control plane`},
		{"talos version not vX.Y.Z", func(c map[string]any) { c["talosVersion"] = "1.11.5" },
			`homelab:cluster.talosVersion: "1.11.5" is not of the form vX.Y.Z; write it like v1.11.5`},
		{"kubernetes version not vX.Y.Z", func(c map[string]any) { c["kubernetesVersion"] = "v1.34" },
			`homelab:cluster.kubernetesVersion: "v1.34" is not of the form vX.Y.Z; write it like v1.34.1`},
		{"install disk not under /dev", func(c map[string]any) { c["installDisk"] = "nvme0n1" },
			`homelab:cluster.installDisk: "nvme0n1" is not an absolute /dev/... path; use the disk's device path, e.g. /dev/nvme0n1`},
		{"node install disk override not under /dev", func(c map[string]any) { node(c, 1)["installDisk"] = "/mnt/../dev/sda" },
			`homelab:cluster.nodes[1].installDisk: "/mnt/../dev/sda" is not an absolute /dev/... path`},
		{"no install disk anywhere", func(c map[string]any) { delete(c, "installDisk") },
			`homelab:cluster.nodes[0].installDisk: required because homelab:cluster.installDisk is not set; set one of them, e.g. /dev/nvme0n1`},
		{"unknown role", func(c map[string]any) { node(c, 2)["role"] = "master" },
			`homelab:cluster.nodes[2].role: "master" is not a role; use controlplane or worker`},
		{"wrong type", func(c map[string]any) { c["secureBoot"] = "yes" },
			`homelab:cluster.secureBoot: must be true or false, not the string "yes"`},
		{"contract not vX.Y", func(c map[string]any) { c["contract"] = "v1.11.5" },
			`homelab:cluster.contract: "v1.11.5" is not of the form vX.Y; set the contract the cluster was created with, e.g. v1.11`},
		{"contract newer than Talos", func(c map[string]any) { c["contract"] = "v1.12" },
			`homelab:cluster.contract: v1.12 is newer than talosVersion v1.11.5, whose nodes reject its config; set it to v1.11 or lower`},
	}
	for _, tc := range cases {
		t.Run(tc.rule, func(t *testing.T) {
			c := norns()
			tc.mutate(c)
			cfg, _, err := load(t, c)
			var cfgErr *stackconfig.Error
			if !errors.As(err, &cfgErr) {
				t.Fatalf("got config %+v and error %v; want a *stackconfig.Error", cfg, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error does not contain %q:\n%s", tc.want, err)
			}
		})
	}
}

func TestEveryProblemIsReportedAtOnce(t *testing.T) {
	c := norns()
	node(c, 0)["instalDisk"] = "/dev/sda"
	node(c, 1)["address"] = "not-an-ip"
	c["talosVersion"] = "latest"
	_, _, err := load(t, c)
	var cfgErr *stackconfig.Error
	if !errors.As(err, &cfgErr) {
		t.Fatalf("error %v; want a *stackconfig.Error", err)
	}
	keys := map[string]bool{}
	for _, p := range cfgErr.Problems {
		keys[p.Key] = true
	}
	for _, want := range []string{"homelab:cluster.nodes[0].instalDisk", "homelab:cluster.nodes[1].address", "homelab:cluster.talosVersion"} {
		if !keys[want] {
			t.Errorf("no problem reported for %s; got %v", want, cfgErr.Problems)
		}
	}
}

func TestEvenControlPlaneCountIsAWarningNotAnError(t *testing.T) {
	c := norns()
	c["nodes"] = c["nodes"].([]any)[:2]
	_, warnings, err := load(t, c)
	if err != nil {
		t.Fatalf("two control planes must not be an error: %v", err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "2 control planes") {
		t.Errorf("warnings %q; want one about 2 control planes and etcd", warnings)
	}
}

func loadKey(t *testing.T, key, value string) (*stackconfig.Config, error) {
	t.Helper()
	cluster, err := json.Marshal(norns())
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := stackconfig.Load(func(k string) (string, bool) {
		switch k {
		case "cluster":
			return string(cluster), true
		case key:
			return value, true
		case "argocd":
			return argocd, true
		}
		return "", false
	})
	return cfg, err
}

func TestSecretsAndGitOpsDefaults(t *testing.T) {
	cfg, err := loadKey(t, "onepassword", `{}`)
	if err != nil {
		t.Fatal(err)
	}
	op, a := cfg.OnePassword, cfg.ArgoCD
	if op.Vault != "kubernetes" || op.ConnectItem != "onepassword-connect" || op.BackupItem != "talos-norns" || op.ConnectChart.Version != "2.4.1" {
		t.Errorf("1Password defaults %+v", op)
	}
	if !a.On() || a.Revision != "main" || a.Path != "src/apps" || a.Chart.Version != "10.1.1" || a.AdminItem != "argocd" {
		t.Errorf("Argo CD defaults %+v", a)
	}
}

func TestInvalidSecretsAndGitOpsNameKeyAndFix(t *testing.T) {
	cases := []struct{ key, value, want string }{
		{"argocd", `{}`, "homelab:argocd.repoURL: required while Argo CD is enabled; set the Git URL of this repository (https://... or git@...), or set homelab:argocd.enabled: false"},
		{"argocd", `{"repoURL": "github.com/x/y"}`, `homelab:argocd.repoURL: "github.com/x/y" is not a Git repository URL`},
		{"argocd", `{"repoURL": "https://github.com/x/y.git", "path": "../apps"}`, `homelab:argocd.path: "../apps" must be a folder relative to the repository root`},
		{"argocd", `{"repoURL": "https://github.com/x/y.git", "chart": {"version": "v10.1.1"}}`, `homelab:argocd.chart.version: "v10.1.1" is not a chart version`},
		{"argocd", `{"enable": false}`, `homelab:argocd.enable: unknown key; did you mean enabled?`},
		{"onepassword", `{"vault": "kubernetes/x"}`, `homelab:onepassword.vault: "kubernetes/x" has leading or trailing spaces or a '/'`},
		{"onepassword", `{"conectItem": "x"}`, `homelab:onepassword.conectItem: unknown key; did you mean connectItem?`},
	}
	for _, tc := range cases {
		_, err := loadKey(t, tc.key, tc.value)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s = %s: error %v; want it to contain %q", tc.key, tc.value, err, tc.want)
		}
	}
	if _, err := loadKey(t, "argocd", `{"enabled": false}`); err != nil {
		t.Errorf("a stack without Argo CD needs no repoURL: %v", err)
	}
}

func TestMissingClusterKeyIsAnError(t *testing.T) {
	_, _, err := stackconfig.Load(func(string) (string, bool) { return "", false })
	if err == nil || !strings.Contains(err.Error(), "homelab:cluster: required") {
		t.Errorf("error %v; want homelab:cluster: required", err)
	}
}

func TestNodeInstallDiskOverridesClusterDefault(t *testing.T) {
	c := norns()
	node(c, 2)["installDisk"] = "/dev/sda"
	cfg, _, err := load(t, c)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Cluster.Nodes[2].InstallDisk; got != "/dev/sda" {
		t.Errorf("skuld install disk %q, want its override /dev/sda", got)
	}
	if got := cfg.Cluster.Nodes[0].InstallDisk; got != "/dev/nvme0n1" {
		t.Errorf("urd install disk %q, want the default /dev/nvme0n1", got)
	}
}

func TestRollOrderPutsControlPlanesFirst(t *testing.T) {
	c := norns()
	c["nodes"] = []any{
		map[string]any{"name": "w1", "address": "10.0.0.11", "role": "worker"},
		map[string]any{"name": "cp1", "address": "10.0.0.1", "role": "controlplane"},
		map[string]any{"name": "w2", "address": "10.0.0.12", "role": "worker"},
		map[string]any{"name": "cp2", "address": "10.0.0.2", "role": "controlplane"},
		map[string]any{"name": "cp3", "address": "10.0.0.3", "role": "controlplane"},
	}
	c["endpoint"] = "https://10.0.0.1:6443"
	cfg, _, err := load(t, c)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range cfg.Cluster.RollOrder() {
		got = append(got, n.Name)
	}
	if strings.Join(got, ",") != "cp1,cp2,cp3,w1,w2" {
		t.Errorf("roll order %v; want control planes in stack order, then workers", got)
	}
}

func loadWithNetworking(t *testing.T, networking map[string]any) (*stackconfig.Config, error) {
	t.Helper()
	cluster, err := json.Marshal(norns())
	if err != nil {
		t.Fatal(err)
	}
	net, err := json.Marshal(networking)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := stackconfig.Load(func(key string) (string, bool) {
		switch key {
		case "cluster":
			return string(cluster), true
		case "networking":
			return string(net), true
		case "argocd":
			return argocd, true
		}
		return "", false
	})
	return cfg, err
}

func TestNetworkingDefaults(t *testing.T) {
	cfg, err := loadWithNetworking(t, map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Networking.GatewayAPI.Version != "v1.2.1" || cfg.Networking.Cilium.Version != "1.18.3" || cfg.Networking.LoadBalancerPool != nil {
		t.Errorf("defaults %+v; want Gateway API v1.2.1, Cilium 1.18.3, no pool", cfg.Networking)
	}
}

func TestInvalidNetworkingNamesKeyAndFix(t *testing.T) {
	pool := func(start, stop string) map[string]any {
		return map[string]any{"loadBalancerPool": map[string]any{"start": start, "stop": stop}}
	}
	cases := []struct {
		rule string
		net  map[string]any
		want string
	}{
		{"unknown key", map[string]any{"cilum": map[string]any{}}, `homelab:networking.cilum: unknown key; did you mean cilium?`},
		{"gateway version not vX.Y.Z", map[string]any{"gatewayAPI": map[string]any{"version": "1.2.1"}},
			`homelab:networking.gatewayAPI.version: "1.2.1" is not of the form vX.Y.Z; write it like v1.2.1`},
		{"cilium chart version with v", map[string]any{"cilium": map[string]any{"version": "v1.18.3"}},
			`homelab:networking.cilium.version: "v1.18.3" is not a chart version of the form X.Y.Z (no leading v); write it like 1.18.3`},
		{"pool start not an IP", pool("192.168.0.x", "192.168.0.253"),
			`homelab:networking.loadBalancerPool.start: "192.168.0.x" is not an IP address`},
		{"pool reversed", pool("192.168.0.253", "192.168.0.200"),
			`homelab:networking.loadBalancerPool: start 192.168.0.253 comes after stop 192.168.0.200; swap them`},
		{"pool mixes families", pool("192.168.0.200", "fd00::1"),
			`homelab:networking.loadBalancerPool: start 192.168.0.200 and stop fd00::1 are of different IP families`},
		{"pool covers a node", pool("192.168.0.100", "192.168.0.121"),
			`homelab:networking.loadBalancerPool: the range 192.168.0.100-192.168.0.121 contains node urd's address 192.168.0.120`},
	}
	for _, tc := range cases {
		t.Run(tc.rule, func(t *testing.T) {
			_, err := loadWithNetworking(t, tc.net)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v; want it to contain %q", err, tc.want)
			}
		})
	}
}

// One typo is one problem: the key it was meant to be is not reported missing as well, here or on
// every node.
func TestATypoIsOneProblem(t *testing.T) {
	for typo, meant := range map[string]string{"instalDisk": "installDisk", "talosVerison": "talosVersion"} {
		cluster := map[string]any{"name": "norns", "endpoint": "https://192.168.0.120:6443", "talosVersion": "v1.11.5",
			"kubernetesVersion": "v1.34.1", "installDisk": "/dev/nvme0n1",
			"nodes": []any{map[string]any{"name": "urd", "address": "192.168.0.120", "role": "controlplane"},
				map[string]any{"name": "verdandi", "address": "192.168.0.121", "role": "controlplane"}}}
		cluster[typo] = cluster[meant]
		delete(cluster, meant)
		text, _ := json.Marshal(cluster)
		_, _, err := stackconfig.Load(func(key string) (string, bool) {
			switch key {
			case "cluster":
				return string(text), true
			case "argocd":
				return `{"enabled": false}`, true
			}
			return "", false
		})
		var e *stackconfig.Error
		if !errors.As(err, &e) || len(e.Problems) != 1 || !strings.Contains(e.Problems[0].Message, "did you mean "+meant) {
			t.Errorf("%s: %v; want exactly one problem, suggesting %s", typo, err, meant)
		}
	}
}

// The endpoint may be a control plane's address, the VIP, a DNS name or a declared load balancer.
func TestTheEndpointMayBeAControlPlaneTheVIPOrALoadBalancer(t *testing.T) {
	for name, mutate := range map[string]func(c map[string]any){
		"a control plane": func(c map[string]any) { c["endpoint"] = "https://192.168.0.122:6443" },
		"the VIP": func(c map[string]any) {
			c["vip"] = map[string]any{"address": "192.168.0.119", "interface": map[string]any{"driver": "igc"}}
			c["endpoint"] = "https://192.168.0.119:6443"
		},
		"a DNS name":               func(c map[string]any) { c["endpoint"] = "https://k8s.norns.example:6443" },
		"a declared load balancer": func(c map[string]any) { c["endpoint"] = "https://192.168.0.99:6443"; c["endpointLoadBalancer"] = true },
	} {
		c := norns()
		mutate(c)
		if _, _, err := load(t, c); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// homelab:backup is checked before anything runs: a bucket reached in clear over the network, a
// recipient that is no age key and a bucket without recipients are refused, each by its key.
func TestBackupSettingsAreChecked(t *testing.T) {
	for value, key := range map[string]string{
		`{"s3": {"endpoint": "http://s3.lan:9000", "bucket": "etcd"}, "recipients": ["age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"]}`: "homelab:backup.s3.endpoint",
		`{"s3": {"endpoint": "https://s3.lan:9000", "bucket": "etcd"}, "recipients": ["ssh-ed25519 AAAA"]}`:                                              "homelab:backup.recipients[0]",
		`{"s3": {"endpoint": "https://s3.lan:9000", "bucket": "etcd"}}`:                                                                                  "homelab:backup.recipients",
		`{"s3": {"endpoint": "https://s3.lan:9000", "bucket": "Etcd_Snapshots"}, "recipients": []}`:                                                      "homelab:backup.s3.bucket",
	} {
		if _, err := loadKey(t, "backup", value); err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: err = %v; want it to name %s", value, err, key)
		}
	}
	cfg, err := loadKey(t, "backup", `{"s3": {"endpoint": "http://127.0.0.1:7070", "bucket": "etcd"}, "recipients": ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"]}`)
	if err != nil {
		t.Fatalf("a loopback bucket and a real recipient: %v", err)
	}
	if cfg.Backup.Keep != stackconfig.DefaultSnapshotsKept || cfg.Backup.Item != stackconfig.DefaultBackupItem || cfg.Backup.S3.Region != "us-east-1" {
		t.Errorf("defaults: %+v", cfg.Backup)
	}
}
