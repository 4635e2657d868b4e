package talosplan_test

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	_ "homelab/internal/golden" // registers -update for go test ./...
	"homelab/internal/stackconfig"
	"homelab/internal/talosplan"
	"homelab/src"
)

var cluster = stackconfig.Cluster{
	Name: "lab", Endpoint: "https://10.0.0.1:6443", TalosVersion: "v1.11.5", KubernetesVersion: "v1.34.1",
	SecureBoot: true,
	Nodes: []stackconfig.Node{
		{Name: "cp1", Address: "10.0.0.1", Role: stackconfig.RoleControlPlane, InstallDisk: "/dev/nvme0n1"},
		{Name: "w1", Address: "10.0.0.11", Role: stackconfig.RoleWorker, InstallDisk: "/dev/sda"},
	},
}

// tree is a minimal src/ with every kind of patch.
func tree() fstest.MapFS {
	real, err := fs.ReadFile(src.FS, talosplan.RebootFile)
	if err != nil {
		panic(err)
	}
	return fstest.MapFS{
		"talos/patches/b.yaml":              {Data: []byte("machine: {kubelet: {extraConfig: {maxPods: 300}}}\n")},
		"talos/patches/a.yaml":              {Data: []byte("cluster: {allowSchedulingOnControlPlanes: true}\n")},
		"talos/patches/README.md":           {Data: []byte("not a patch")},
		"talos/patches/controlplane/c.yaml": {Data: []byte("cluster: {apiServer: {extraArgs: {v: '2'}}}\n")},
		"talos/patches/worker/w.yaml":       {Data: []byte("machine: {sysctls: {a: '1'}}\n")},
		"talos/patches/cilium.yaml":         {Data: []byte("cluster: {network: {cni: {name: none}}, proxy: {disabled: true}}\n")},
		"talos/reboot.yaml":                 {Data: real},
		"lib/preamble.sh":                   {Data: []byte("set -eu\n")},
		"talos/gate.sh":                     {Data: []byte("true\n")},
		"talos/upgrade-k8s.sh":              {Data: []byte("true\n")},
		"talos/remove.sh":                   {Data: []byte("true\n")},
		"talos/reset.sh":                    {Data: []byte("true\n")},
		"talos/schematic.yaml":              {Data: []byte("customization: {systemExtensions: {officialExtensions: [siderolabs/gvisor]}}\n")},
	}
}

func sources(ps []talosplan.Patch) string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Source)
	}
	return strings.Join(out, " ")
}

func TestPatchOrderIsCommonRoleHandoverNode(t *testing.T) {
	d, err := talosplan.Load(tree())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		node  stackconfig.Node
		phase talosplan.Phase
		want  string
	}{
		{cluster.Nodes[0], talosplan.Final, "talos/patches/a.yaml talos/patches/b.yaml talos/patches/controlplane/c.yaml talos/patches/cilium.yaml node/cp1"},
		{cluster.Nodes[0], talosplan.BringUp, "talos/patches/a.yaml talos/patches/b.yaml talos/patches/controlplane/c.yaml node/cp1"},
		{cluster.Nodes[1], talosplan.Final, "talos/patches/a.yaml talos/patches/b.yaml talos/patches/worker/w.yaml talos/patches/cilium.yaml node/w1"},
	}
	for _, tc := range cases {
		if got := sources(d.NodePatches(cluster, tc.node, tc.phase)); got != tc.want {
			t.Errorf("%s phase %d: patches\n  %s\nwant\n  %s", tc.node.Name, tc.phase, got, tc.want)
		}
	}
}

func TestNodePatchSetsHostnameDiskAndInstaller(t *testing.T) {
	d, err := talosplan.Load(tree())
	if err != nil {
		t.Fatal(err)
	}
	ps := d.NodePatches(cluster, cluster.Nodes[1], talosplan.Final)
	got := ps[len(ps)-1].Content
	want := "machine:\n    install:\n        disk: /dev/sda\n        image: factory.talos.dev/metal-installer-secureboot/" + d.SchematicID + ":v1.11.5\n    network:\n        hostname: w1\n"
	if got != want {
		t.Errorf("node patch\n%s\nwant\n%s", got, want)
	}
}

