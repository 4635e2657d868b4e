package scenarios

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"homelab/internal/fixture"
)

// TestLabTheEndpointMovesOntoAVIP moves norns's endpoint from urd's address onto a shared VIP, as
// docs/configuration.md ("The endpoint") tells an operator to: a run that adds the VIP and moves the
// endpoint at once is refused before it touches anything; the first run adds the VIP (every
// control plane's config, live; the API server's certificate names it), the second moves the
// endpoint (every node's config, live; the kubeconfig; no Kubernetes object replaced). Neither
// takes a node down. Then a rolling reboot with the endpoint on the VIP: the VIP moves off each
// control plane as it goes down, and the API at the endpoint stays up far longer than any node's
// reboot would allow.
func TestLabTheEndpointMovesOntoAVIP(t *testing.T) {
	c := fixture.Cluster(t, "norns")
	l, _ := adoptedLab(t, c)
	urd := c["endpoint"]
	vip := map[string]any{"address": "192.168.0.119", "interface": map[string]any{"physical": true}}

	t.Run("the endpoint cannot move in the run that adds the VIP", func(t *testing.T) {
		c["vip"], c["endpoint"] = vip, "https://192.168.0.119:6443"
		l.configure(c)
		p := l.preview()
		if p.err == nil || !strings.Contains(p.output, "homelab:cluster.endpoint") || !strings.Contains(p.output, "add the VIP first") {
			t.Errorf("the preview gave %v; want a refusal naming homelab:cluster.endpoint\n%s", p.err, tail(p.output))
		}
		for _, e := range p.events {
			if e.Actor == "talos-node" {
				t.Errorf("the refused preview reached %s: %s", labNameOf(e.Node), e.Op)
			}
		}
	})

	t.Run("first run: the control planes take the VIP", func(t *testing.T) {
		c["endpoint"] = urd
		l.configure(c)
		s := l.mustUp()
		l.figures("add a VIP", s)
		l.liveOnly(t, s, nornsControlPlanes)
		st := l.w.snapshot()
		if st.VIPs[labVIP] == "" {
			t.Errorf("no control plane holds the VIP: %v", st.VIPs)
		}
		if !slices.Contains(st.APIServerSANs, labVIP) {
			t.Errorf("the API server's certificate names %v, not the VIP", st.APIServerSANs)
		}
		noReplacement(t, s)
	})

	t.Run("second run: the endpoint moves onto the VIP", func(t *testing.T) {
		c["endpoint"] = "https://192.168.0.119:6443"
		l.configure(c)
		s := l.mustUp()
		l.figures("move the endpoint onto the VIP", s)
		l.liveOnly(t, s, nornsControlPlanes)
		noReplacement(t, s)
		for _, n := range l.w.snapshot().Nodes {
			if !strings.Contains(n.Config, "endpoint: https://"+labVIP+":6443") {
				t.Errorf("%s's config does not name the VIP as its endpoint", labNameOf(n.Address))
			}
		}
		kc := l.kubeconfigOutput(t)
		if !strings.Contains(kc, "server: https://"+labVIP+":6443") {
			t.Errorf("the stack's kubeconfig does not point at the VIP")
		}
		if err := apiProbe(t, kc)(); err != nil {
			t.Errorf("the API does not answer at the VIP with the stack's kubeconfig: %v", err)
		}
		l.noNodeTouched(l.mustUp())
	})

	t.Run("a rolling reboot keeps the API up at the VIP", func(t *testing.T) {
		probe := apiProbe(t, l.kubeconfigOutput(t))
		stop := make(chan struct{})
		var mu sync.Mutex
		var outage, longest time.Duration
		var last time.Time
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				now := time.Now()
				err := probe()
				mu.Lock()
				if err != nil && !last.IsZero() {
					outage += now.Sub(last)
					longest = max(longest, outage)
				} else if err == nil {
					outage = 0
				}
				last = now
				mu.Unlock()
			}
		}()
		l.setData(fixture.SrcWith(t, map[string]string{"talos/patches/env.yaml": "machine:\n  env:\n    GODEBUG: netdns=go\n"}))
		run := len(l.w.events()) // the index of this run's first event
		s := l.mustUp()
		close(stop)
		wg.Wait()
		l.figures("rolling reboot with the endpoint on the VIP", s)
		downOnce(t, l, s, "reboot")
		// Which control plane wins the VIP's first election is a race, so the rule is checked per
		// reboot: a node that goes down never holds the VIP then (it released it in its shutdown
		// sequence; a lease running out would release it only after the node was down), and the
		// VIP moved at least once (every node rebooted, its holder too).
		holder, moves := "", 0
		for i, e := range l.w.events() {
			switch name := labNameOf(e.Node); e.Op {
			case "vip-acquire":
				holder = name
			case "vip-release":
				if holder == name {
					holder = ""
					if i >= run {
						moves++
					}
				}
			case "reboot":
				if holder == name {
					t.Errorf("%s went down holding the VIP; want it to leave each holder as it went down", name)
				}
			}
		}
		if moves == 0 {
			t.Error("the VIP never moved during the reboots; want it to leave each holder as it went down")
		}
		var shortest time.Duration
		for _, d := range downtimes(s.events) {
			if shortest == 0 || d.end.Sub(d.start) < shortest {
				shortest = d.end.Sub(d.start)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if longest >= shortest/2 {
			t.Errorf("the API at the VIP was gone for %s at a stretch; a node's reboot takes %s", longest, shortest)
		}
	})
}

