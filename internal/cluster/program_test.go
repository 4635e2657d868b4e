package cluster

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"homelab/internal/fixture"
)

func TestSecretsAreProtected(t *testing.T) {
	r := mustRun(t, fixture.Cluster(t, "norns"), runOpts{})
	sec := r.get(t, secretsToken, "cluster-secrets")
	if !sec.Req.GetProtect() {
		t.Error("the secrets bundle is not protected: pulumi destroy would drop the cluster identity")
	}
	if !slices.Contains(sec.Req.GetIgnoreChanges(), "talosVersion") {
		t.Errorf("ignoreChanges %v lacks talosVersion: a contract change would replace every CA", sec.Req.GetIgnoreChanges())
	}
	for _, out := range []string{"machineSecrets", "clientConfiguration"} {
		if !slices.Contains(sec.Req.GetAdditionalSecretOutputs(), out) {
			t.Errorf("%s is not an additional secret output: the state would keep it in clear", out)
		}
	}
	if got := str(sec.Inputs["talosVersion"]); got != "v1.11" {
		t.Errorf("secrets contract %q, want v1.11 from talosVersion v1.11.5", got)
	}
}

func TestContractNeverChangesUnderARunningCluster(t *testing.T) {
	c := fixture.Cluster(t, "norns")
	delete(c, "contract")
	c["talosVersion"] = "v1.12.0" // an upgrade that forgot to pin the contract
	before := deployedRecord(fixture.Cluster(t, "norns"))
	r := runProgram(t, c, runOpts{storedContract: "v1.11", previous: before})
	if r.err == nil || !strings.Contains(r.err.Error(), "homelab:cluster.contract") || !strings.Contains(r.err.Error(), "set contract: v1.11 to keep it") {
		t.Errorf("raising the contract under a v1.11 bundle gave %v; want an error naming homelab:cluster.contract", r.err)
	}
	for _, res := range r.ofType(applyToken) {
		t.Errorf("%s was registered although the contract check failed", res.Name)
	}
	c["contract"] = "v1.11"
	if r := runProgram(t, c, runOpts{storedContract: "v1.11", previous: before}); r.err != nil {
		t.Errorf("a pinned contract still fails: %v", r.err)
	}
	if r := runProgram(t, fixture.Cluster(t, "norns"), runOpts{storedContract: "v1.3"}); r.err != nil {
		t.Errorf("a bundle imported from talosctl records v1.3 and must not block: %v", r.err)
	}
	older := fixture.Cluster(t, "norns")
	older["contract"] = "v1.10"
	r = runProgram(t, older, runOpts{storedContract: "v1.11", previous: map[string]any{"cluster": "norns", "talosVersion": "v1.11.5", "kubernetesVersion": "v1.34.1"}})
	if r.err == nil || !strings.Contains(r.err.Error(), "a contract never moves back") {
		t.Errorf("a contract below the bundle's: %v; want it refused", r.err)
	}
}

func TestEveryResourceHasAHomelabComponentParent(t *testing.T) {
	r := mustRun(t, fixture.FiveNodes(t), runOpts{})
	for _, res := range r.resources {
		if !res.Req.GetCustom() || strings.HasPrefix(res.Type, "pulumi:providers:") {
			continue // components have the stack or a component as parent; providers are shared
		}
		parent := res.Req.GetParent()
		if parent == "" || !strings.HasPrefix(urnType(parent), "homelab:") {
			t.Errorf("%s %s has parent %q, want a homelab component", res.Type, res.Name, parent)
		}
	}
}

func TestFreshClusterInstallsEveryNodeInParallelInBringUpConfig(t *testing.T) {
	r := mustRun(t, fixture.FiveNodes(t), runOpts{})
	installs := r.ofType(applyToken)
	var names []string
	for _, in := range installs {
		if !strings.HasPrefix(in.Name, "install-") {
			continue
		}
		names = append(names, in.Name)
		if mode := str(in.Inputs["applyMode"]); mode != "auto" {
			t.Errorf("%s: apply mode %q; maintenance mode accepts only auto, reboot and try", in.Name, mode)
		}
		for d := range in.deps() {
			if strings.HasPrefix(d, "install-") {
				t.Errorf("%s waits for %s: the installs of a new cluster run in parallel", in.Name, d)
			}
		}
		if !in.deps()["installer-schematic"] {
			t.Errorf("%s does not wait for the schematic: the node could pull an installer the factory does not serve", in.Name)
		}
		if !slices.Contains(in.Req.GetIgnoreChanges(), "configPatches") || !slices.Contains(in.Req.GetIgnoreChanges(), "machineConfigurationInput") {
			t.Errorf("%s: ignoreChanges %v; an install must never be re-applied", in.Name, in.Req.GetIgnoreChanges())
		}
		if !in.Inputs["machineConfigurationInput"].IsSecret() {
			t.Errorf("%s: the machine config is not secret", in.Name)
		}
	}
	if len(names) != 5 {
		t.Errorf("installs %v, want one per node", names)
	}
}

