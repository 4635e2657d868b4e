package world

import (
	"slices"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/config/config"

	"homelab/lab/simkit/labevent"
	"homelab/lab/simkit/labtime"
)

// The control planes' shared virtual IP, Talos's Layer 2 VIP, as its operator runs it
// (internal/app/machined/pkg/controllers/network/operator/vip.go, the same at v1.11.5 and v1.12.6;
// v1.13.9 adds a session revoke on exit, which changes nothing here):
//
//   - A control plane campaigns for the address when the VIP is on one of its links
//     (machine.network.interfaces[].vip.ip, or a Layer2VIPConfig document from 1.12,
//     operator_vip_config.go:118-152), its etcd runs and is healthy (vip.go:155-165: a member of a
//     cluster with quorum, here) and its kubelet lifecycle is up (:170-182: the node runs). The
//     election is an etcd campaign on talos:v1:vip:election:<ip> (:150-151).
//   - The holder keeps it while that holds and its API server runs (:343-355).
//   - A node that goes down through a sequence (reboot, upgrade, reset) gives it up in the
//     sequence's cleanup phase, before the kubelet stops (:300-318; v1alpha1_sequencer_tasks.go:
//     952-994), and a waiting candidate wins at once.
//   - A holder that drops off the network gives nothing up: its election lease runs out after etcd's
//     default session TTL, 60 s (vip.go:221; go.etcd.io/etcd/client/v3 concurrency/session.go:26),
//     and only then does another control plane take the address over.
//
// The address is served as each control plane's is: a TCP proxy to the lab's API server on port
// 6443 while its holder's API server runs. Links are not modelled: a VIP on any link of the
// config counts, and the device selector is only validated (by Talos's validator, on apply).
type vipState struct {
	holder *Node
	// lostAt is when an unreachable holder was last seen: the lease runs out 60 s after.
	lostAt time.Time
}

// vipLease is how long an election lease outlives its holder: etcd's default session TTL.
const vipLease = 60 * time.Second

// vips are the shared addresses of a node's config, as its VIP operators would run them.
func (c *machineConfig) vips() []string {
	if c == nil || !c.controlPlane() {
		return nil
	}
	var out []string
	if c.p.Machine() != nil {
		for _, d := range c.p.Machine().Network().Devices() {
			if v := d.VIPConfig(); v != nil && v.IP() != "" {
				out = append(out, v.IP())
			}
		}
	}
	for _, doc := range c.p.Documents() {
		if v, ok := doc.(config.NetworkLayer2VIPConfig); ok && v.VIP().IsValid() {
			out = append(out, v.VIP().String())
		}
	}
	return out
}

// syncVIPs elects each VIP's holder among the candidates and serves the address while its holder's
// API server runs. quorum is whether etcd has a majority. The caller holds no lock.
func (w *World) syncVIPs(k *kube, quorum bool, nodes []*Node) {
	type view struct {
		n         *Node
		vips      []string
		candidate bool
		off       bool
	}
	var views []view
	addrs := map[string]bool{}
	for _, n := range nodes {
		n.mu.Lock()
		v := view{n: n, vips: n.active.vips(), off: n.unreachable}
		v.candidate = quorum && n.etcd && n.phase == phaseRunning && n.rt != nil && !n.unreachable
		n.mu.Unlock()
		for _, a := range v.vips {
			addrs[a] = true
		}
		views = append(views, v)
	}
	now := time.Now()
	w.mu.Lock()
	if w.vips == nil {
		w.vips = map[string]*vipState{}
	}
	type change struct{ op, node, vip string }
	var changes []change
	serve := map[string]bool{}
	var recheck time.Duration
	for a := range addrs {
		st := w.vips[a]
		if st == nil {
			st = &vipState{}
			w.vips[a] = st
		}
		eligible := func(n *Node) bool {
			for _, v := range views {
				if v.n == n {
					return v.candidate && slices.Contains(v.vips, a)
				}
			}
			return false
		}
		if h := st.holder; h != nil && !eligible(h) {
			off := false
			for _, v := range views {
				if v.n == h {
					off = v.off
				}
			}
			switch {
			case off && st.lostAt.IsZero():
				st.lostAt = now
				recheck = labtime.Lab(vipLease)
			case off && now.Sub(st.lostAt) < labtime.Lab(vipLease):
				recheck = labtime.Lab(vipLease) - now.Sub(st.lostAt)
			default: // released in a sequence's cleanup, or the lease ran out
				changes = append(changes, change{"vip-release", h.Addr, a})
				st.holder, st.lostAt = nil, time.Time{}
			}
		}
		if st.holder == nil {
			for _, v := range views {
				if v.candidate && slices.Contains(v.vips, a) {
					st.holder = v.n
					changes = append(changes, change{"vip-acquire", v.n.Addr, a})
					if w.vipHeld == nil {
						w.vipHeld = map[string][]string{}
					}
					if !slices.Contains(w.vipHeld[v.n.Addr], a) {
						w.vipHeld[v.n.Addr] = append(w.vipHeld[v.n.Addr], a)
					}
					break
				}
			}
		}
		serve[a] = st.holder != nil && eligible(st.holder)
	}
	for a, st := range w.vips {
		if !addrs[a] && st.holder != nil { // no config has the VIP any more
			changes = append(changes, change{"vip-release", st.holder.Addr, a})
			st.holder = nil
		}
	}
	w.mu.Unlock()
	for _, c := range changes {
		labevent.Log(w.Dir, labevent.Event{Actor: "talos-node", Op: c.op, Node: c.node, Detail: c.vip})
	}
	if k != nil {
		for a, up := range serve {
			k.serveAt(a, up)
		}
		for a := range w.vipsServed(k) {
			if _, ok := serve[a]; !ok {
				k.serveAt(a, false)
			}
		}
		_ = k.serveSANs(w.apiServerSANs(nodes))
	}
	if recheck > 0 {
		time.AfterFunc(recheck+10*time.Millisecond, w.syncAPIServers)
	}
}

// vipsServed are the proxied addresses that are no node's: the VIPs the API was ever served at.
func (w *World) vipsServed(k *kube) map[string]bool {
	nodes := map[string]bool{}
	for _, n := range w.allNodes() {
		nodes[n.Addr] = true
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	out := map[string]bool{}
	for a := range k.proxies {
		if !nodes[a] {
			out[a] = true
		}
	}
	return out
}

// apiServerSANs are the addresses the API server's certificate names, as each control plane's
// Talos computes them (internal/app/machined/pkg/controllers/secrets/kubernetes_cert_sans.go:123-141,
// the same through v1.13.9): the endpoint's host, cluster.apiServer.certSANs and the node's own
// addresses, which accumulate every address the node ever had, a VIP it once held included
// (network/node_address.go:302-312). One API server serves every control plane here, so its
// certificate names what any of them would; every node's address stays in it (as before Talos
// knew the VIP).
func (w *World) apiServerSANs(nodes []*Node) []string {
	set := map[string]bool{"127.0.0.1": true}
	w.mu.Lock()
	for _, n := range nodes {
		set[n.Addr] = true
		for _, a := range w.vipHeld[n.Addr] {
			set[a] = true
		}
	}
	w.mu.Unlock()
	for _, n := range nodes {
		n.mu.Lock()
		cfg := n.active
		n.mu.Unlock()
		if cfg == nil || !cfg.controlPlane() {
			continue
		}
		c := cfg.p.Cluster()
		set[c.Endpoint().Hostname()] = true
		for _, s := range c.CertSANs() {
			set[s] = true
		}
	}
	var out []string
	for s := range set {
		if s != "" {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}
