package lifecycle_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	_ "homelab/internal/golden" // defines -update, so `go test ./... -update` runs here too
	"homelab/internal/lifecycle"
	"homelab/internal/stackconfig"
)

func norns(talos, kube string, nodes ...string) stackconfig.Cluster {
	c := stackconfig.Cluster{Name: "norns", Endpoint: "https://192.168.0.120:6443", TalosVersion: talos, KubernetesVersion: kube}
	addr := map[string]string{"urd": "192.168.0.120", "verdandi": "192.168.0.121", "skuld": "192.168.0.122", "w1": "192.168.0.131"}
	for _, n := range nodes {
		role := stackconfig.RoleControlPlane
		if strings.HasPrefix(n, "w") {
			role = stackconfig.RoleWorker
		}
		c.Nodes = append(c.Nodes, stackconfig.Node{Name: n, Address: addr[n], Role: role})
	}
	return c
}

// cfg is a stack config with cluster c and Cilium at the default pin.
func cfg(c stackconfig.Cluster) *stackconfig.Config {
	return &stackconfig.Config{Cluster: c, Networking: stackconfig.Networking{Cilium: stackconfig.Cilium{Version: stackconfig.DefaultCiliumVersion}}}
}

func deployed(c stackconfig.Cluster) *lifecycle.Deployed {
	d := lifecycle.Record(cfg(c), lifecycle.Plan{})
	return &d
}

func decide(prev *lifecycle.Deployed, c stackconfig.Cluster) (lifecycle.Plan, error) {
	return lifecycle.Decide(prev, cfg(c))
}

func TestPlanFollowsTheChange(t *testing.T) {
	prev := deployed(norns("v1.11.5", "v1.34.1", "urd", "verdandi", "skuld", "w1"))
	p, err := decide(prev, norns("v1.11.6", "v1.34.2", "urd", "verdandi", "skuld"))
	if err != nil {
		t.Fatal(err)
	}
	if p.TalosFrom != "v1.11.5" || p.TalosTo != "v1.11.6" || p.KubernetesFrom != "v1.34.1" || p.KubernetesTo != "v1.34.2" {
		t.Errorf("plan %+v", p)
	}
	if len(p.Removed) != 1 || p.Removed[0].Name != "w1" {
		t.Errorf("removed %v, want w1", p.Removed)
	}
	if p, err := decide(nil, norns("v1.11.5", "v1.34.1", "urd")); err != nil || p.TalosTo != "" || len(p.Removed) != 0 {
		t.Errorf("a stack that never deployed plans %+v, %v", p, err)
	}
}

