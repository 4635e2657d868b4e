package lifecycle_test

import (
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

func deployed(c stackconfig.Cluster) *lifecycle.Deployed {
	d := lifecycle.Record(c)
	return &d
}

func TestPlanFollowsTheChange(t *testing.T) {
	prev := deployed(norns("v1.11.5", "v1.34.1", "urd", "verdandi", "skuld", "w1"))
	p, err := lifecycle.Decide(prev, norns("v1.11.6", "v1.34.2", "urd", "verdandi", "skuld"))
	if err != nil {
		t.Fatal(err)
	}
	if p.TalosFrom != "v1.11.5" || p.TalosTo != "v1.11.6" || p.KubernetesFrom != "v1.34.1" || p.KubernetesTo != "v1.34.2" {
		t.Errorf("plan %+v", p)
	}
	if len(p.Removed) != 1 || p.Removed[0].Name != "w1" {
		t.Errorf("removed %v, want w1", p.Removed)
	}
	if p, err := lifecycle.Decide(nil, norns("v1.11.5", "v1.34.1", "urd")); err != nil || p.TalosTo != "" || len(p.Removed) != 0 {
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
		{"Talos too far", three("v1.8.0", "v1.31.0"), three("v1.11.5", "v1.31.0"),
			[]string{"homelab:cluster.talosVersion", "cannot be upgraded to v1.11.5 directly", "one run each"}},
		{"Kubernetes downgrade", three("v1.11.5", "v1.34.1"), three("v1.11.5", "v1.33.5"),
			[]string{"homelab:cluster.kubernetesVersion", "cannot be downgraded", "set it back to v1.34.1"}},
		{"Kubernetes skips a minor", three("v1.11.5", "v1.32.3"), three("v1.11.5", "v1.34.1"),
			[]string{"homelab:cluster.kubernetesVersion", "skips a minor version", "set v1.33.x first"}},
		{"Kubernetes outside the matrix", three("v1.11.5", "v1.34.1"), three("v1.11.5", "v1.35.0"),
			[]string{"homelab:cluster.kubernetesVersion", "too new to be used with Talos"}},
		{"two control planes at once", three("v1.11.5", "v1.34.1"), norns("v1.11.5", "v1.34.1", "urd"),
			[]string{"homelab:cluster.nodes", "2 control planes removed in one run"}},
		{"a minor upgrade that would move the contract", three("v1.10.8", "v1.33.5"), three("v1.11.5", "v1.33.5"),
			[]string{"homelab:cluster.contract", "from v1.10 to v1.11", "set contract: v1.10 to keep it", "contract: v1.11 to move it"}},
		{"secure boot switched on a running cluster", three("v1.11.5", "v1.34.1"), func() stackconfig.Cluster {
			c := three("v1.11.5", "v1.34.1")
			c.SecureBoot = true
			return c
		}(), []string{"homelab:cluster.secureBoot", "installed with secureBoot false", "set it back to false"}},
		{"the endpoint's node", three("v1.11.5", "v1.34.1"), norns("v1.11.5", "v1.34.1", "verdandi", "skuld"),
			[]string{"homelab:cluster.nodes", "urd is removed but homelab:cluster.endpoint", "move the endpoint"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := lifecycle.Decide(deployed(c.prev), c.now)
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
	if _, err := lifecycle.Decide(prev, norns("v1.11.5", "v1.34.2", "urd")); err != nil {
		t.Errorf("1.33 to 1.34 on Talos 1.11 refused: %v", err)
	}
}

func TestContractStaysUnlessTheStackMovesIt(t *testing.T) {
	prev := deployed(norns("v1.10.8", "v1.33.5", "urd", "verdandi", "skuld"))
	for _, contract := range []string{"v1.10", "v1.11"} {
		now := norns("v1.11.5", "v1.33.5", "urd", "verdandi", "skuld")
		now.Contract = contract
		if _, err := lifecycle.Decide(prev, now); err != nil {
			t.Errorf("contract %s set explicitly: %v", contract, err)
		}
	}
	if _, err := lifecycle.Decide(deployed(norns("v1.11.5", "v1.34.1", "urd")), norns("v1.11.6", "v1.34.1", "urd")); err != nil {
		t.Errorf("a patch release moves no contract, yet: %v", err)
	}
}
