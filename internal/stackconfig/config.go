// Package stackconfig is the typed contract of a stack file (Pulumi.<cluster>.yaml): what every key
// means, its default, and the checks that run before any resource is registered. The Pulumi program
// and cmd/render load configuration through the same Load function.
package stackconfig

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Namespace is the config namespace of every key here: the Pulumi project name.
const Namespace = "homelab"

// Node roles.
const (
	RoleControlPlane = "controlplane"
	RoleWorker       = "worker"
)

// Config is everything a stack file decides.
type Config struct {
	Cluster     Cluster
	Rollout     Rollout
	Networking  Networking
	OnePassword OnePassword
	ArgoCD      ArgoCD
}

// Rollout is the homelab:rollout key: how long a node may take to go down and come back.
type Rollout struct {
	// UpgradeTimeout bounds one node's Talos upgrade, from the request to the node running the
	// new release: the installer image pull, the drain, the installer, and the reboot through the
	// firmware. Optional; default DefaultNodeDowntime.
	UpgradeTimeout string `json:"upgradeTimeout,omitempty"`
	// RebootTimeout bounds one node's reboot into a staged config. Optional; default
	// DefaultNodeDowntime.
	RebootTimeout string `json:"rebootTimeout,omitempty"`
}

// DefaultNodeDowntime is the budget of a node's upgrade or reboot: talosctl's own default for both
// (--timeout: cmd/talosctl/cmd/talos/track.go:22 at v1.13.9). An upgrade needs, besides the boot
// through the firmware: the image pull, synchronous before the legacy upgrade API answers and
// retried up to 20 minutes on network errors (internal/pkg/containers/image/image.go:37-38); the
// drain, up to 5 minutes of evictions a PodDisruptionBudget refuses, retried every 5 s, and then up
// to a minute for each pod to go (pkg/kubernetes/kubernetes.go:40,239-342), or talosctl's 5-minute
// drain from 1.13 (cmd/talosctl/pkg/talos/nodedrain/nodedrain.go:30).
const DefaultNodeDowntime = "30m"

// MinUpgradeTimeout is Talos's own drain bound, 5 minutes of refused evictions and a minute for the
// pods to go: an upgrade budget below it fails on the first node whose pods a
// PodDisruptionBudget holds, with the node cordoned.
const MinUpgradeTimeout = 6 * time.Minute

// OnePassword is the homelab:onepassword key: where the cluster's secrets live. The provider's
// credentials are the provider's own secret stack settings (onepassword:serviceAccountToken, or
// onepassword:url with onepassword:token); the program checks them, never reads them from here.
type OnePassword struct {
	// Vault is the vault holding every secret of the cluster. Optional; default kubernetes.
	Vault string `json:"vault,omitempty"`
	// ConnectItem is the item with the Connect server's credentials file (field "credentials") and
	// the operator's Connect token (field "token"). Optional; default onepassword-connect.
	ConnectItem string `json:"connectItem,omitempty"`
	// BackupItem is the item the program writes the Talos secrets bundle and talosconfig to.
	// Optional; default talos-<cluster name>.
	BackupItem string `json:"backupItem,omitempty"`
	// ConnectChart pins the 1Password connect chart (Connect server and operator). Optional.
	ConnectChart Chart `json:"connectChart"`
}

// ArgoCD is the homelab:argocd key: Argo CD and its root application.
type ArgoCD struct {
	// Enabled switches Argo CD on. Optional; default true. When false nothing of it is created.
	Enabled *bool `json:"enabled,omitempty"`
	// Chart pins the argo-cd chart. Optional.
	Chart Chart `json:"chart"`
	// RepoURL is the Git repository the root application syncs. Required when enabled.
	RepoURL string `json:"repoURL,omitempty"`
	// Revision is the branch, tag or commit it syncs. Optional; default main.
	Revision string `json:"revision,omitempty"`
	// Path is the folder of child applications. Optional; default src/apps.
	Path string `json:"path,omitempty"`
	// AdminItem is the item the 1Password operator syncs into the argocd-secret Secret (fields
	// admin.password, a bcrypt hash, and server.secretkey). Optional; default argocd.
	AdminItem string `json:"adminItem,omitempty"`
}

// On reports whether Argo CD is enabled.
func (a ArgoCD) On() bool { return a.Enabled == nil || *a.Enabled }

// Chart pins a Helm chart version.
type Chart struct {
	// Version is the chart version, X.Y.Z. Optional; each chart has its default.
	Version string `json:"version,omitempty"`
}