// liveOnly checks that a run changed the configs of exactly the given nodes, live, and took no
// node down.
func (l *lab) liveOnly(t *testing.T, s step, nodes map[string]bool) {
	t.Helper()
	for _, e := range s.events {
		if e.Actor != "talos-node" {
			continue
		}
		// The rollout stages every config first, then applies it live: a staged config is no
		// reboot, only a node going down is.
		switch {
		case e.Op == "reboot" || e.Op == "upgrade":
			t.Errorf("%s: %s %s, want a live change only", labNameOf(e.Node), e.Op, e.Detail)
		case (e.Op == "apply-live" || e.Op == "apply-staged") && e.Detail == "changed" && !nodes[labNameOf(e.Node)]:
			t.Errorf("%s's config changed", labNameOf(e.Node))
		}
	}
	for n := range nodes {
		if !slices.ContainsFunc(s.events, func(e labEvent) bool {
			return e.Op == "apply-live" && e.Detail == "changed" && labNameOf(e.Node) == n
		}) {
			t.Errorf("%s's config did not change live", n)
		}
	}
}

// noReplacement checks that a run replaced and deleted nothing: the Kubernetes provider kept its
// objects (a provider replaced for a new kubeconfig server would replace every one of them).
func noReplacement(t *testing.T, s step) {
	t.Helper()
	for name, op := range s.ops {
		if strings.Contains(op, "replace") || op == "delete" || op == "discard" {
			t.Errorf("%s: %s; want every resource kept in place", name, op)
		}
	}
}

// kubeconfigOutput is the stack's kubeconfig output.
func (l *lab) kubeconfigOutput(t *testing.T) string {
	t.Helper()
	outputs, err := l.stack.Outputs(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	kc, _ := outputs["kubeconfig"].Value.(string)
	if kc == "" {
		t.Fatal("the stack has no kubeconfig output")
	}
	return kc
}

// apiProbe returns a check of the Kubernetes API at the kubeconfig's server, as a client of that
// kubeconfig sees it: TLS verified against the cluster's CA for the server's address, the
// kubeconfig's client certificate, /readyz answering 200.
func apiProbe(t *testing.T, kubeconfig string) func() error {
	t.Helper()
	var kc struct {
		Clusters []struct {
			Cluster struct {
				Server string `yaml:"server"`
				CA     string `yaml:"certificate-authority-data"`
			} `yaml:"cluster"`
		} `yaml:"clusters"`
		Users []struct {
			User struct {
				Cert string `yaml:"client-certificate-data"`
				Key  string `yaml:"client-key-data"`
			} `yaml:"user"`
		} `yaml:"users"`
	}
	if err := yaml.Unmarshal([]byte(kubeconfig), &kc); err != nil || len(kc.Clusters) == 0 || len(kc.Users) == 0 {
		t.Fatalf("the kubeconfig does not parse: %v", err)
	}
	decode := func(s string) []byte {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(decode(kc.Clusters[0].Cluster.CA))
	cert, err := tls.X509KeyPair(decode(kc.Users[0].User.Cert), decode(kc.Users[0].User.Key))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
		DisableKeepAlives: true,
	}}
	url := kc.Clusters[0].Cluster.Server + "/readyz"
	return func() error {
		resp, err := client.Get(url)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", url, resp.Status)
		}
		return nil
	}
}
