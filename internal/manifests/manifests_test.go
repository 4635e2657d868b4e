package manifests_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"

	_ "homelab/internal/golden" // registers -update for go test ./...
	"homelab/internal/manifests"
	"homelab/internal/stackconfig"
	"homelab/src"
)

// A small fixture CRD; the upstream files are large and tested only through their lock.
const fixtureCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  annotations:
    gateway.networking.k8s.io/bundle-version: v9.9.9
  creationTimestamp: null
  name: widgets.example.io
spec:
  group: example.io
  names: {kind: Widget, plural: widgets}
  scope: Cluster
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object}}
status:
  acceptedNames: {kind: "", plural: ""}
`

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func fixture(files map[string]string, lockFiles map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	for name, content := range files {
		fsys["bootstrap/gateway-api/v9.9.9/"+name] = &fstest.MapFile{Data: []byte(content)}
	}
	if lockFiles != nil {
		var b strings.Builder
		b.WriteString("version: v9.9.9\nfiles:\n")
		for name, sum := range lockFiles {
			fmt.Fprintf(&b, "  %s: %s\n", name, sum)
		}
		fsys["bootstrap/gateway-api/v9.9.9.lock.yaml"] = &fstest.MapFile{Data: []byte(b.String())}
	}
	return fsys
}

func TestFixtureCRDsLoadThroughTheLock(t *testing.T) {
	crds, err := manifests.GatewayAPICRDs(fixture(map[string]string{"widgets.yaml": fixtureCRD}, map[string]string{"widgets.yaml": sha(fixtureCRD)}), "v9.9.9")
	if err != nil {
		t.Fatal(err)
	}
	if len(crds) != 1 {
		t.Fatalf("%d CRDs, want 1", len(crds))
	}
	c := crds[0]
	if c.Name != "widgets.example.io" || c.Kind != "CustomResourceDefinition" || c.APIVersion != "apiextensions.k8s.io/v1" {
		t.Errorf("decoded %s %s %s", c.APIVersion, c.Kind, c.Name)
	}
	if _, ok := c.Fields["status"]; ok {
		t.Error("status is kept: the API server owns it")
	}
	if c.Annotations["gateway.networking.k8s.io/bundle-version"] != "v9.9.9" {
		t.Errorf("annotations %v", c.Annotations)
	}
	if c.Fields["spec"].(map[string]any)["group"] != "example.io" {
		t.Errorf("spec %v", c.Fields["spec"])
	}
}

func TestMissingReleaseNamesTheVendoringCommand(t *testing.T) {
	_, err := manifests.GatewayAPICRDs(fstest.MapFS{}, "v1.3.0")
	if err == nil || !strings.Contains(err.Error(), "run `scripts/vendor-gateway-api v1.3.0`") {
		t.Errorf("error %v; want the vendoring command", err)
	}
	_, err = manifests.GatewayAPICRDs(fixture(nil, map[string]string{"widgets.yaml": sha(fixtureCRD)}), "v9.9.9")
	if err == nil || !strings.Contains(err.Error(), "bootstrap/gateway-api/v9.9.9/widgets.yaml is missing") || !strings.Contains(err.Error(), "scripts/vendor-gateway-api v9.9.9") {
		t.Errorf("error %v; want the missing file and the vendoring command", err)
	}
}

func TestEditedOrExtraFilesAreRefused(t *testing.T) {
	edited := strings.Replace(fixtureCRD, "Cluster", "Namespaced", 1)
	_, err := manifests.GatewayAPICRDs(fixture(map[string]string{"widgets.yaml": edited, "extra.yaml": fixtureCRD},
		map[string]string{"widgets.yaml": sha(fixtureCRD)}), "v9.9.9")
	if err == nil {
		t.Fatal("an edited CRD loaded")
	}
	for _, want := range []string{"widgets.yaml has sha256:", "extra.yaml is not in the lock"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q: %v", want, err)
		}
	}
}

func TestVendoredReleaseMatchesItsLock(t *testing.T) {
	crds, err := manifests.GatewayAPICRDs(src.FS, stackconfig.DefaultGatewayAPIVersion)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, c := range crds {
		kinds = append(kinds, c.Fields["spec"].(map[string]any)["names"].(map[string]any)["kind"].(string))
	}
	if got := strings.Join(kinds, ","); got != "GatewayClass,Gateway,GRPCRoute,HTTPRoute,ReferenceGrant" {
		t.Errorf("standard-channel kinds %s", got)
	}
}

func TestPoolTakesTheStackRange(t *testing.T) {
	objs, err := manifests.L2Objects(src.FS, stackconfig.AddressRange{Start: "10.0.0.10", Stop: "10.0.0.20"})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]manifests.Object{}
	for _, o := range objs {
		kinds[o.Kind] = o
	}
	pool, ok := kinds["CiliumLoadBalancerIPPool"]
	if !ok || pool.APIVersion != "cilium.io/v2" {
		t.Fatalf("pool %+v; want cilium.io/v2, the version Cilium 1.18 stores", pool)
	}
	blocks := pool.Fields["spec"].(map[string]any)["blocks"].([]any)
	if len(blocks) != 1 || blocks[0].(map[string]any)["start"] != "10.0.0.10" || blocks[0].(map[string]any)["stop"] != "10.0.0.20" {
		t.Errorf("blocks %v", blocks)
	}
	if policy, ok := kinds["CiliumL2AnnouncementPolicy"]; !ok || policy.APIVersion != "cilium.io/v2alpha1" {
		t.Errorf("policy %+v; want cilium.io/v2alpha1", policy)
	}
}

func TestManifestErrorsNameTheFile(t *testing.T) {
	_, err := manifests.Decode("bootstrap/x.yaml", []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  uid: 123\n"))
	if err == nil || !strings.Contains(err.Error(), "src/bootstrap/x.yaml: document 1: metadata.uid is not supported") {
		t.Errorf("error %v", err)
	}
	_, err = manifests.Decode("bootstrap/x.yaml", []byte("kind: ConfigMap\nmetadata: {name: a}\n"))
	if err == nil || !strings.Contains(err.Error(), "apiVersion is missing") {
		t.Errorf("error %v", err)
	}
}

// Cilium's L2 announcer picks announcing nodes only by the policy's nodeSelector (cilium v1.18.3
// pkg/l2announcer/l2announcer.go:451-477) and nothing in it honours Talos's
// node.kubernetes.io/exclude-from-external-load-balancers label. On a cluster of control planes
// only, the policy must not leave them out, or no node answers for a LoadBalancer address.
func TestL2PolicyLetsControlPlanesAnnounce(t *testing.T) {
	objs, err := manifests.L2Objects(src.FS, stackconfig.AddressRange{Start: "10.0.0.10", Stop: "10.0.0.20"})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if o.Kind != "CiliumL2AnnouncementPolicy" {
			continue
		}
		spec := o.Fields["spec"].(map[string]any)
		if spec["loadBalancerIPs"] != true {
			t.Error("the policy does not announce LoadBalancer addresses")
		}
		if sel, ok := spec["nodeSelector"]; ok {
			text := fmt.Sprint(sel)
			for _, label := range []string{"node-role.kubernetes.io/control-plane", "node.kubernetes.io/exclude-from-external-load-balancers"} {
				if strings.Contains(text, label) {
					t.Errorf("the policy's nodeSelector %v mentions %s: control planes would not announce", sel, label)
				}
			}
		}
		return
	}
	t.Fatal("no CiliumL2AnnouncementPolicy")
}