// Networking is the homelab:networking key: Gateway API, Cilium, and L2 load balancing. Every
// cluster gets Cilium in place of Flannel and kube-proxy; without the key, the defaults apply.
type Networking struct {
	// GatewayAPI pins the Gateway API CRDs. Optional.
	GatewayAPI GatewayAPI `json:"gatewayAPI"`
	// Cilium pins the Cilium chart. Optional.
	Cilium Cilium `json:"cilium"`
	// LoadBalancerPool is the address range Cilium gives LoadBalancer services and announces with
	// ARP. Optional; without it no pool and no announcement policy exist.
	LoadBalancerPool *AddressRange `json:"loadBalancerPool,omitempty"`
}

// GatewayAPI pins the Gateway API release.
type GatewayAPI struct {
	// Version is the Gateway API release (standard channel) whose CRDs are applied from
	// src/bootstrap/gateway-api/<version>/. Optional; default v1.2.1.
	Version string `json:"version,omitempty"`
}

// Cilium pins the Cilium chart.
type Cilium struct {
	// Version is the cilium chart version from https://helm.cilium.io. Optional; default 1.18.3.
	Version string `json:"version,omitempty"`
}

// AddressRange is an inclusive range of IP addresses.
type AddressRange struct {
	// Start and Stop are the first and last address of the range, of the same IP family. Required.
	Start string `json:"start"`
	Stop  string `json:"stop"`
}

// MaxContract is the newest machine-config contract the Talos provider can generate: pulumi-talos
// v0.7.1 bridges terraform-provider-talos v0.10.1, which compiles Talos machinery v1.12.0, whose
// feature gates stop at v1.12 (pkg/machinery/config/contract.go:178-203 at v1.12.0). It takes any
// higher contract without an error and generates the v1.12 config, so a v1.13 contract would
// claim defaults the nodes never get (.machine.network dropped, KubeSpanConfig documents:
// contract.go:208 at v1.13.9). Talos 1.13 nodes run v1.12-contract configs.
const MaxContract = "v1.12"

// Defaults. Renovate keeps the pinned versions current (.github/renovate.json reads the comments).
const (
	// renovate: datasource=github-releases depName=kubernetes-sigs/gateway-api
	DefaultGatewayAPIVersion = "v1.2.1"
	// renovate: datasource=helm registryUrl=https://helm.cilium.io depName=cilium
	DefaultCiliumVersion = "1.18.3"
	DefaultVault         = "kubernetes"
	DefaultConnectItem   = "onepassword-connect"
	// renovate: datasource=helm registryUrl=https://1password.github.io/connect-helm-charts depName=connect
	DefaultConnectChartVersion = "2.4.1"
	// renovate: datasource=helm registryUrl=https://argoproj.github.io/argo-helm depName=argo-cd
	DefaultArgoCDChartVersion = "10.1.1"
	DefaultArgoCDRevision     = "main"
	DefaultArgoCDPath         = "src/apps"
	DefaultArgoCDAdminItem    = "argocd"
)

// Cluster is the homelab:cluster key.
type Cluster struct {
	// Name is the cluster name, a DNS label. Required.
	Name string `json:"name"`
	// Endpoint is the Kubernetes API endpoint, https://host:port (a VIP or a control-plane node). Required.
	Endpoint string `json:"endpoint"`
	// TalosVersion is the Talos version the nodes run, vX.Y.Z; it tags the installer image. Required.
	TalosVersion string `json:"talosVersion"`
	// KubernetesVersion is the Kubernetes version, vX.Y.Z. Required.
	KubernetesVersion string `json:"kubernetesVersion"`
	// Contract is the machine-config version contract, vX.Y: the Talos release whose config
	// defaults the nodes' configs are generated with. Optional; defaults to the major.minor of
	// TalosVersion, at most MaxContract. It stays where it is when TalosVersion moves (pin it
	// before a minor upgrade); moving it is its own run, forward only, and reboots every node.
	Contract string `json:"contract,omitempty"`
	// InstallDisk is the disk Talos installs to, an absolute /dev/... path. Optional when every node
	// sets its own; otherwise the default for every node.
	InstallDisk string `json:"installDisk,omitempty"`
	// SecureBoot selects the secure-boot installer image. Optional; default false.
	SecureBoot bool `json:"secureBoot,omitempty"`
	// Adopt is true when the nodes already run this cluster with its final config: a cluster
	// adopted from talosctl, or one an earlier `pulumi up` brought up. Then no bootstrap runs, new
	// nodes install straight into the final config, and no node reboots for a handover. Optional;
	// default false: a new cluster from nodes in maintenance mode.
	Adopt bool `json:"adopt,omitempty"`
	// ResetOnDestroy opts in to resetting nodes: `pulumi destroy`, or removing a node from the
	// stack, then wipes the node's STATE and EPHEMERAL partitions. Optional; default false: a
	// destroy leaves every node as it is. Run `pulumi up` after changing it, before a destroy.
	ResetOnDestroy bool `json:"resetOnDestroy,omitempty"`
	// Nodes are the machines of the cluster, in roll-out order. Required, at least one control plane.
	Nodes []Node `json:"nodes"`
}