func TestInstallerImageFollowsSecureBoot(t *testing.T) {
	d, err := talosplan.Load(tree())
	if err != nil {
		t.Fatal(err)
	}
	c := cluster
	c.SecureBoot = false
	if got, want := d.InstallerImage(c), "factory.talos.dev/metal-installer/"+d.SchematicID+":v1.11.5"; got != want {
		t.Errorf("image %q, want %q", got, want)
	}
	if !strings.Contains(d.InstallerImage(cluster), "/metal-installer-secureboot/") {
		t.Errorf("secure-boot cluster gets %q", d.InstallerImage(cluster))
	}
}

func TestSchematicChangeYieldsNewID(t *testing.T) {
	real, err := talosplan.Load(src.FS)
	if err != nil {
		t.Fatal(err)
	}
	if len(real.SchematicID) != 64 {
		t.Fatalf("schematic ID %q is not 64 hex characters", real.SchematicID)
	}
	changed := tree()
	changed["talos/schematic.yaml"] = &fstest.MapFile{Data: []byte(strings.Replace(real.Schematic, "      - siderolabs/gvisor\n", "", 1))}
	d, err := talosplan.Load(changed)
	if err != nil {
		t.Fatal(err)
	}
	if d.SchematicID == real.SchematicID {
		t.Errorf("dropping an extension kept the schematic ID %s", d.SchematicID)
	}
	if d.InstallerImage(cluster) == real.InstallerImage(cluster) {
		t.Errorf("dropping an extension kept the installer image %s", d.InstallerImage(cluster))
	}
}

// settingsOf loads tree() with mutate applied and returns the reboot and upgrade summaries of the
// first node's final config.
func settingsOf(t *testing.T, mutate func(fstest.MapFS)) (reboot, upgrade string) {
	t.Helper()
	fsys := tree()
	mutate(fsys)
	d, err := talosplan.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	p := d.NodePatches(cluster, cluster.Nodes[0], talosplan.Final)
	return d.RebootSettingsOf(p), d.KernelArgsOf(p)
}

func patch(name, text string) func(fstest.MapFS) {
	return func(f fstest.MapFS) { f[name] = &fstest.MapFile{Data: []byte(text)} }
}

func TestWhatAChangeCostsFollowsTalos(t *testing.T) {
	baseReboot, baseUpgrade := settingsOf(t, func(fstest.MapFS) {})
	for _, c := range []struct {
		name, file, patch string
		want              string // live, reboot or upgrade
	}{
		// Talos applies these live (v1alpha1_runtime.go:164-193).
		{"kubelet", "talos/patches/z.yaml", "machine: {kubelet: {extraConfig: {maxPods: 250}}}\n", "live"},
		{"an API server flag", "talos/patches/z.yaml", "cluster: {apiServer: {extraArgs: {audit-log-maxage: '7'}}}\n", "live"},
		{"a sysctl", "talos/patches/z.yaml", "machine: {sysctls: {vm.max_map_count: '262144'}}\n", "live"},
		{"node labels", "talos/patches/z.yaml", "machine: {nodeLabels: {zone: hall}}\n", "live"},
		{"the install disk wipe", "talos/patches/z.yaml", "machine: {install: {wipe: false}}\n", "live"},
		// Talos refuses these live.
		{"an environment variable", "talos/patches/z.yaml", "machine: {env: {HTTP_PROXY: http://proxy:3128}}\n", "reboot"},
		{"a file", "talos/patches/z.yaml", "machine: {files: [{path: /var/etc/x, content: y, op: create}]}\n", "reboot"},
		{"RBAC of the Talos API", "talos/patches/z.yaml", "machine: {features: {rbac: false}}\n", "reboot"},
		// Live for Talos, rolled out with a reboot: the CNI handover.
		{"the CNI", "talos/patches/cilium.yaml", "cluster: {network: {cni: {name: flannel}}, proxy: {disabled: true}}\n", "reboot"},
		// Only an upgrade makes these take effect.
		{"kernel arguments", "talos/patches/z.yaml", "machine: {install: {extraKernelArgs: [i915.enable_guc=3]}}\n", "upgrade"},
	} {
		t.Run(c.name, func(t *testing.T) {
			reboot, upgrade := settingsOf(t, patch(c.file, c.patch))
			got := "live"
			switch {
			case upgrade != baseUpgrade:
				got = "upgrade"
			case reboot != baseReboot:
				got = "reboot"
			}
			if got != c.want {
				t.Errorf("costs %s, want %s\nreboot settings:\n%s\nupgrade settings:\n%s", got, c.want, reboot, upgrade)
			}
		})
	}
}