func TestRefusedChangesNameTheKeyAndTheFix(t *testing.T) {
	three := func(talos, kube string) stackconfig.Cluster { return norns(talos, kube, "urd", "verdandi", "skuld") }
	for _, c := range []struct {
		name      string
		prev, now stackconfig.Cluster
		want      []string
	}{
		{"Talos downgrade", three("v1.11.5", "v1.34.1"), three("v1.11.4", "v1.34.1"),
			[]string{"homelab:cluster.talosVersion", "v1.11.4 is older", "downgrades are refused", "set it back to v1.11.5"}},
		{"Talos skips a minor", three("v1.11.5", "v1.34.1"), three("v1.13.9", "v1.34.1"),
			[]string{"homelab:cluster.talosVersion", "v1.11.5 to v1.13.9 skips a minor release", "set v1.12.x first"}},
		{"Talos newer than the program carries out", three("v1.13.9", "v1.36.5"), three("v1.14.0", "v1.36.5"),
			[]string{"homelab:cluster.talosVersion", "Talos v1.14.0 is newer than this program can carry out", "set talosVersion to v1.13.9 or lower"}},
		{"contract moved back", func() stackconfig.Cluster {
			c := three("v1.12.6", "v1.35.8")
			c.Contract = "v1.12"
			return c
		}(), func() stackconfig.Cluster {
			c := three("v1.12.6", "v1.35.8")
			c.Contract = "v1.11"
			return c
		}(), []string{"homelab:cluster.contract", "follow contract v1.12 and v1.11 is older", "set it back to v1.12"}},
		{"Kubernetes downgrade", three("v1.11.5", "v1.34.1"), three("v1.11.5", "v1.33.5"),
			[]string{"homelab:cluster.kubernetesVersion", "cannot be downgraded", "set it back to v1.34.1"}},
		{"Kubernetes skips a minor", three("v1.11.5", "v1.32.3"), three("v1.11.5", "v1.34.1"),
			[]string{"homelab:cluster.kubernetesVersion", "skips a minor version", "set v1.33.x first"}},
		{"Kubernetes outside the matrix", three("v1.11.5", "v1.34.1"), three("v1.11.5", "v1.35.0"),
			[]string{"homelab:cluster.kubernetesVersion", "too new to be used with Talos"}},
		{"two control planes at once", three("v1.11.5", "v1.34.1"), norns("v1.11.5", "v1.34.1", "urd"),
			[]string{"homelab:cluster.nodes", "2 control planes removed in one run"}},
		{"a minor upgrade that would move the contract", three("v1.10.8", "v1.33.5"), three("v1.11.5", "v1.33.5"),
			[]string{"homelab:cluster.contract", "from v1.10 to v1.11", "set contract: v1.10 to keep it", "its own previewed change"}},
		{"a contract moved with the upgrade", three("v1.11.5", "v1.34.1"), func() stackconfig.Cluster {
			c := three("v1.12.6", "v1.34.1")
			c.Contract = "v1.12"
			return c
		}(), []string{"homelab:cluster.contract", "from v1.11 to v1.12 in the same run as talosVersion", "upgrade Talos with contract: v1.11"}},
		{"secure boot switched on a running cluster", three("v1.11.5", "v1.34.1"), func() stackconfig.Cluster {
			c := three("v1.11.5", "v1.34.1")
			c.SecureBoot = true
			return c
		}(), []string{"homelab:cluster.secureBoot", "installed with secureBoot false", "set it back to false"}},
		{"the endpoint's node", three("v1.11.5", "v1.34.1"), norns("v1.11.5", "v1.34.1", "verdandi", "skuld"),
			[]string{"homelab:cluster.nodes", "urd is removed but homelab:cluster.endpoint", "move the endpoint"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := decide(deployed(c.prev), c.now)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestKubernetesMayMoveOneMinorWithinTheMatrix(t *testing.T) {
	prev := deployed(norns("v1.11.5", "v1.33.5", "urd"))
	if _, err := decide(prev, norns("v1.11.5", "v1.34.2", "urd")); err != nil {
		t.Errorf("1.33 to 1.34 on Talos 1.11 refused: %v", err)
	}
}

func TestContractStaysUnlessTheStackMovesIt(t *testing.T) {
	prev := deployed(norns("v1.10.8", "v1.33.5", "urd", "verdandi", "skuld"))
	now := norns("v1.11.5", "v1.33.5", "urd", "verdandi", "skuld")
	now.Contract = "v1.10"
	if _, err := decide(prev, now); err != nil {
		t.Errorf("contract v1.10 kept across the minor upgrade: %v", err)
	}
	// Then the contract moves on its own, and the plan says so.
	moved := now
	moved.Contract = "v1.11"
	after := now
	p, err := decide(deployed(after), moved)
	if err != nil || p.ContractFrom != "v1.10" || p.ContractTo != "v1.11" {
		t.Errorf("a contract moved on its own: plan %+v, %v", p, err)
	}
	if _, err := decide(deployed(norns("v1.11.5", "v1.34.1", "urd")), norns("v1.11.6", "v1.34.1", "urd")); err != nil {
		t.Errorf("a patch release moves no contract, yet: %v", err)
	}
}

// Talos, then Kubernetes, a minor release at a time, is the only order the support matrix allows
// from norns's versions to the newest this program carries out: each step of the upgrade path is
// accepted, and each step taken out of turn is refused.
func TestTheUpgradePathIsTheOnlyOrder(t *testing.T) {
	three := func(talos, kube string) stackconfig.Cluster {
		c := norns(talos, kube, "urd", "verdandi", "skuld")
		c.Contract = "v1.11"
		return c
	}
	path := []stackconfig.Cluster{
		three("v1.11.5", "v1.34.1"), three("v1.12.6", "v1.34.1"), three("v1.12.6", "v1.35.8"),
		three("v1.13.9", "v1.35.8"), three("v1.13.9", "v1.36.5"),
	}
	for i := 1; i < len(path); i++ {
		if _, err := decide(deployed(path[i-1]), path[i]); err != nil {
			t.Errorf("step %d (%s/%s to %s/%s) refused: %v", i, path[i-1].TalosVersion, path[i-1].KubernetesVersion,
				path[i].TalosVersion, path[i].KubernetesVersion, err)
		}
	}
	for _, skip := range []struct{ from, to stackconfig.Cluster }{
		{path[0], path[2]}, // Kubernetes 1.35 on Talos 1.11
		{path[1], path[4]}, // two steps at once
		{path[2], path[4]},
		{path[0], three("v1.11.5", "v1.35.8")},
	} {
		if _, err := decide(deployed(skip.from), skip.to); err == nil {
			t.Errorf("%s/%s to %s/%s accepted", skip.from.TalosVersion, skip.from.KubernetesVersion, skip.to.TalosVersion, skip.to.KubernetesVersion)
		}
	}
}

func TestCiliumMovesOneMinorAtATime(t *testing.T) {
	c := norns("v1.11.5", "v1.34.1", "urd")
	prev := lifecycle.Record(cfg(c), lifecycle.Plan{})
	for to, ok := range map[string]bool{"1.18.4": true, "1.19.2": true, "1.20.0": false, "1.17.9": true, "1.16.0": false} {
		now := cfg(c)
		now.Networking.Cilium.Version = to
		_, err := lifecycle.Decide(&prev, now)
		if ok != (err == nil) {
			t.Errorf("Cilium 1.18.3 to %s: %v", to, err)
		}
		if err != nil && !strings.Contains(err.Error(), "homelab:networking.cilium.version") {
			t.Errorf("the refusal does not name the key: %v", err)
		}
	}
}

// NewestTalos is the machinery version the program builds with: what its support matrix vouches for.
func TestNewestTalosIsTheMachineryVersion(t *testing.T) {
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*github.com/siderolabs/talos/pkg/machinery (v\S+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod requires no Talos machinery")
	}
	if string(m[1]) != lifecycle.NewestTalos {
		t.Errorf("lifecycle.NewestTalos is %s and go.mod has machinery %s: keep them equal (and the lab's Talos versions with them)", lifecycle.NewestTalos, m[1])
	}
}

// The endpoint moves onto the VIP only in the run after the one that adds the VIP.
func TestTheEndpointMovesToTheVIPAfterTheVIPRuns(t *testing.T) {
	before := norns("v1.11.5", "v1.34.1", "urd", "verdandi", "skuld")
	withVIP := before
	withVIP.VIP = &stackconfig.VIP{Address: "192.168.0.119", Interface: stackconfig.DeviceSelector{Driver: "igc"}}
	onVIP := withVIP
	onVIP.Endpoint = "https://192.168.0.119:6443"
	if _, err := decide(deployed(before), onVIP); err == nil || !strings.Contains(err.Error(), "homelab:cluster.endpoint") || !strings.Contains(err.Error(), "add the VIP first") {
		t.Errorf("the VIP and the endpoint in one run: %v; want it refused", err)
	}
	if _, err := decide(deployed(before), withVIP); err != nil {
		t.Errorf("adding the VIP: %v", err)
	}
	if _, err := decide(deployed(withVIP), onVIP); err != nil {
		t.Errorf("moving the endpoint onto a running VIP: %v", err)
	}
}