// Node is one machine of the cluster.
type Node struct {
	// Name is the node's hostname and Kubernetes node name, an RFC 1123 hostname. Required.
	Name string `json:"name"`
	// Address is the node's IP address, used to reach the Talos API. Required.
	Address string `json:"address"`
	// Role is controlplane or worker. Required.
	Role string `json:"role"`
	// InstallDisk overrides the cluster's InstallDisk for this node. Optional. After Load it always
	// holds the node's effective install disk.
	InstallDisk string `json:"installDisk,omitempty"`
}

// Source returns the raw value of a key in the homelab namespace (objects as JSON text) and whether
// the stack sets it.
type Source func(key string) (string, bool)

// Load reads and validates every key. It returns warnings that do not stop a run, or an *Error that
// lists every problem found, each naming its key and the fix.
func Load(src Source) (*Config, []string, error) {
	var p Problems
	cfg := &Config{}
	text, ok := src("cluster")
	if !ok {
		p.add(Namespace+":cluster", "required; see Pulumi.yaml for its keys")
		return nil, nil, p.Err()
	}
	decodeStrict(Namespace+":cluster", text, &cfg.Cluster, &p)
	warnings := cfg.Cluster.validate(Namespace+":cluster", &p)
	if text, ok := src("rollout"); ok {
		decodeStrict(Namespace+":rollout", text, &cfg.Rollout, &p)
	}
	warnings = append(warnings, cfg.Rollout.validate(Namespace+":rollout", &p)...)
	if text, ok := src("networking"); ok {
		decodeStrict(Namespace+":networking", text, &cfg.Networking, &p)
	}
	cfg.Networking.validate(Namespace+":networking", cfg.Cluster, &p)
	if text, ok := src("onepassword"); ok {
		decodeStrict(Namespace+":onepassword", text, &cfg.OnePassword, &p)
	}
	cfg.OnePassword.validate(Namespace+":onepassword", cfg.Cluster, &p)
	if text, ok := src("argocd"); ok {
		decodeStrict(Namespace+":argocd", text, &cfg.ArgoCD, &p)
	}
	cfg.ArgoCD.validate(Namespace+":argocd", &p)
	if err := p.Err(); err != nil {
		return nil, nil, err
	}
	return cfg, warnings, nil
}