func TestTheHandoverIsARebootAndShownInClear(t *testing.T) {
	base, err := talosplan.Load(tree())
	if err != nil {
		t.Fatal(err)
	}
	final := base.RebootSettingsOf(base.NodePatches(cluster, cluster.Nodes[0], talosplan.Final))
	bringUp := base.RebootSettingsOf(base.NodePatches(cluster, cluster.Nodes[0], talosplan.BringUp))
	if talosplan.Mark(final) == talosplan.Mark(bringUp) {
		t.Error("the bring-up and final configs have the same reboot mark: the CNI handover would not reboot")
	}
	if !strings.Contains(final, `cluster.network.cni.name: "none"`) {
		t.Errorf("reboot settings do not show the CNI in clear text:\n%s", final)
	}
	if strings.Contains(final, "machine.install.image") {
		t.Errorf("the installer image is among the reboot settings; a reboot never installs it:\n%s", final)
	}
}

func TestKernelArgsUnderSecureBootPointToTheSchematic(t *testing.T) {
	fsys := tree()
	fsys["talos/patches/controlplane/k.yaml"] = &fstest.MapFile{Data: []byte("machine: {install: {extraKernelArgs: [i915.enable_guc=3]}}\n")}
	d, err := talosplan.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	err = d.CheckKernelArgs(cluster)
	if err == nil || !strings.Contains(err.Error(), "src/talos/patches/controlplane/k.yaml sets machine.install.extraKernelArgs") ||
		!strings.Contains(err.Error(), "customization.extraKernelArgs") {
		t.Errorf("error %v; want the patch named and the schematic pointed to", err)
	}
	multidoc := cluster
	multidoc.SecureBoot, multidoc.TalosVersion, multidoc.Contract = false, "v1.12.6", "v1.12"
	if err := d.CheckKernelArgs(multidoc); err == nil || !strings.Contains(err.Error(), "grubUseUKICmdline of contract v1.12") {
		t.Errorf("kernel arguments at contract v1.12: %v; want them refused, naming the contract", err)
	}
	grub := cluster
	grub.SecureBoot = false
	if err := d.CheckKernelArgs(grub); err != nil {
		t.Errorf("kernel arguments without secure boot refused: %v", err)
	}
}

func TestBadPatchNamesItsFile(t *testing.T) {
	fsys := tree()
	fsys["talos/patches/controlplane/broken.yaml"] = &fstest.MapFile{Data: []byte("machine:\n  kubelet: [\n")}
	fsys["talos/patches/scalar.yaml"] = &fstest.MapFile{Data: []byte("just text\n")}
	_, err := talosplan.Load(fsys)
	if err == nil {
		t.Fatal("a broken patch loaded")
	}
	for _, want := range []string{"src/talos/patches/controlplane/broken.yaml: not valid YAML", "src/talos/patches/scalar.yaml: a patch must be"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}
}

// Every script the program runs starts with the shared preamble (src/lib/preamble.sh) and calls its
// setup, so the tool check, the private temporary directory, its removal and the credential files
// are written once.
func TestEveryScriptRunsAfterThePreamble(t *testing.T) {
	d, err := talosplan.Load(src.FS)
	if err != nil {
		t.Fatal(err)
	}
	pre, err := fs.ReadFile(src.FS, src.Preamble)
	if err != nil {
		t.Fatal(err)
	}
	for name, script := range map[string]string{"gate": d.Scripts.Gate, "upgrade-k8s": d.Scripts.UpgradeKubernetes,
		"remove": d.Scripts.Remove, "reset": d.Scripts.Reset} {
		if !strings.HasPrefix(script, string(pre)) {
			t.Errorf("the %s script does not start with the preamble", name)
		}
		body := strings.TrimPrefix(script, string(pre))
		if !regexp.MustCompile(`(?m)^setup talosctl( kubectl)?$`).MatchString(body) {
			t.Errorf("the %s script does not call setup with its tools", name)
		}
		if strings.Contains(body, "mktemp") || strings.Contains(body, "trap ") {
			t.Errorf("the %s script makes its own temporary directory or trap; the preamble's setup does", name)
		}
	}
}