func TestBootstrapWaitsForEveryControlPlaneInstall(t *testing.T) {
	r := mustRun(t, fixture.FiveNodes(t), runOpts{})
	boots := r.ofType(bootstrapToken)
	if len(boots) != 1 {
		t.Fatalf("%d bootstrap resources (%s); etcd must be bootstrapped exactly once", len(boots), r.names(bootstrapToken))
	}
	boot := boots[0]
	if node := str(boot.Inputs["node"]); node != "192.168.0.120" {
		t.Errorf("bootstrap on %s, want the first control plane, urd (192.168.0.120)", node)
	}
	for _, cp := range []string{"install-urd", "install-verdandi", "install-skuld"} {
		if !boot.deps()[cp] {
			t.Errorf("bootstrap does not wait for %s", cp)
		}
	}
	if timeout := boot.Inputs["timeouts"].ObjectValue()["create"]; str(timeout) != "10m" {
		t.Errorf("bootstrap create timeout %v, want 10m", timeout)
	}
}

func TestKubeconfigWaitsForBootstrap(t *testing.T) {
	r := mustRun(t, fixture.FreshNorns(t), runOpts{})
	kc := r.get(t, kubeconfigTok, "bootstrap-kubeconfig")
	if !kc.deps()["bootstrap-etcd"] {
		t.Errorf("the kubeconfig does not wait for the etcd bootstrap; deps: %v", kc.deps())
	}
}

func TestAdoptedClusterIsNeverBootstrapped(t *testing.T) {
	r := mustRun(t, fixture.Cluster(t, "norns"), runOpts{})
	if boots := r.ofType(bootstrapToken); len(boots) != 0 {
		t.Errorf("an adopted cluster registers %s; a second bootstrap fails after its timeout", r.names(bootstrapToken))
	}
	kc := r.get(t, kubeconfigTok, "bootstrap-kubeconfig")
	for _, cp := range []string{"install-urd", "install-verdandi", "install-skuld"} {
		if !kc.deps()[cp] {
			t.Errorf("the kubeconfig of an adopted cluster does not wait for %s", cp)
		}
	}
}

func TestPreviewContactsNoNode(t *testing.T) {
	r := mustRun(t, fixture.FreshNorns(t), runOpts{preview: true})
	for _, inv := range r.invokes {
		if inv == healthInvoke || inv == disksInvoke {
			t.Errorf("preview called %s, which contacts the nodes", inv)
		}
	}
	if len(r.ofType(applyToken)) == 0 {
		t.Fatal("preview registered no node config: the test would prove nothing")
	}
}

func TestHealthGateRunsDuringUp(t *testing.T) {
	r := mustRun(t, fixture.FreshNorns(t), runOpts{})
	if !slices.Contains(r.invokes, healthInvoke) {
		t.Errorf("pulumi up ran no health check; invokes: %v", r.invokes)
	}
}

func TestStackOutputsAreSecret(t *testing.T) {
	r := mustRun(t, fixture.Cluster(t, "norns"), runOpts{})
	for _, name := range []string{"kubeconfig", "talosconfig"} {
		if res := await(t, pulumi.ToOutput(r.outputs[name])); !res.Secret {
			t.Errorf("stack output %s is not secret", name)
		}
	}
	if res := await(t, pulumi.ToOutput(r.outputs["installerImage"])); !strings.Contains(res.Value.(string), "/metal-installer-secureboot/") {
		t.Errorf("installer image %v is not the secure-boot installer", res.Value)
	}
}

