package render_test

import (
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"

	"homelab/internal/golden"
	"homelab/internal/render"
	"homelab/internal/stackconfig"
	"homelab/internal/stackfile"
	"homelab/internal/talosplan"
	"homelab/src"
)

func nornsCluster(t *testing.T) stackconfig.Cluster {
	t.Helper()
	cfg, _, err := stackfile.LoadConfig("../..", "norns")
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Cluster
}

func fixtureSecrets(t *testing.T) *secrets.Bundle {
	t.Helper()
	b, err := secrets.LoadBundle("testdata/secrets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func renderNorns(t *testing.T, data fs.FS, phase talosplan.Phase) ([]render.Node, error) {
	t.Helper()
	talos, err := talosplan.Load(data)
	if err != nil {
		t.Fatal(err)
	}
	return render.Render(nornsCluster(t), talos, fixtureSecrets(t), phase)
}

// nornsAtContract12 is norns on Talos 1.12 with its contract moved to v1.12: multi-document
// configs, the hostname in a HostnameConfig document.
func nornsAtContract12(t *testing.T) stackconfig.Cluster {
	c := nornsCluster(t)
	c.TalosVersion, c.KubernetesVersion, c.Contract = "v1.12.6", "v1.35.8", "v1.12"
	return c
}

func TestNornsConfigsMatchReviewedGoldens(t *testing.T) {
	talos, err := talosplan.Load(src.FS)
	if err != nil {
		t.Fatal(err)
	}
	for _, phase := range []struct {
		name    string
		phase   talosplan.Phase
		cluster stackconfig.Cluster
	}{
		{"final", talosplan.Final, nornsCluster(t)},
		{"bring-up", talosplan.BringUp, nornsCluster(t)},
		{"contract-v1.12", talosplan.Final, nornsAtContract12(t)},
	} {
		nodes, err := render.Render(phase.cluster, talos, fixtureSecrets(t), phase.phase)
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes) != 3 {
			t.Fatalf("%d nodes rendered, want 3", len(nodes))
		}
		for _, n := range nodes {
			if len(n.Warnings) > 0 {
				t.Errorf("node %s: Talos validation warns: %v", n.Node.Name, n.Warnings)
			}
			golden.Check(t, filepath.Join("testdata", "norns", phase.name, n.Node.Name+".yaml"), n.Config)
		}
	}
}

func TestOnlyTheFinalConfigDisablesTheDefaultCNI(t *testing.T) {
	for phase, want := range map[talosplan.Phase]bool{talosplan.Final: true, talosplan.BringUp: false} {
		nodes, err := renderNorns(t, src.FS, phase)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			cfg, err := configloader.NewFromBytes(n.Config)
			if err != nil {
				t.Fatal(err)
			}
			cni := cfg.Cluster().Network().CNI().Name()
			proxyOff := !cfg.Cluster().Proxy().Enabled()
			if (cni == "none") != want || proxyOff != want {
				t.Errorf("phase %d, node %s: cni %q, kube-proxy disabled %v; want the handover only in the final config", phase, n.Node.Name, cni, proxyOff)
			}
		}
	}
}

func TestNornsConfigsCarryTheRunbookSettings(t *testing.T) {
	nodes, err := renderNorns(t, src.FS, talosplan.Final)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		cfg, err := configloader.NewFromBytes(n.Config)
		if err != nil {
			t.Fatal(err)
		}
		raw := cfg.RawV1Alpha1()
		if got := raw.MachineConfig.MachineNetwork.NetworkHostname; got != n.Node.Name {
			t.Errorf("%s: hostname %q", n.Node.Name, got)
		}
		if got := raw.MachineConfig.MachineInstall.InstallDisk; got != "/dev/nvme0n1" {
			t.Errorf("%s: install disk %q, want /dev/nvme0n1", n.Node.Name, got)
		}
		if got := raw.MachineConfig.MachineInstall.InstallImage; !strings.HasPrefix(got, "factory.talos.dev/metal-installer-secureboot/") || !strings.HasSuffix(got, ":v1.11.5") {
			t.Errorf("%s: installer %q, want the factory secure-boot installer at v1.11.5", n.Node.Name, got)
		}
		if got := raw.MachineConfig.MachineKubelet.KubeletExtraConfig.Object["maxPods"]; got != 300 {
			t.Errorf("%s: kubelet maxPods %v, want 300", n.Node.Name, got)
		}
		if got := raw.ClusterConfig.AllowSchedulingOnControlPlanes; got == nil || !*got {
			t.Errorf("%s: scheduling on control planes is off", n.Node.Name)
		}
		if got := raw.ClusterConfig.ClusterName; got != "norns" {
			t.Errorf("%s: cluster name %q", n.Node.Name, got)
		}
		if got := raw.MachineConfig.MachineKubelet.KubeletImage; got != "ghcr.io/siderolabs/kubelet:v1.34.1" {
			t.Errorf("%s: kubelet image %q, want v1.34.1 with no doubled v", n.Node.Name, got)
		}
	}
}

