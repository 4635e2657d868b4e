package cluster

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"homelab/internal/fixture"
	"homelab/internal/golden"
)

const (
	crdToken     = "kubernetes:apiextensions.k8s.io/v1:CustomResourceDefinition"
	poolToken    = "kubernetes:cilium.io/v2:CiliumLoadBalancerIPPool"
	policyToken  = "kubernetes:cilium.io/v2alpha1:CiliumL2AnnouncementPolicy"
	providerType = "pulumi:providers:kubernetes"
)

func TestGatewayAPICRDsComeBeforeCilium(t *testing.T) {
	r := mustRun(t, fixture.FreshNorns(t), runOpts{})
	var crds []registration
	for _, crd := range r.ofType(crdToken) {
		if strings.HasPrefix(crd.Name, "gateway-api-") {
			crds = append(crds, crd)
		}
	}
	if len(crds) != 5 {
		t.Fatalf("%d Gateway API CRDs (%s), want the 5 of the standard channel", len(crds), r.names(crdToken))
	}
	for _, obj := range r.chartObjects("cilium") {
		for _, crd := range crds {
			if !obj.deps()[crd.Name] {
				t.Errorf("%s of the cilium chart does not wait for %s", obj.Name, crd.Name)
			}
		}
	}
	if v := r.templates["cilium"]["version"]; v != "1.18.3" {
		t.Errorf("cilium chart version %v, want the pinned 1.18.3", v)
	}
}

func TestCiliumComesBeforeAnyHandover(t *testing.T) {
	r := mustRun(t, fixture.FiveNodes(t), runOpts{})
	for _, n := range []string{"urd", "verdandi", "skuld", "w1", "w2"} {
		for _, res := range []registration{r.get(t, applyToken, "config-stage-"+n), r.get(t, commandToken, "config-gate-"+n), r.get(t, applyToken, "config-apply-"+n)} {
			if !r.waitsForChart(t, res, "cilium") {
				t.Errorf("%s does not wait for the cilium chart: the handover patch could reach %s before Cilium runs", res.Name, n)
			}
		}
	}
	// The bring-up installs must not wait for Cilium (the cluster needs them to exist at all).
	if r.dependsOn(r.get(t, applyToken, "install-urd"), "cilium:Deployment:kube-system/cilium-server") {
		t.Error("install-urd waits for Cilium: a new cluster could never bootstrap")
	}
}

