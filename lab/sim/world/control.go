package world

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
)

// State is the world as the control API reports it.
type State struct {
	Nodes        []NodeState  `json:"nodes"`
	Bootstrapped bool         `json:"bootstrapped"`
	EtcdMembers  []EtcdMember `json:"etcdMembers"`
	// Kubeconfig is an admin kubeconfig for the lab's Kubernetes API, once it runs.
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// VIPs maps each shared VIP to the address of the control plane holding it ("" for none).
	VIPs map[string]string `json:"vips,omitempty"`
	// APIServerSANs are the names the API server's serving certificate holds.
	APIServerSANs []string `json:"apiServerSANs,omitempty"`
}

// EtcdMember is one etcd member.
type EtcdMember struct {
	Name    string `json:"name"`
	Address string `json:"address"`
}

// Snapshot returns the world's state.
func (w *World) Snapshot() State {
	var s State
	for _, n := range w.allNodes() {
		s.Nodes = append(s.Nodes, n.state())
	}
	w.mu.Lock()
	s.Bootstrapped = w.bootstrapped
	for _, m := range w.etcd {
		s.EtcdMembers = append(s.EtcdMembers, EtcdMember{Name: m.name, Address: m.addr})
	}
	for a, st := range w.vips {
		if s.VIPs == nil {
			s.VIPs = map[string]string{}
		}
		s.VIPs[a] = ""
		if st.holder != nil {
			s.VIPs[a] = st.holder.Addr
		}
	}
	k := w.kube
	w.mu.Unlock()
	if k != nil {
		k.mu.Lock()
		s.APIServerSANs = slices.Clone(k.sans)
		k.mu.Unlock()
		s.Kubeconfig = kubeconfigText("lab", fmt.Sprintf("https://127.0.0.1:%d", k.apiPort), k.ca.certPEM, k.admin.certPEM, k.admin.keyPEM)
	}
	return s
}

// Serve answers the control API on a unix socket until the listener closes:
//
//	GET  /state                          the world (State)
//	GET  /goroutines                     every goroutine's stack, with how long it has waited
//	                                     (what a failed scenario keeps, to show a hung world)
//	POST /nodes                          add a machine (NodeSpec) and power it on
//	POST /adopted                        start the control plane of configured etcd members
//	POST /nodes/<address>/unreachable    take a node off the network
//	POST /nodes/<address>/reachable      put it back
//	POST /nodes/<address>/power-on       power a machine on
//	POST /nodes/<address>/registry-down  cut a node off its image registries
//	POST /nodes/<address>/registry-up    give them back
//	POST /charts                         install a chart's objects ({name, namespace, values})
//	POST /shutdown                       stop everything
func (w *World) Serve(socket string, shutdown func()) error {
	_ = os.Remove(socket)
	l, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	reply := func(rw http.ResponseWriter, v any, err error) {
		if err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		rw.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(rw).Encode(v)
	}
	mux.HandleFunc("GET /state", func(rw http.ResponseWriter, r *http.Request) { reply(rw, w.Snapshot(), nil) })
	mux.HandleFunc("GET /goroutines", func(rw http.ResponseWriter, r *http.Request) {
		_ = pprof.Lookup("goroutine").WriteTo(rw, 2)
	})
	mux.HandleFunc("POST /nodes", func(rw http.ResponseWriter, r *http.Request) {
		var spec NodeSpec
		if err := json.NewDecoder(r.Body).Decode(&spec); err != nil {
			reply(rw, nil, err)
			return
		}
		reply(rw, map[string]string{}, w.AddNode(spec))
	})
	mux.HandleFunc("POST /adopted", func(rw http.ResponseWriter, r *http.Request) { reply(rw, map[string]string{}, w.StartAdopted()) })
	mux.HandleFunc("POST /nodes/{addr}/{action}", func(rw http.ResponseWriter, r *http.Request) {
		n := w.node(r.PathValue("addr"))
		if n == nil {
			reply(rw, nil, fmt.Errorf("no node %s", r.PathValue("addr")))
			return
		}
		switch strings.ToLower(r.PathValue("action")) {
		case "unreachable":
			n.setUnreachable(true)
		case "reachable":
			n.setUnreachable(false)
		case "power-on":
			n.powerOn()
		case "registry-down":
			n.setRegistryDown(true)
		case "registry-up":
			n.setRegistryDown(false)
		default:
			reply(rw, nil, fmt.Errorf("unknown action %s", r.PathValue("action")))
			return
		}
		reply(rw, map[string]string{}, nil)
	})
	mux.HandleFunc("POST /etcd/data-lost", func(rw http.ResponseWriter, r *http.Request) {
		// The nodes' EPHEMERAL partitions are gone at once (failed disks): their etcd data with them.
		// They run on, their etcd waiting to join a cluster with a quorum.
		var req struct{ Nodes []string }
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			reply(rw, nil, err)
			return
		}
		var nodes []*Node
		for _, a := range req.Nodes {
			n := w.node(a)
			if n == nil {
				reply(rw, nil, fmt.Errorf("no node %s", a))
				return
			}
			nodes = append(nodes, n)
		}
		w.etcdDataLost(nodes...)
		reply(rw, map[string]string{}, nil)
	})
	mux.HandleFunc("POST /charts", func(rw http.ResponseWriter, r *http.Request) {
		var c struct {
			Name, Namespace string
			Values          map[string]any
		}
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
			reply(rw, nil, err)
			return
		}
		reply(rw, map[string]string{}, w.InstallChart(c.Name, c.Namespace, c.Values))
	})
	mux.HandleFunc("POST /shutdown", func(rw http.ResponseWriter, r *http.Request) {
		reply(rw, map[string]string{}, nil)
		go shutdown()
	})
	return http.Serve(l, mux)
}