// srcWith is src/ with some files added or replaced.
func srcWith(t *testing.T, files map[string]string) fs.FS {
	t.Helper()
	data, err := src.With(files)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestBadPatchFailsNamingTheFile(t *testing.T) {
	cases := map[string]string{
		"unknown field": "machine:\n  kubelet:\n    maxPodz: 10\n",
		"wrong type":    "machine:\n  kubelet:\n    extraConfig: 12\n",
		"invalid value": "cluster:\n  network:\n    cni:\n      name: weave\n",
	}
	for name, patch := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := renderNorns(t, srcWith(t, map[string]string{"talos/patches/zz-bad.yaml": patch}), talosplan.Final)
			if err == nil {
				t.Fatal("a bad patch rendered")
			}
			if !strings.Contains(err.Error(), "node urd: src/talos/patches/zz-bad.yaml: ") {
				t.Errorf("error does not name the node and the file: %v", err)
			}
		})
	}
}

// From contract v1.12 Talos generates a HostnameConfig document (auto: stable) and refuses a
// hostname set in .machine.network as well; the program sets it in that document, auto off.
func TestContractV112SetsTheHostnameInItsOwnDocumentOnly(t *testing.T) {
	talos, err := talosplan.Load(src.FS)
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := render.Render(nornsAtContract12(t), talos, fixtureSecrets(t), talosplan.Final)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		cfg, err := configloader.NewFromBytes(n.Config)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.RawV1Alpha1().MachineConfig.MachineNetwork; got != nil && got.NetworkHostname != "" {
			t.Errorf("%s: .machine.network.hostname is %q; from contract v1.12 the hostname belongs in HostnameConfig only", n.Node.Name, got.NetworkHostname)
		}
		if got := cfg.NetworkHostnameConfig(); got == nil || got.Hostname() != n.Node.Name {
			t.Errorf("%s: HostnameConfig %v, want the static hostname %s", n.Node.Name, got, n.Node.Name)
		}
	}
}

// A stack with a VIP renders control planes that carry it on the selected link, in the Talos API's
// and the API server's certificates, and configs Talos's validator takes; workers do not carry it.
func TestAVIPIsOnEveryControlPlaneAndValid(t *testing.T) {
	talos, err := talosplan.Load(src.FS)
	if err != nil {
		t.Fatal(err)
	}
	for _, contract := range []string{"v1.11", "v1.12"} {
		c := nornsCluster(t)
		if contract == "v1.12" {
			c = nornsAtContract12(t)
		}
		c.VIP = &stackconfig.VIP{Address: "192.168.0.119", Interface: stackconfig.DeviceSelector{Driver: "igc"}}
		c.Nodes = append(c.Nodes, stackconfig.Node{Name: "w1", Address: "192.168.0.131", Role: stackconfig.RoleWorker, InstallDisk: "/dev/sda"})
		nodes, err := render.Render(c, talos, fixtureSecrets(t), talosplan.Final)
		if err != nil {
			t.Fatalf("contract %s: %v", contract, err)
		}
		for _, n := range nodes {
			cfg, err := configloader.NewFromBytes(n.Config)
			if err != nil {
				t.Fatal(err)
			}
			var vip string
			for _, d := range cfg.RawV1Alpha1().MachineConfig.MachineNetwork.NetworkInterfaces {
				if d.VIPConfig() != nil {
					vip = d.VIPConfig().IP()
				}
			}
			cp := n.Node.Role == stackconfig.RoleControlPlane
			if cp != (vip == "192.168.0.119") {
				t.Errorf("contract %s, %s: VIP %q", contract, n.Node.Name, vip)
			}
			if cp && (!strings.Contains(string(n.Config), "- 192.168.0.119") || len(n.Warnings) > 0) {
				t.Errorf("contract %s, %s: the VIP is not in the certificates' SANs, or validation warns %v", contract, n.Node.Name, n.Warnings)
			}
		}
		if contract == "v1.12" {
			golden.Check(t, filepath.Join("testdata", "norns", "vip", "urd.yaml"), nodes[0].Config)
		}
	}
}
