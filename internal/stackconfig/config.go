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
	Backup      Backup
}

// Backup is the homelab:backup key: where cmd/etcd puts the cluster's etcd snapshots. Optional:
// without s3 no snapshot is taken (docs/operations.md, "etcd snapshots").
type Backup struct {
	// S3 is the S3-compatible bucket the snapshots go to. Its access key comes from the vault
	// item Item (fields accessKeyID and secretAccessKey), never from here.
	S3 *S3Bucket `json:"s3,omitempty"`
	// Recipients are the age public keys (age1...) every snapshot is encrypted to, before it
	// leaves the machine that took it. Required with s3. The matching identity (the private key)
	// stays out of the repository and the runner: the identity vault, and an offline copy.
	Recipients []string `json:"recipients,omitempty"`
	// Keep is how many snapshots stay in the bucket, newest first; older ones are deleted after
	// each new one is stored. Optional; default DefaultSnapshotsKept.
	Keep int `json:"keep,omitempty"`
	// Item is the vault item with the bucket's access key. Optional; default etcd-backup.
	Item string `json:"item,omitempty"`
}

// S3Bucket is an S3-compatible bucket.
type S3Bucket struct {
	// Endpoint is the server's URL, https://host[:port] (http:// only for a server on loopback).
	Endpoint string `json:"endpoint"`
	// Bucket is the bucket's name. Required.
	Bucket string `json:"bucket"`
	// Prefix goes in front of every object name (a folder: norns/). Optional.
	Prefix string `json:"prefix,omitempty"`
	// Region is the bucket's region. Optional; default us-east-1.
	Region string `json:"region,omitempty"`
}

// Backup defaults.
const (
	DefaultSnapshotsKept = 14
	DefaultBackupItem    = "etcd-backup"
)

// Rollout is the homelab:rollout key: how long a node may take to go down and come back.
type Rollout struct {
	// UpgradeTimeout bounds one node's Talos upgrade, from the request to the node running the
	// new release: the installer image pull, the drain, the installer, and the reboot through the
	// firmware. Optional; default DefaultNodeDowntime.
	UpgradeTimeout string `json:"upgradeTimeout,omitempty"`
	// RebootTimeout bounds one node's reboot into a staged config. Optional; default
	// DefaultNodeDowntime.
	RebootTimeout string `json:"rebootTimeout,omitempty"`
	// MaxUnavailable is how many workers a rollout takes down at once: workers go in batches of
	// at most this many, in roll order, each batch waiting for the last to be healthy. Control
	// planes always go one at a time. Optional; default 1.
	MaxUnavailable *int `json:"maxUnavailable,omitempty"`
}

// Batch is how many workers a rollout takes down at once.
func (r Rollout) Batch() int {
	if r.MaxUnavailable == nil {
		return 1
	}
	return *r.MaxUnavailable
}

