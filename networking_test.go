package main

import (
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"homelab/internal/golden"
)

const (
	chartToken   = "kubernetes:helm.sh/v4:Chart"
	crdToken     = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
	poolToken    = "kubernetes:cilium.io/v2:CiliumLoadBalancerIPPool"
	policyToken  = "kubernetes:cilium.io/v2alpha1:CiliumL2AnnouncementPolicy"
	providerType = "pulumi:providers:kubernetes"
)

func TestGatewayAPICRDsComeBeforeCilium(t *testing.T) {
	r := mustRun(t, freshNorns(t), runOpts{})
	crds := r.ofType(crdToken)
	if len(crds) != 5 {
		t.Fatalf("%d Gateway API CRDs (%s), want the 5 of the standard channel", len(crds), r.names(crdToken))
	}
	chart := r.get(t, chartToken, "cilium")
	for _, crd := range crds {
		if !chart.deps()[crd.Name] {
			t.Errorf("the cilium chart does not wait for %s", crd.Name)
		}
	}
	if v := str(chart.Inputs["version"]); v != "1.18.3" {
		t.Errorf("cilium chart version %q, want the pinned 1.18.3", v)
	}
}

func TestCiliumComesBeforeAnyHandover(t *testing.T) {
	r := mustRun(t, fiveNodes(t), runOpts{})
	for _, n := range []string{"urd", "verdandi", "skuld", "w1", "w2"} {
		for _, res := range []registration{r.get(t, applyToken, "config-stage-"+n), r.get(t, commandToken, "config-gate-"+n), r.get(t, applyToken, "config-apply-"+n)} {
			if !r.dependsOn(res, "cilium") {
				t.Errorf("%s does not wait for the cilium chart: the handover patch could reach %s before Cilium runs", res.Name, n)
			}
		}
	}
	// The bring-up installs must not wait for Cilium (the cluster needs them to exist at all).
	if r.dependsOn(r.get(t, applyToken, "install-urd"), "cilium") {
		t.Error("install-urd waits for Cilium: a new cluster could never bootstrap")
	}
}

func TestEachHandoverWaitsForThePreviousNodesGate(t *testing.T) {
	r := mustRun(t, fiveNodes(t), runOpts{})
	order := []string{"urd", "verdandi", "skuld", "w1", "w2"}
	for i := 1; i < len(order); i++ {
		for _, res := range []registration{r.get(t, commandToken, "config-gate-"+order[i]), r.get(t, applyToken, "config-apply-"+order[i])} {
			if !r.dependsOn(res, "config-gate-"+order[i-1]) {
				t.Errorf("%s does not wait for the gate of %s", res.Name, order[i-1])
			}
		}
	}
	env := r.get(t, commandToken, "config-gate-urd").Inputs["environment"].ObjectValue()
	if str(env["CHECK_CILIUM"]) != "true" {
		t.Error("the gates do not wait for the Cilium agent on the rebooted node")
	}
	if str(env["FIRST_RUN"]) != "reboot" {
		t.Error("on a new cluster the gate's first run does not reboot: the handover would not clear Flannel's leftovers")
	}
}

func TestCleanupRunsAfterTheLastHandover(t *testing.T) {
	r := mustRun(t, fiveNodes(t), runOpts{})
	cleanup := r.get(t, commandToken, "cni-cleanup")
	for _, n := range []string{"urd", "verdandi", "skuld", "w1", "w2"} {
		if !r.dependsOn(cleanup, "config-gate-"+n) || !r.dependsOn(cleanup, "config-apply-"+n) {
			t.Errorf("the clean-up does not wait for node %s's handover", n)
		}
	}
	if !cleanup.deps()["config-gate-w2"] {
		t.Error("the clean-up does not wait directly for the last gate")
	}
}

func TestPoolAndPolicyComeAfterCilium(t *testing.T) {
	r := mustRun(t, stack(t, "norns"), runOpts{})
	pool := r.get(t, poolToken, "l2-lan-CiliumLoadBalancerIPPool")
	policy := r.get(t, policyToken, "l2-lan-CiliumL2AnnouncementPolicy")
	for _, res := range []registration{pool, policy} {
		if !res.deps()["cilium"] {
			t.Errorf("%s does not wait for the cilium chart, whose operator registers its CRD", res.Name)
		}
	}
	blocks := pool.Inputs["spec"].ObjectValue()["blocks"].ArrayValue()
	if len(blocks) != 1 || str(blocks[0].ObjectValue()["start"]) != "192.168.0.200" || str(blocks[0].ObjectValue()["stop"]) != "192.168.0.253" {
		t.Errorf("pool blocks %v, want the stack's 192.168.0.200-192.168.0.253", blocks)
	}
	if !policy.Inputs["spec"].ObjectValue()["loadBalancerIPs"].BoolValue() {
		t.Error("the announcement policy does not announce LoadBalancer IPs")
	}
}

func TestNoPoolWithoutARange(t *testing.T) {
	c := stack(t, "norns")
	r := runProgramWith(t, c, map[string]any{"gatewayAPI": map[string]any{"version": "v1.2.1"}}, runOpts{})
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.ofType(poolToken))+len(r.ofType(policyToken)) != 0 {
		t.Error("a pool or policy exists although the stack sets no loadBalancerPool")
	}
}

func TestAdoptionHasNoBootstrapAndNoBringUpPhase(t *testing.T) {
	r := mustRun(t, stack(t, "norns"), runOpts{})
	if len(r.ofType(bootstrapToken)) != 0 {
		t.Error("an adopted cluster has a bootstrap")
	}
	for _, n := range []string{"urd", "verdandi", "skuld"} {
		install := r.get(t, applyToken, "install-"+n)
		if !strings.Contains(patchText(install), "name: none") {
			t.Errorf("install-%s lacks the handover patch: an adopted node would go back to Flannel", n)
		}
		env := r.get(t, commandToken, "config-gate-"+n).Inputs["environment"].ObjectValue()
		if str(env["FIRST_RUN"]) != "check" {
			t.Errorf("the gate of adopted node %s would reboot it without asking Talos", n)
		}
	}
}