func TestEachHandoverWaitsForThePreviousNodesGate(t *testing.T) {
	r := mustRun(t, fixture.FiveNodes(t), runOpts{})
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
	r := mustRun(t, fixture.FiveNodes(t), runOpts{})
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
	r := mustRun(t, fixture.Cluster(t, "norns"), runOpts{})
	pool := r.get(t, poolToken, "l2-lan-CiliumLoadBalancerIPPool")
	policy := r.get(t, policyToken, "l2-lan-CiliumL2AnnouncementPolicy")
	for _, res := range []registration{pool, policy} {
		if !r.waitsForChart(t, res, "cilium") {
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
	c := fixture.Cluster(t, "norns")
	r := runProgramWith(t, c, map[string]any{"gatewayAPI": map[string]any{"version": "v1.2.1"}}, runOpts{})
	if r.err != nil {
		t.Fatal(r.err)
	}
	if len(r.ofType(poolToken))+len(r.ofType(policyToken)) != 0 {
		t.Error("a pool or policy exists although the stack sets no loadBalancerPool")
	}
}

func TestAdoptionHasNoBootstrapAndNoBringUpPhase(t *testing.T) {
	r := mustRun(t, fixture.Cluster(t, "norns"), runOpts{})
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
	r := mustRun(t, fixture.FreshNorns(t), runOpts{})
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
	c := fixture.Cluster(t, "norns")
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
	before := mustRun(t, fixture.Cluster(t, "norns"), runOpts{})
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
	r := mustRun(t, fixture.Cluster(t, "norns"), runOpts{})
	cluster := r.get(t, providerType, "kubernetes")
	if len(r.ofType(providerType)) != 2 {
		t.Fatalf("Kubernetes providers %s, want the cluster's and the chart renderer", r.names(providerType))
	}
	if ci := str(cluster.Inputs["clusterIdentifier"]); ci != "norns" {
		t.Errorf("clusterIdentifier %q, want norns: a renewed kubeconfig would replace every object", ci)
	}
	if !cluster.Inputs["kubeconfig"].IsSecret() {
		t.Error("the provider's kubeconfig is not secret")
	}
	for _, res := range r.resources {
		if strings.HasPrefix(res.Type, "kubernetes:") && !strings.Contains(res.Req.GetProvider(), "::kubernetes::") &&
			!providerIn(res.Req.GetProviders()) {
			t.Errorf("%s %s does not use the cluster's provider (provider %q)", res.Type, res.Name, res.Req.GetProvider())
		}
	}
}

func TestChartsRenderWithoutTheCluster(t *testing.T) {
	r := mustRun(t, fixture.Cluster(t, "norns"), runOpts{})
	renderer := r.get(t, providerType, "chart-renderer")
	kc := str(renderer.Inputs["kubeconfig"])
	if !strings.Contains(kc, "server: https://127.0.0.1:1") || strings.Contains(kc, "token") || strings.Contains(kc, "client-key") {
		t.Errorf("the renderer's kubeconfig %q names a cluster or credentials; it must name none", kc)
	}
	for _, chart := range []string{"cilium", "connect", "argo-cd"} {
		opts, ok := r.templates[chart]
		if !ok {
			t.Fatalf("the %s chart was not rendered", chart)
		}
		if !strings.HasSuffix(r.templateProviders[chart], "::chart-renderer::"+r.get(t, providerType, "chart-renderer").Name+"-id") {
			t.Errorf("the %s chart is rendered by %q, not by the chart renderer", chart, r.templateProviders[chart])
		}
		// Given both, helm template asks the cluster nothing (invoke_helm_template.go:255-277).
		if opts["kube_version"] != "v1.34.1" {
			t.Errorf("the %s chart is rendered for Kubernetes %v, want the stack's v1.34.1", chart, opts["kube_version"])
		}
		apis := fmt.Sprint(opts["api_versions"])
		if !strings.Contains(apis, "gateway.networking.k8s.io/v1/GatewayClass") {
			t.Errorf("the %s chart is rendered without the Gateway API in its capabilities: %s", chart, apis)
		}
		if _, ok := opts["repo"]; ok {
			t.Errorf("the %s chart sets the top-level repo, which the provider takes for a repository name", chart)
		}
		text, _ := json.Marshal(opts)
		for _, secret := range []string{fixture.ConnectToken, "fixture-credentials", base64.StdEncoding.EncodeToString([]byte(fixture.ConnectCredentials))} {
			if strings.Contains(string(text), secret) {
				t.Errorf("a secret value reaches the %s chart's rendering", chart)
			}
		}
	}
	// The chart's own CRDs come before its other objects.
	for _, obj := range r.chartObjects("argocd") {
		if !strings.Contains(obj.Name, "CustomResourceDefinition") && !obj.deps()["argocd:CustomResourceDefinition:things.argo-cd.example"] {
			t.Errorf("%s does not wait for the chart's CRD", obj.Name)
		}
	}
}

func TestPreviewDiffsAgainstTheDeployedKubeconfig(t *testing.T) {
	// A preview gives the provider the kubeconfig of the last deployment, so it diffs every
	// object (against the cluster when it answers, offline when not) instead of listing all of
	// them as updates; the health gate, which runs only in up, is not asked.
	r := mustRun(t, fixture.Cluster(t, "norns"), runOpts{preview: true})
	if kc := r.get(t, providerType, "kubernetes").Inputs["kubeconfig"]; !strings.Contains(str(kc), "kind: Config") {
		t.Errorf("during preview the provider gets kubeconfig %v, not the deployed one", kc)
	}
	for _, inv := range r.invokes {
		if inv == healthInvoke {
			t.Error("a preview runs the health gate")
		}
	}
}

func TestCiliumValuesMatchReviewedGolden(t *testing.T) {
	r := mustRun(t, fixture.Cluster(t, "norns"), runOpts{})
	values, _ := r.templates["cilium"]["values"].(map[string]any)
	out, err := yaml.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, filepath.Join("testdata", "cilium-values.golden"), out)
	for key, want := range map[string]any{"kubeProxyReplacement": true, "k8sServiceHost": "localhost", "k8sServicePort": 7445.0} {
		if values[key] != want {
			t.Errorf("%s = %v, want %v (Talos guide)", key, values[key], want)
		}
	}
	if replicas := values["operator"].(map[string]any)["replicas"]; replicas != 2.0 {
		t.Errorf("operator replicas %v, want 2 on three nodes", replicas)
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

func TestPlatformWaitsForTheNodesToSettle(t *testing.T) {
	// The cluster endpoint is a node's address, and nodes reboot during a rollout: nothing but
	// the Gateway API CRDs and Cilium (which the rollout needs) may talk to the API before it ends.
	r := mustRun(t, fixture.FiveNodes(t), runOpts{})
	var platform []registration
	platform = append(platform, r.get(t, poolToken, "l2-lan-CiliumLoadBalancerIPPool"), r.get(t, nsToken, "onepassword-namespace"),
		r.get(t, secretToken, "onepassword-op-credentials"), r.get(t, nsToken, "argocd-namespace"), r.get(t, opItemToken, "argocd-admin-secret"))
	platform = append(platform, r.chartObjects("onepassword")...)
	platform = append(platform, r.chartObjects("argocd")...)
	for _, res := range platform {
		for _, n := range []string{"urd", "verdandi", "skuld", "w1", "w2"} {
			if !r.dependsOn(res, "config-gate-"+n) {
				t.Errorf("%s does not wait for %s's gate: it could reach the API while a node reboots", res.Name, n)
			}
		}
	}
}