// RollBatches are the nodes of c in the order a rollout takes them down: each control plane
// alone, then the workers in batches of at most batch, in roll order. A batch starts once the
// one before it is healthy again.
func RollBatches(c Cluster, batch int) [][]Node {
	var out [][]Node
	for _, n := range c.ControlPlanes() {
		out = append(out, []Node{n})
	}
	workers := c.Workers()
	for batch > 0 && len(workers) > 0 {
		k := min(batch, len(workers))
		out = append(out, workers[:k])
		workers = workers[k:]
	}
	return out
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
	// BackupVault is the vault of the backup item: the cluster's root keys, kept out of the vault
	// the in-cluster Connect server reads (grant the Connect server only Vault). The provider's
	// account needs read and write access to it. Optional; default <vault>-identity. A change
	// moves the item, never leaving two copies (lifecycle.PlanBackup).
	BackupVault string `json:"backupVault,omitempty"`
	// WatchNamespaces are the namespaces, besides the program's own (Argo CD's), whose
	// OnePasswordItems the 1Password operator syncs into Secrets; it watches no other. Optional.
	WatchNamespaces []string `json:"watchNamespaces,omitempty"`
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
	// Endpoint is the Kubernetes API endpoint, https://host:port. Its host is a control plane's
	// address, the cluster's VIP (VIP.Address), or an external load balancer in front of the control
	// planes (a DNS name, or an address with EndpointLoadBalancer set); never a worker's address or
	// one inside the L2 pool. Required.
	Endpoint string `json:"endpoint"`
	// EndpointLoadBalancer declares the endpoint's address an external load balancer in front of the
	// control planes. Optional; default false (a DNS name counts as one without it).
	EndpointLoadBalancer bool `json:"endpointLoadBalancer,omitempty"`
	// VIP is a virtual IP the control planes share (Talos's Layer 2 VIP: the one an election picks
	// holds it and answers ARP for it), so the endpoint survives any one control plane going down.
	// Optional; set it in one run, then point the endpoint at it in the next.
	VIP *VIP `json:"vip,omitempty"`
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

// VIP is the control planes' shared virtual IP.
type VIP struct {
	// Address is the VIP, an address on the control planes' network that no node and no pool uses. Required.
	Address string `json:"address"`
	// Interface picks each control plane's link that carries it, by Talos's device selector:
	// hardwareAddr, permanentAddr, busPath, pciID, driver (each may hold * wildcards), physical.
	// Required: at least one field.
	Interface DeviceSelector `json:"interface"`
	// DHCP keeps DHCP on that link: configuring a link in Talos replaces the default, which runs
	// DHCP on every link. Optional; default true (false for static addressing in a patch of yours).
	DHCP *bool `json:"dhcp,omitempty"`
}

// DeviceSelector is Talos's network device selector (machine.network.interfaces[].deviceSelector).
type DeviceSelector struct {
	HardwareAddr  string `json:"hardwareAddr,omitempty"`
	PermanentAddr string `json:"permanentAddr,omitempty"`
	BusPath       string `json:"busPath,omitempty"`
	PCIID         string `json:"pciID,omitempty"`
	Driver        string `json:"driver,omitempty"`
	Physical      *bool  `json:"physical,omitempty"`
}

// Map is the selector as Talos's deviceSelector, its set fields only.
func (d DeviceSelector) Map() map[string]any {
	m := map[string]any{}
	for k, v := range map[string]string{"hardwareAddr": d.HardwareAddr, "permanentAddr": d.PermanentAddr, "busPath": d.BusPath,
		"pciID": d.PCIID, "driver": d.Driver} {
		if v != "" {
			m[k] = v
		}
	}
	if d.Physical != nil {
		m["physical"] = *d.Physical
	}
	return m
}

// Empty reports whether the selector selects nothing.
func (d DeviceSelector) Empty() bool { return d == (DeviceSelector{}) }

// DHCPOn is whether the VIP's link keeps DHCP.
func (v VIP) DHCPOn() bool { return v.DHCP == nil || *v.DHCP }

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
	if text, ok := src("backup"); ok {
		decodeStrict(Namespace+":backup", text, &cfg.Backup, &p)
	}
	cfg.Backup.validate(Namespace+":backup", &p)
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
			if !p.typoFor(key + ".installDisk") {
				p.add(nk+".installDisk", "required because %s.installDisk is not set; set one of them, e.g. /dev/nvme0n1", key)
			}
		default:
			n.InstallDisk = c.InstallDisk
		}
	}
	c.checkEndpoint(key, p)
	if controlPlanes == 0 {
		p.add(key+".nodes", "no node has role %s; a cluster needs at least one control plane", RoleControlPlane)
	} else if controlPlanes%2 == 0 {
		warnings = append(warnings, fmt.Sprintf("%s.nodes: %d control planes; etcd tolerates no more failures with an even count than with one fewer, so use an odd number", key, controlPlanes))
	}
	return warnings
}