func TestFreshClusterBringsUpOnTheDefaultCNI(t *testing.T) {
	r := mustRun(t, freshNorns(t), runOpts{})
	for _, n := range []string{"urd", "verdandi", "skuld"} {
		if strings.Contains(patchText(r.get(t, applyToken, "install-"+n)), "cni:") {
			t.Errorf("install-%s disables the default CNI: a new cluster needs it to bootstrap", n)
		}
		if !strings.Contains(patchText(r.get(t, applyToken, "config-apply-"+n)), "name: none") {
			t.Errorf("config-apply-%s lacks the handover patch", n)
		}
	}
}

func TestAddedNodeInstallsDirectlyOnFinalConfig(t *testing.T) {
	c := stack(t, "norns")
	c["nodes"] = append(c["nodes"].([]any), map[string]any{"name": "mimir", "address": "192.168.0.123", "role": "worker"})
	r := mustRun(t, c, runOpts{})
	if !strings.Contains(patchText(r.get(t, applyToken, "install-mimir")), "name: none") {
		t.Error("a node added to a running cluster installs with Flannel: Talos would re-create the Flannel DaemonSet")
	}
	env := r.get(t, commandToken, "config-gate-mimir").Inputs["environment"].ObjectValue()
	if str(env["FIRST_RUN"]) != "check" {
		t.Error("the gate of an added node would reboot it once more")
	}
	// No other node's resources change: their inputs equal those of the run without mimir.
	before := mustRun(t, stack(t, "norns"), runOpts{})
	for _, name := range []string{"config-gate-urd", "config-stage-urd", "config-apply-skuld", "install-verdandi"} {
		typ := applyToken
		if strings.HasPrefix(name, "config-gate-") {
			typ = commandToken
		}
		if !r.get(t, typ, name).Inputs.DeepEquals(before.get(t, typ, name).Inputs) {
			t.Errorf("adding a node changes the inputs of %s", name)
		}
	}
}

func TestKubernetesObjectsUseTheClusterProvider(t *testing.T) {
	r := mustRun(t, stack(t, "norns"), runOpts{})
	providers := r.ofType(providerType)
	if len(providers) != 1 {
		t.Fatalf("%d Kubernetes providers, want exactly one", len(providers))
	}
	if ci := str(providers[0].Inputs["clusterIdentifier"]); ci != "norns" {
		t.Errorf("clusterIdentifier %q, want norns: a renewed kubeconfig would replace every object", ci)
	}
	if !providers[0].Inputs["kubeconfig"].IsSecret() {
		t.Error("the provider's kubeconfig is not secret")
	}
	for _, res := range r.resources {
		if strings.HasPrefix(res.Type, "kubernetes:") && !strings.Contains(res.Req.GetProvider(), "::kubernetes::") &&
			!providerIn(res.Req.GetProviders()) {
			t.Errorf("%s %s does not use the cluster's provider (provider %q)", res.Type, res.Name, res.Req.GetProvider())
		}
	}
}

func TestPreviewWithholdsTheKubeconfigFromTheProvider(t *testing.T) {
	r := mustRun(t, stack(t, "norns"), runOpts{preview: true})
	// The mock engine reports an unknown input as null.
	if kc := r.ofType(providerType)[0].Inputs["kubeconfig"]; !kc.ContainsUnknowns() && !kc.IsNull() {
		t.Errorf("during preview the provider gets kubeconfig %v: it would contact the cluster", kc)
	}
	up := mustRun(t, stack(t, "norns"), runOpts{})
	if kc := up.ofType(providerType)[0].Inputs["kubeconfig"]; !strings.Contains(str(kc), "kind: Config") {
		t.Errorf("during up the provider gets kubeconfig %v, not the cluster's", kc)
	}
}

func TestCiliumValuesMatchReviewedGolden(t *testing.T) {
	r := mustRun(t, stack(t, "norns"), runOpts{})
	chart := r.get(t, chartToken, "cilium")
	files := chart.Inputs["valueYamlFiles"].ArrayValue()
	if len(files) != 1 {
		t.Fatalf("%d values files, want src/bootstrap/cilium/values.yaml only", len(files))
	}
	var values map[string]any
	if err := yaml.Unmarshal([]byte(files[0].AssetValue().Text), &values); err != nil {
		t.Fatal(err)
	}
	computed := chart.Inputs["values"].Mappable()
	out, err := yaml.Marshal(map[string]any{"values.yaml": values, "computed": computed})
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "cilium-values.golden"), out)
	for key, want := range map[string]any{"kubeProxyReplacement": true, "k8sServiceHost": "localhost", "k8sServicePort": 7445} {
		if values[key] != want {
			t.Errorf("%s = %v, want %v (Talos guide)", key, values[key], want)
		}
	}
	caps := values["securityContext"].(map[string]any)["capabilities"].(map[string]any)["ciliumAgent"]
	for _, c := range caps.([]any) {
		if c == "SYS_MODULE" {
			t.Error("the agent asks for SYS_MODULE, which Talos forbids")
		}
	}
}

func patchText(reg registration) string {
	var parts []string
	for _, p := range reg.Inputs["configPatches"].ArrayValue() {
		parts = append(parts, str(p))
	}
	return strings.Join(parts, "\n")
}

func providerIn(providers map[string]string) bool {
	return strings.Contains(providers["kubernetes"], "::kubernetes::")
}
