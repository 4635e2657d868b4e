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
	Cluster    Cluster
	Networking Networking
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

// Defaults of homelab:networking.
const (
	DefaultGatewayAPIVersion = "v1.2.1"
	DefaultCiliumVersion     = "1.18.3"
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
	// Contract is the machine-config version contract, vX.Y. Optional; defaults to the major.minor of
	// TalosVersion. It is fixed for the life of the cluster: pin it to the original value before you
	// raise TalosVersion, because a newer contract changes generated defaults on running nodes.
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
	if text, ok := src("networking"); ok {
		decodeStrict(Namespace+":networking", text, &cfg.Networking, &p)
	}
	cfg.Networking.validate(Namespace+":networking", cfg.Cluster, &p)
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
		} else if versionRe.MatchString(c.TalosVersion) && newer(c.Contract, majorMinor(c.TalosVersion)) {
			p.add(key+".contract", "%s is newer than talosVersion %s, whose nodes reject its config; set it to %s or lower", c.Contract, c.TalosVersion, majorMinor(c.TalosVersion))
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
	if n.Cilium.Version == "" {
		n.Cilium.Version = DefaultCiliumVersion
	} else if !chartRe.MatchString(n.Cilium.Version) {
		p.add(key+".cilium.version", "%q is not a chart version of the form X.Y.Z (no leading v); write it like %s", n.Cilium.Version, DefaultCiliumVersion)
	}
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

// newer reports whether contract a (vX.Y) is newer than b.
func newer(a, b string) bool {
	parse := func(s string) (int, int) {
		major, minor, _ := strings.Cut(strings.TrimPrefix(s, "v"), ".")
		x, _ := strconv.Atoi(major)
		y, _ := strconv.Atoi(minor)
		return x, y
	}
	ax, ay := parse(a)
	bx, by := parse(b)
	return ax > bx || (ax == bx && ay > by)
}

// VersionContract is the machine-config contract, vX.Y: Contract, or the major.minor of TalosVersion.
func (c Cluster) VersionContract() string {
	if c.Contract != "" {
		return c.Contract
	}
	return majorMinor(c.TalosVersion)
}

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