// checkEndpoint checks what the endpoint's host is: the API server must answer there whichever
// control plane is down. A control plane's address, the VIP or a declared load balancer (a DNS
// name is taken as one) may be the endpoint; a worker's address may not (it serves no API server),
// nor one no node or VIP has.
func (c *Cluster) checkEndpoint(key string, p *Problems) {
	fix := fmt.Sprintf("point it at a control plane's address, at the VIP (%s.vip), or at an external load balancer (%s.endpointLoadBalancer: true)", key, key)
	if c.VIP != nil {
		vk := key + ".vip"
		a, err := netip.ParseAddr(c.VIP.Address)
		switch {
		case c.VIP.Address == "":
			p.add(vk+".address", "required; set the shared virtual IP of the control planes, an unused address on their network")
		case err != nil || a.Zone() != "":
			p.add(vk+".address", "%q is not an IP address; set the shared virtual IP of the control planes, e.g. 192.168.0.119", c.VIP.Address)
		default:
			for i, n := range c.Nodes {
				if n.Address == a.String() {
					p.add(vk+".address", "%s is node %s's address (nodes[%d]); the VIP must be an address no node has", c.VIP.Address, n.Name, i)
				}
			}
		}
		if c.VIP.Interface.Empty() {
			p.add(vk+".interface", "required; pick the control planes' link with a device selector, e.g. {driver: igc} or {hardwareAddr: \"aa:bb:cc:*\"}")
		}
	}
	u, err := url.Parse(c.Endpoint)
	if c.Endpoint == "" || err != nil || checkEndpoint(c.Endpoint) != nil {
		return // the endpoint's own form is reported above
	}
	host := u.Hostname()
	a, err := netip.ParseAddr(host)
	if err != nil {
		return // a DNS name: an external load balancer (or DNS round robin) in front of the control planes
	}
	for i, n := range c.Nodes {
		if n.Address != a.String() {
			continue
		}
		if n.Role != RoleControlPlane {
			p.add(key+".endpoint", "%s is worker %s's address (nodes[%d]), which serves no API server: %s", host, n.Name, i, fix)
		}
		return
	}
	if c.VIP != nil && c.VIP.Address == a.String() {
		return
	}
	if !c.EndpointLoadBalancer {
		p.add(key+".endpoint", "no node and no VIP has the address %s: %s", host, fix)
	}
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
			inPool := func(s string) bool {
				a, err := netip.ParseAddr(s)
				return err == nil && !a.Less(start) && !stop.Less(a)
			}
			if u, err := url.Parse(c.Endpoint); err == nil && inPool(u.Hostname()) {
				p.add(Namespace+":cluster.endpoint", "%s is inside %s (%s-%s), whose addresses Cilium hands to LoadBalancer services and announces: "+
					"point the endpoint at a control plane's address or the VIP, or move the pool", u.Hostname(), rk, r.Start, r.Stop)
			}
			if c.VIP != nil && inPool(c.VIP.Address) {
				p.add(Namespace+":cluster.vip.address", "%s is inside %s (%s-%s), whose addresses Cilium hands to LoadBalancer services: choose an address outside the pool",
					c.VIP.Address, rk, r.Start, r.Stop)
			}
		}
	}
}

