package cluster

import (
	"encoding/json"
	"strings"
	"testing"

	"homelab/internal/fixture"
)

// What each kind of change costs a node, as the program registers it: the gate's inputs that
// change decide (IMAGE and KERNEL_ARGS: an upgrade; REBOOT_SETTINGS: a reboot; neither: live).

// gateInputs runs the program on norns changed by mutate and returns urd's gate environment.
func gateEnv(t *testing.T, opts runOpts, mutate func(c map[string]any)) map[string]string {
	t.Helper()
	c := fixture.Cluster(t, "norns")
	if mutate != nil {
		mutate(c)
	}
	r := mustRun(t, c, opts)
	env := map[string]string{}
	for k, v := range r.get(t, commandToken, "config-gate-urd").Inputs["environment"].ObjectValue() {
		env[string(k)] = str(v)
	}
	return env
}

func TestAChangeIsLiveRebootOrUpgradeByWhatItChanges(t *testing.T) {
	base := gateEnv(t, runOpts{}, nil)
	for _, c := range []struct {
		name   string
		opts   runOpts
		mutate func(map[string]any)
		want   []string // gate inputs that change
	}{
		{"a live setting", runOpts{data: fixture.SrcWith(t, map[string]string{"talos/patches/kubelet.yaml": "machine: {kubelet: {extraConfig: {maxPods: 250}}}\n"})}, nil, nil},
		{"a setting Talos applies only at boot", runOpts{data: fixture.SrcWith(t, map[string]string{"talos/patches/env.yaml": "machine: {env: {HTTP_PROXY: http://proxy:3128}}\n"})}, nil,
			[]string{"REBOOT_SETTINGS", "ROLL_MARK"}},
		{"the Talos version", runOpts{}, func(c map[string]any) { c["talosVersion"] = "v1.11.6" }, []string{"IMAGE", "TALOS_VERSION"}},
		{"the schematic", runOpts{data: fixture.SrcWith(t, map[string]string{"talos/schematic.yaml": "customization: {systemExtensions: {officialExtensions: [siderolabs/i915]}}\n"})}, nil,
			[]string{"IMAGE", "SCHEMATIC"}},
		{"kernel arguments without secure boot", runOpts{data: fixture.SrcWith(t, map[string]string{"talos/patches/args.yaml": "machine: {install: {extraKernelArgs: [i915.enable_guc=3]}}\n"})},
			func(c map[string]any) { c["secureBoot"] = false }, []string{"IMAGE", "KERNEL_ARGS"}},
		{"the Kubernetes version", runOpts{}, func(c map[string]any) { c["kubernetesVersion"] = "v1.34.2" }, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := gateEnv(t, c.opts, c.mutate)
			var changed []string
			for _, k := range []string{"IMAGE", "TALOS_VERSION", "SCHEMATIC", "KERNEL_ARGS", "REBOOT_SETTINGS", "ROLL_MARK", "FIRST_RUN"} {
				if got[k] != base[k] {
					changed = append(changed, k)
				}
			}
			if strings.Join(changed, ",") != strings.Join(c.want, ",") {
				t.Errorf("gate inputs changed: %v, want %v", changed, c.want)
			}
		})
	}
}

func TestKubernetesUpgradeRunsBeforeAnyConfigCarryingItsVersion(t *testing.T) {
	c := fixture.Cluster(t, "norns")
	c["kubernetesVersion"] = "v1.34.2"
	r := mustRun(t, c, runOpts{previous: deployedRecord(fixture.Cluster(t, "norns"))})
	up := r.get(t, commandToken, "k8s-upgrade")
	if env := up.Inputs["environment"].ObjectValue(); str(env["KUBERNETES_VERSION"]) != "v1.34.2" {
		t.Errorf("k8s-upgrade targets %s", str(env["KUBERNETES_VERSION"]))
	}
	for _, n := range []string{"urd", "verdandi", "skuld"} {
		if !r.get(t, applyToken, "config-stage-"+n).deps()["k8s-upgrade"] {
			t.Errorf("config-stage-%s does not wait for the Kubernetes upgrade", n)
		}
	}
	if !up.deps()["bootstrap-kubeconfig"] {
		t.Error("the Kubernetes upgrade does not wait for the cluster")
	}
}

func TestARefusedUpgradeRegistersNothing(t *testing.T) {
	c := fixture.Cluster(t, "norns")
	c["kubernetesVersion"] = "v1.33.5"
	r := runProgram(t, c, runOpts{previous: deployedRecord(fixture.Cluster(t, "norns"))})
	if r.err == nil || !strings.Contains(r.err.Error(), "cannot be downgraded") {
		t.Fatalf("error %v", r.err)
	}
	if len(r.resources) != 0 {
		t.Errorf("registered %s", r.names(""))
	}
}

func TestARemovedNodeLeavesBeforeTheHealthGate(t *testing.T) {
	c := fixture.Cluster(t, "norns")
	before := deployedRecord(fixture.FiveNodes(t))
	r := mustRun(t, c, runOpts{previous: before})
	for _, gone := range []string{"w1", "w2"} {
		rm := r.get(t, commandToken, "remove-"+gone)
		env := rm.Inputs["environment"].ObjectValue()
		if str(env["NODE_NAME"]) != gone || !strings.Contains(str(rm.Inputs["create"]), "etcd leave") {
			t.Errorf("remove-%s does not take %s out of the cluster", gone, gone)
		}
		if !env["KUBECONFIG_DATA"].IsSecret() || !env["TALOSCONFIG_DATA"].IsSecret() {
			t.Errorf("remove-%s carries credentials in clear", gone)
		}
	}
	if len(r.ofType(commandToken)) == 0 || r.get(t, commandToken, "remove-w1").Req.GetParent() == "" {
		t.Error("the removal has no component parent")
	}
	if names := r.names(applyToken); strings.Contains(names, "-w1") {
		t.Errorf("the removed node still has configs: %s", names)
	}
}

func TestKernelArgsUnderSecureBootAreRefusedUpFront(t *testing.T) {
	r := runProgram(t, fixture.Cluster(t, "norns"), runOpts{data: fixture.SrcWith(t, map[string]string{"talos/patches/args.yaml": "machine: {install: {extraKernelArgs: [i915.enable_guc=3]}}\n"})})
	if r.err == nil || !strings.Contains(r.err.Error(), "src/talos/patches/args.yaml sets machine.install.extraKernelArgs") {
		t.Fatalf("error %v", r.err)
	}
	if len(r.resources) != 0 {
		t.Errorf("registered %s", r.names(""))
	}
}

// The refusal to switch secureBoot reads the boot mode from the deployment record the program
// exports, so the record must carry it: run once, feed the export back as the last deployment.
func TestSecureBootCannotBeSwitchedUnderADeployedCluster(t *testing.T) {
	c := fixture.Cluster(t, "norns")
	first := mustRun(t, c, runOpts{})
	b, err := json.Marshal(first.outputs[deployedOutput])
	if err != nil {
		t.Fatal(err)
	}
	var prev map[string]any
	if err := json.Unmarshal(b, &prev); err != nil {
		t.Fatal(err)
	}
	if prev["secureBoot"] != true {
		t.Fatalf("the exported record %s does not keep the boot mode", b)
	}
	c["secureBoot"] = false
	r := runProgram(t, c, runOpts{previous: prev})
	if r.err == nil || !strings.Contains(r.err.Error(), "homelab:cluster.secureBoot") {
		t.Fatalf("switching secureBoot under a deployed cluster gave %v", r.err)
	}
	if len(r.resources) != 0 {
		t.Errorf("registered %s before failing", r.names(""))
	}
}