var (
	chartRe    = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`)
	versionRe  = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`)
	contractRe = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`)
	labelRe    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	diskRe     = regexp.MustCompile(`^/dev/[A-Za-z0-9._/-]+$`)
)

func (c *Cluster) validate(key string, p *Problems) (warnings []string) {
	switch {
	case c.Name == "":
		p.add(key+".name", "required; set the cluster name, a DNS label such as norns")
	case !labelRe.MatchString(c.Name):
		p.add(key+".name", "%q is not a DNS label; use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit", c.Name)
	}
	if c.Endpoint == "" {
		p.add(key+".endpoint", "required; set the Kubernetes API endpoint, e.g. https://192.168.0.120:6443")
	} else if err := checkEndpoint(c.Endpoint); err != nil {
		p.add(key+".endpoint", "%q %v; write it as https://host:port, e.g. https://192.168.0.120:6443", c.Endpoint, err)
	}
	checkVersion(p, key+".talosVersion", c.TalosVersion, "v1.11.5")
	checkVersion(p, key+".kubernetesVersion", c.KubernetesVersion, "v1.34.1")
	if c.Contract != "" {
		if !contractRe.MatchString(c.Contract) {
			p.add(key+".contract", "%q is not of the form vX.Y; set the contract the cluster was created with, e.g. v1.11", c.Contract)
		} else if versionRe.MatchString(c.TalosVersion) && ContractOlder(majorMinor(c.TalosVersion), c.Contract) {
			p.add(key+".contract", "%s is newer than talosVersion %s, whose nodes reject its config; set it to %s or lower", c.Contract, c.TalosVersion, majorMinor(c.TalosVersion))
		} else if ContractOlder(MaxContract, c.Contract) {
			p.add(key+".contract", "%s is newer than the Talos provider (pulumi-talos v0.7.1, Talos machinery v1.12.0) can generate: it "+
				"would silently give the nodes %s defaults; set it to %s or lower (Talos 1.13 nodes run %s configs)", c.Contract, MaxContract, MaxContract, MaxContract)
		}
	}
	if c.InstallDisk != "" {
		checkDisk(p, key+".installDisk", c.InstallDisk)
	}

	if len(c.Nodes) == 0 {
		p.add(key+".nodes", "required; list at least one node as {name, address, role: controlplane}")
		return nil
	}
	names, addrs := map[string]int{}, map[netip.Addr]int{}
	controlPlanes := 0
	for i := range c.Nodes {
		n := &c.Nodes[i]
		nk := fmt.Sprintf("%s.nodes[%d]", key, i)
		switch {
		case n.Name == "":
			p.add(nk+".name", "required; set the node's hostname")
		case !isHostname(n.Name):
			p.add(nk+".name", "%q is not an RFC 1123 hostname; use lowercase letters, digits and '-' (labels of 1-63, separated by dots)", n.Name)
		default:
			if j, dup := names[n.Name]; dup {
				p.add(nk+".name", "%q is already the name of nodes[%d]; node names must be unique", n.Name, j)
			}
			names[n.Name] = i
		}
		if n.Address == "" {
			p.add(nk+".address", "required; set the node's IP address")
		} else if a, err := netip.ParseAddr(n.Address); err != nil || a.Zone() != "" {
			p.add(nk+".address", "%q is not an IP address; set the node's IPv4 or IPv6 address, e.g. 192.168.0.120", n.Address)
		} else {
			if j, dup := addrs[a]; dup {
				p.add(nk+".address", "%s is already the address of nodes[%d]; node addresses must be unique", n.Address, j)
			}
			addrs[a] = i
		}
		switch n.Role {
		case RoleControlPlane:
			controlPlanes++
		case RoleWorker:
		case "":
			p.add(nk+".role", "required; set %s or %s", RoleControlPlane, RoleWorker)
		default:
			p.add(nk+".role", "%q is not a role; use %s or %s", n.Role, RoleControlPlane, RoleWorker)
		}
		switch {
		case n.InstallDisk != "":
			checkDisk(p, nk+".installDisk", n.InstallDisk)
		case c.InstallDisk == "":
			p.add(nk+".installDisk", "required because %s.installDisk is not set; set one of them, e.g. /dev/nvme0n1", key)
		default:
			n.InstallDisk = c.InstallDisk
		}
	}
	if controlPlanes == 0 {
		p.add(key+".nodes", "no node has role %s; a cluster needs at least one control plane", RoleControlPlane)
	} else if controlPlanes%2 == 0 {
		warnings = append(warnings, fmt.Sprintf("%s.nodes: %d control planes; etcd tolerates no more failures with an even count than with one fewer, so use an odd number", key, controlPlanes))
	}
	return warnings
}

func (n *Networking) validate(key string, c Cluster, p *Problems) {
	if n.GatewayAPI.Version == "" {
		n.GatewayAPI.Version = DefaultGatewayAPIVersion
	} else {
		checkVersion(p, key+".gatewayAPI.version", n.GatewayAPI.Version, DefaultGatewayAPIVersion)
	}
	n.Cilium.Version = defaulted(n.Cilium.Version, DefaultCiliumVersion)
	checkChart(p, key+".cilium.version", n.Cilium.Version, DefaultCiliumVersion)
	if r := n.LoadBalancerPool; r != nil {
		rk := key + ".loadBalancerPool"
		start, errStart := netip.ParseAddr(r.Start)
		stop, errStop := netip.ParseAddr(r.Stop)
		if errStart != nil {
			p.add(rk+".start", "%q is not an IP address; set the first address of the pool, e.g. 192.168.0.200", r.Start)
		}
		if errStop != nil {
			p.add(rk+".stop", "%q is not an IP address; set the last address of the pool, e.g. 192.168.0.253", r.Stop)
		}
		if errStart != nil || errStop != nil {
			return
		}
		switch {
		case start.Is4() != stop.Is4():
			p.add(rk, "start %s and stop %s are of different IP families; use two IPv4 or two IPv6 addresses", r.Start, r.Stop)
		case stop.Less(start):
			p.add(rk, "start %s comes after stop %s; swap them", r.Start, r.Stop)
		default:
			for i, node := range c.Nodes {
				if a, err := netip.ParseAddr(node.Address); err == nil && !a.Less(start) && !stop.Less(a) {
					p.add(rk, "the range %s-%s contains node %s's address %s; Cilium would announce it for services; choose a range outside the node addresses", r.Start, r.Stop, c.Nodes[i].Name, node.Address)
				}
			}
		}
	}
}

func (r *Rollout) validate(key string, p *Problems) (warnings []string) {
	r.UpgradeTimeout = defaulted(r.UpgradeTimeout, DefaultNodeDowntime)
	r.RebootTimeout = defaulted(r.RebootTimeout, DefaultNodeDowntime)
	for k, v := range map[string]string{"upgradeTimeout": r.UpgradeTimeout, "rebootTimeout": r.RebootTimeout} {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil || d <= 0:
			p.add(key+"."+k, "%q is not a duration; write it like %s (s, m or h)", v, DefaultNodeDowntime)
		case k == "upgradeTimeout" && d < MinUpgradeTimeout:
			warnings = append(warnings, fmt.Sprintf("%s.%s: %s is below Talos's own drain bound (%s: 5 minutes of evictions a "+
				"PodDisruptionBudget refuses, then a minute for the pods to go); the first node whose pods a budget holds fails its upgrade",
				key, k, v, MinUpgradeTimeout))
		}
	}
	return warnings
}

func (o *OnePassword) validate(key string, c Cluster, p *Problems) {
	o.Vault = defaulted(o.Vault, DefaultVault)
	o.ConnectItem = defaulted(o.ConnectItem, DefaultConnectItem)
	o.BackupItem = defaulted(o.BackupItem, "talos-"+c.Name)
	o.ConnectChart.Version = defaulted(o.ConnectChart.Version, DefaultConnectChartVersion)
	checkChart(p, key+".connectChart.version", o.ConnectChart.Version, DefaultConnectChartVersion)
	for k, v := range map[string]string{"vault": o.Vault, "connectItem": o.ConnectItem, "backupItem": o.BackupItem} {
		if strings.TrimSpace(v) != v || strings.Contains(v, "/") {
			p.add(key+"."+k, "%q has leading or trailing spaces or a '/'; use the vault or item title as 1Password shows it", v)
		}
	}
}

func (a *ArgoCD) validate(key string, p *Problems) {
	a.Chart.Version = defaulted(a.Chart.Version, DefaultArgoCDChartVersion)
	a.Revision = defaulted(a.Revision, DefaultArgoCDRevision)
	a.Path = defaulted(a.Path, DefaultArgoCDPath)
	a.AdminItem = defaulted(a.AdminItem, DefaultArgoCDAdminItem)
	if !a.On() {
		return
	}
	checkChart(p, key+".chart.version", a.Chart.Version, DefaultArgoCDChartVersion)
	if a.RepoURL == "" {
		p.add(key+".repoURL", "required while Argo CD is enabled; set the Git URL of this repository (https://... or git@...), or set %s.enabled: false", key)
	} else if u, err := url.Parse(a.RepoURL); !strings.HasPrefix(a.RepoURL, "git@") && (err != nil || (u.Scheme != "https" && u.Scheme != "ssh") || u.Host == "") {
		p.add(key+".repoURL", "%q is not a Git repository URL; use https://host/owner/repo.git or git@host:owner/repo.git", a.RepoURL)
	}
	if strings.HasPrefix(a.Path, "/") || strings.Contains(a.Path, "..") {
		p.add(key+".path", "%q must be a folder relative to the repository root, such as src/apps", a.Path)
	}
}

func defaulted(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func checkChart(p *Problems, key, v, example string) {
	if !chartRe.MatchString(v) {
		p.add(key, "%q is not a chart version of the form X.Y.Z (no leading v); write it like %s", v, example)
	}
}

func checkVersion(p *Problems, key, v, example string) {
	switch {
	case v == "":
		p.add(key, "required; set a version of the form vX.Y.Z, e.g. %s", example)
	case !versionRe.MatchString(v):
		p.add(key, "%q is not of the form vX.Y.Z; write it like %s", v, example)
	}
}

func checkDisk(p *Problems, key, disk string) {
	if !diskRe.MatchString(disk) || strings.Contains(disk, "..") {
		p.add(key, "%q is not an absolute /dev/... path; use the disk's device path, e.g. /dev/nvme0n1", disk)
	}
}

func checkEndpoint(endpoint string) error {
	u, err := url.Parse(endpoint)
	switch {
	case err != nil:
		return fmt.Errorf("is not a URL")
	case u.Scheme != "https":
		return fmt.Errorf("must use the https scheme")
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || (u.Path != "" && u.Path != "/"):
		return fmt.Errorf("must have no user, path or query")
	case u.Hostname() == "":
		return fmt.Errorf("has no host")
	case u.Port() == "":
		return fmt.Errorf("has no port")
	}
	if port, err := strconv.Atoi(u.Port()); err != nil || port < 1 || port > 65535 {
		return fmt.Errorf("has an invalid port")
	}
	if _, err := netip.ParseAddr(u.Hostname()); err != nil && !isHostname(u.Hostname()) {
		return fmt.Errorf("has a host that is neither an IP address nor a hostname")
	}
	return nil
}

func isHostname(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if !labelRe.MatchString(label) {
			return false
		}
	}
	return true
}

// majorMinor turns vX.Y.Z into vX.Y.
func majorMinor(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return v
	}
	return parts[0] + "." + parts[1]
}

// ContractOlder reports whether contract a (vX.Y) is older than contract b.
func ContractOlder(a, b string) bool {
	parse := func(s string) (int, int) {
		major, minor, _ := strings.Cut(strings.TrimPrefix(s, "v"), ".")
		x, _ := strconv.Atoi(major)
		y, _ := strconv.Atoi(minor)
		return x, y
	}
	ax, ay := parse(a)
	bx, by := parse(b)
	return ax < bx || (ax == bx && ay < by)
}

// VersionContract is the machine-config contract, vX.Y: Contract, or the major.minor of
// TalosVersion, at most MaxContract.
func (c Cluster) VersionContract() string {
	if c.Contract != "" {
		return c.Contract
	}
	if v := majorMinor(c.TalosVersion); !ContractOlder(MaxContract, v) {
		return v
	}
	return MaxContract
}

// TalosMinor is the minor release of TalosVersion, vX.Y: the talosctl release the cluster needs
// (lifecycle.NeedTools).
func (c Cluster) TalosMinor() string { return majorMinor(c.TalosVersion) }

// MultidocConfig reports whether the contract's generated configs are multi-document, with the
// hostname in a HostnameConfig document: contracts above v1.11
// (config.VersionContract.MultidocNetworkConfigSupported, pkg/machinery/config/contract.go:182 at
// v1.12.6).
func (c Cluster) MultidocConfig() bool { return ContractOlder("v1.11", c.VersionContract()) }

// ControlPlanes returns the control-plane nodes in stack order.
func (c Cluster) ControlPlanes() []Node { return c.withRole(RoleControlPlane) }

// Workers returns the worker nodes in stack order.
func (c Cluster) Workers() []Node { return c.withRole(RoleWorker) }

// RollOrder returns the nodes in the order changes that need a reboot roll out: control planes
// first, then workers, each group in stack order.
func (c Cluster) RollOrder() []Node { return append(c.ControlPlanes(), c.Workers()...) }

func (c Cluster) withRole(role string) []Node {
	var out []Node
	for _, n := range c.Nodes {
		if n.Role == role {
			out = append(out, n)
		}
	}
	return out
}

// Addresses returns the addresses of nodes.
func Addresses(nodes []Node) []string {
	out := make([]string, len(nodes))
	for i, n := range nodes {
		out[i] = n.Address
	}
	return out
}

// Problem is one invalid setting: the full key (homelab:cluster.nodes[1].role) and what to do.
type Problem struct {
	Key     string
	Message string
}

// Problems collects every problem found in one pass.
type Problems []Problem

func (p *Problems) add(key, format string, args ...any) {
	*p = append(*p, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
}

// Err returns nil when there is no problem, or an *Error listing all of them.
func (p Problems) Err() error {
	if len(p) == 0 {
		return nil
	}
	return &Error{Problems: p}
}

// Error reports every problem of a stack configuration at once.
type Error struct {
	Problems Problems
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid stack configuration (%d problem", len(e.Problems))
	if len(e.Problems) > 1 {
		b.WriteString("s")
	}
	b.WriteString("):")
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n  - %s: %s", p.Key, p.Message)
	}
	return b.String()
}