func (r *Rollout) validate(key string, p *Problems) (warnings []string) {
	if r.MaxUnavailable != nil && *r.MaxUnavailable < 1 {
		p.add(key+".maxUnavailable", "%d: at least one worker must go at a time; set 1 (the default) or more", *r.MaxUnavailable)
	}
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
	o.BackupVault = defaulted(o.BackupVault, o.Vault+"-identity")
	if o.BackupVault == o.Vault {
		p.add(key+".backupVault", "%q is the vault the cluster's Connect server reads, and the backup holds the cluster's root keys: "+
			"name a vault that only the provider's account can read (default %s-identity)", o.BackupVault, o.Vault)
	}
	for i, ns := range o.WatchNamespaces {
		if !labelRe.MatchString(ns) {
			p.add(fmt.Sprintf("%s.watchNamespaces[%d]", key, i), "%q is not a namespace name (lowercase letters, digits and '-')", ns)
		}
	}
	o.ConnectChart.Version = defaulted(o.ConnectChart.Version, DefaultConnectChartVersion)
	checkChart(p, key+".connectChart.version", o.ConnectChart.Version, DefaultConnectChartVersion)
	for k, v := range map[string]string{"vault": o.Vault, "connectItem": o.ConnectItem, "backupItem": o.BackupItem, "backupVault": o.BackupVault} {
		if strings.TrimSpace(v) != v || strings.Contains(v, "/") {
			p.add(key+"."+k, "%q has leading or trailing spaces or a '/'; use the vault or item title as 1Password shows it", v)
		}
	}
}

var (
	ageRecipientRe = regexp.MustCompile(`^age1[02-9ac-hj-np-z]{58}$`)
	bucketRe       = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)
)

func (b *Backup) validate(key string, p *Problems) {
	if b.Keep == 0 {
		b.Keep = DefaultSnapshotsKept
	}
	b.Item = defaulted(b.Item, DefaultBackupItem)
	if b.Keep < 1 {
		p.add(key+".keep", "%d: keep at least the newest snapshot; set 1 or more (default %d)", b.Keep, DefaultSnapshotsKept)
	}
	if b.S3 == nil {
		if len(b.Recipients) > 0 {
			p.add(key+".s3", "required with recipients: set the bucket the snapshots go to, {endpoint: https://..., bucket: ...}")
		}
		return
	}
	u, err := url.Parse(b.S3.Endpoint)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || (u.Path != "" && u.Path != "/"):
		p.add(key+".s3.endpoint", "%q is not a server URL; write it like https://s3.lan:9000", b.S3.Endpoint)
	case u.Scheme == "http" && !loopback(u.Hostname()):
		p.add(key+".s3.endpoint", "%q sends the snapshots and the bucket's key in clear over the network; use https://", b.S3.Endpoint)
	}
	if !bucketRe.MatchString(b.S3.Bucket) {
		p.add(key+".s3.bucket", "%q is not a bucket name (3 to 63 lowercase letters, digits, '.' and '-')", b.S3.Bucket)
	}
	b.S3.Region = defaulted(b.S3.Region, "us-east-1")
	if len(b.Recipients) == 0 {
		p.add(key+".recipients", "required: the age public keys (age1...) the snapshots are encrypted to; make one with age-keygen and keep its identity out of the repository")
	}
	for i, r := range b.Recipients {
		if !ageRecipientRe.MatchString(r) {
			p.add(fmt.Sprintf("%s.recipients[%d]", key, i), "%q is not an age public key (age1 followed by 58 characters, as age-keygen -y prints it)", r)
		}
	}
}

func loopback(host string) bool {
	a, err := netip.ParseAddr(host)
	return host == "localhost" || (err == nil && a.IsLoopback())
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

// typoKey marks, among the problems, a key that an unknown key was probably meant to be: a rule
// that finds that key missing says nothing more (the typo's own problem already names it).
const typoKey = "(typo for)"

func (p *Problems) typo(key string) { *p = append(*p, Problem{Key: key, Message: typoKey}) }

// typoFor reports whether an unknown key was probably meant to be key.
func (p Problems) typoFor(key string) bool {
	for _, x := range p {
		if x.Key == key && x.Message == typoKey {
			return true
		}
	}
	return false
}

// Err returns nil when there is no problem, or an *Error listing all of them.
func (p Problems) Err() error {
	var real Problems
	for _, x := range p {
		if x.Message == typoKey || (strings.HasPrefix(x.Message, "required") && p.typoFor(x.Key)) {
			continue // a typo's knock-on: the unknown key's own problem names the fix
		}
		real = append(real, x)
	}
	if len(real) == 0 {
		return nil
	}
	return &Error{Problems: real}
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