func TestRolloutStagesThenRebootsOneNodeAtATimeThenAppliesLive(t *testing.T) {
	r := mustRun(t, fixture.FiveNodes(t), runOpts{})
	order := []string{"urd", "verdandi", "skuld", "w1", "w2"}
	for i, n := range order {
		stage := r.get(t, applyToken, "config-stage-"+n)
		gate := r.get(t, commandToken, "config-gate-"+n)
		live := r.get(t, applyToken, "config-apply-"+n)
		if mode := str(stage.Inputs["applyMode"]); mode != "staged" {
			t.Errorf("config-stage-%s: mode %q, want staged", n, mode)
		}
		if mode := str(live.Inputs["applyMode"]); mode != "no_reboot" {
			t.Errorf("config-apply-%s: mode %q, want no_reboot: a live change must never reboot", n, mode)
		}
		if !stage.deps()["install-"+n] {
			t.Errorf("config-stage-%s does not wait for the node's install", n)
		}
		if !gate.deps()["config-stage-"+n] {
			t.Errorf("config-gate-%s does not wait for its staged config", n)
		}
		if !live.deps()["config-gate-"+n] {
			t.Errorf("config-apply-%s does not wait for the node's reboot gate", n)
		}
		if i > 0 && !gate.deps()["config-gate-"+order[i-1]] {
			t.Errorf("config-gate-%s does not wait for config-gate-%s: two nodes could reboot at once", n, order[i-1])
		}
		for j, other := range order {
			if j != i && live.deps()["config-apply-"+other] {
				t.Errorf("config-apply-%s waits for config-apply-%s: live changes must reach nodes in parallel", n, other)
			}
		}
	}
}

func TestNoTwoRebootGatesCanRunAtOnce(t *testing.T) {
	r := mustRun(t, fixture.FiveNodes(t), runOpts{})
	var gates []registration
	for _, c := range r.ofType(commandToken) {
		if strings.HasPrefix(c.Name, "config-gate-") {
			gates = append(gates, c)
		}
	}
	if len(gates) != 5 {
		t.Fatalf("%d reboot gates, want 5", len(gates))
	}
	for i, a := range gates {
		for _, b := range gates[i+1:] {
			if !r.dependsOn(a, b.Name) && !r.dependsOn(b, a.Name) {
				t.Errorf("%s and %s have no dependency path between them: both nodes could reboot at once", a.Name, b.Name)
			}
		}
	}
}

func TestRebootGateShowsSettingsAndKeepsCredentialsSecret(t *testing.T) {
	r := mustRun(t, fixture.FreshNorns(t), runOpts{})
	env := r.get(t, commandToken, "config-gate-urd").Inputs["environment"].ObjectValue()
	for _, key := range []string{"TALOSCONFIG_DATA", "KUBECONFIG_DATA"} {
		if !env[resource.PropertyKey(key)].IsSecret() {
			t.Errorf("%s is not secret", key)
		}
	}
	// A reviewer sees the reboot, upgrade and image values in clear text.
	if s := env["REBOOT_SETTINGS"]; s.IsSecret() || !strings.Contains(str(s), "cluster.network.cni.name:") {
		t.Errorf("REBOOT_SETTINGS must show the settings that need a reboot in clear; got %v", s)
	}
	if s := env["IMAGE"]; s.IsSecret() || !strings.Contains(str(s), "-installer-secureboot/") {
		t.Errorf("IMAGE must show the installer image in clear; got %v", s)
	}
}

func TestInvalidConfigRegistersNothing(t *testing.T) {
	c := fixture.Cluster(t, "norns")
	c["nodes"].([]any)[0].(map[string]any)["instalDisk"] = "/dev/sda"
	r := runProgram(t, c, runOpts{})
	if r.err == nil || !strings.Contains(r.err.Error(), "homelab:cluster.nodes[0].instalDisk: unknown key; did you mean installDisk?") {
		t.Errorf("error %v; want the unknown key named", r.err)
	}
	if len(r.resources) != 0 {
		t.Errorf("registered %s before failing", r.names(""))
	}
}

func TestBrokenPatchRegistersNothing(t *testing.T) {
	data := fstest.MapFS{"talos/patches/broken.yaml": {Data: []byte("machine: [\n")}}
	r := runProgram(t, fixture.Cluster(t, "norns"), runOpts{data: data})
	if r.err == nil || !strings.Contains(r.err.Error(), "src/talos/patches/broken.yaml") {
		t.Errorf("error %v; want the broken file named", r.err)
	}
	if len(r.resources) != 0 {
		t.Errorf("registered %s before failing", r.names(""))
	}
}

func TestPatchesAreReviewableOnEveryApply(t *testing.T) {
	r := mustRun(t, fixture.Cluster(t, "norns"), runOpts{})
	apply := r.get(t, applyToken, "config-apply-urd")
	patches := apply.Inputs["configPatches"]
	if patches.IsSecret() || !patches.IsArray() {
		t.Fatalf("configPatches is %v; it must be a clear-text list so previews show patch diffs", patches)
	}
	var all []string
	for _, p := range patches.ArrayValue() {
		if p.IsSecret() {
			t.Errorf("a patch is secret")
		}
		all = append(all, str(p))
	}
	joined := strings.Join(all, "\n")
	for _, want := range []string{"allowSchedulingOnControlPlanes: true", "maxPods: 300", "hostname: urd", "disk: /dev/nvme0n1"} {
		if !strings.Contains(joined, want) {
			t.Errorf("the patches of urd lack %q", want)
		}
	}
}

func TestDestroyHarmsNothing(t *testing.T) {
	r := mustRun(t, fixture.FiveNodes(t), runOpts{})
	for _, res := range r.resources {
		switch {
		case res.Type == applyToken:
			od := res.Inputs["onDestroy"].ObjectValue()
			if od["reset"].BoolValue() {
				t.Errorf("%s resets its node on destroy, and the stack did not opt in", res.Name)
			}
		case res.Type == commandToken:
			if d, ok := res.Inputs["delete"]; ok && !d.IsNull() && str(d) != "" {
				t.Errorf("%s runs a command on destroy: %v", res.Name, d)
			}
		case strings.HasPrefix(res.Type, "kubernetes:") && res.Req.GetCustom() && !strings.HasPrefix(res.Type, "pulumi:"):
			if !res.Req.GetRetainOnDelete() {
				t.Errorf("%s %s is deleted from the cluster on destroy; it must only be forgotten", res.Type, res.Name)
			}
		}
	}
	if !r.get(t, secretsToken, "cluster-secrets").Req.GetProtect() {
		t.Error("the secrets bundle is not protected")
	}
}

func TestKubeconfigClientKeyIsEncryptedInState(t *testing.T) {
	r := mustRun(t, fixture.Cluster(t, "norns"), runOpts{})
	kc := r.get(t, kubeconfigTok, "bootstrap-kubeconfig")
	if !slices.Contains(kc.Req.GetAdditionalSecretOutputs(), "kubernetesClientConfiguration") {
		t.Errorf("additional secret outputs %v: the client key in kubernetesClientConfiguration would be stored in clear", kc.Req.GetAdditionalSecretOutputs())
	}
}

func TestInstallsAreNeverUpdated(t *testing.T) {
	r := mustRun(t, fixture.FiveNodes(t), runOpts{})
	for _, n := range []string{"urd", "verdandi", "skuld", "w1", "w2"} {
		in := r.get(t, applyToken, "install-"+n)
		for key := range in.Inputs {
			if !slices.Contains(in.Req.GetIgnoreChanges(), string(key)) {
				t.Errorf("install-%s does not ignore %s: a change to it would re-send the first config in mode auto", n, key)
			}
		}
	}
}

func TestNodesAreResetOnDestroyOnlyWhenTheStackOptsIn(t *testing.T) {
	for _, optIn := range []bool{false, true} {
		c := fixture.Cluster(t, "norns")
		c["resetOnDestroy"] = optIn
		r := mustRun(t, c, runOpts{})
		for _, res := range r.ofType(applyToken) {
			if res.Inputs["onDestroy"].ObjectValue()["reset"].BoolValue() {
				t.Errorf("%s resets its node when deleted: the provider would power a node off (reboot false) or fail on a dead one", res.Name)
			}
		}
		var resets []registration
		for _, cmd := range r.ofType(commandToken) {
			if strings.HasPrefix(cmd.Name, "config-reset-") {
				resets = append(resets, cmd)
			}
		}
		if !optIn {
			if len(resets) != 0 {
				t.Errorf("resetOnDestroy false registers resets: %s", r.names(commandToken))
			}
			continue
		}
		if len(resets) != 3 {
			t.Fatalf("%d resets, want one per node", len(resets))
		}
		for _, cmd := range resets {
			if _, runsOnCreate := cmd.Inputs["create"]; runsOnCreate || !strings.Contains(str(cmd.Inputs["delete"]), "talos reset --graceful=\"$graceful\" --reboot") {
				t.Errorf("%s does not reset back to maintenance mode (with a reboot) when deleted, and only then", cmd.Name)
			}
		}
		if !r.dependsOn(r.get(t, commandToken, "config-reset-skuld"), "config-reset-verdandi") {
			t.Error("the resets are not chained: a destroy would reset every node at once")
		}
	}
}

func TestUpStopsWhenANodeDoesNotAnswer(t *testing.T) {
	r := runProgram(t, fixture.Cluster(t, "norns"), runOpts{unreachable: []string{"192.168.0.121"}})
	if r.err == nil || !strings.Contains(r.err.Error(), "verdandi (192.168.0.121)") || !strings.Contains(r.err.Error(), "nothing was changed") {
		t.Fatalf("error %v; want verdandi named", r.err)
	}
	if len(r.resources) != 0 {
		t.Errorf("registered %s before stopping", r.names(""))
	}
	if p := runProgram(t, fixture.Cluster(t, "norns"), runOpts{unreachable: []string{"192.168.0.121"}, preview: true}); p.err != nil {
		t.Errorf("a preview checked the nodes: %v", p.err)
	}
}
