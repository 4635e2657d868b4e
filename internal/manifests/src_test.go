package manifests_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"path"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"homelab/internal/manifests"
	"homelab/internal/stackconfig"
	"homelab/src"
)

// strictTypes are the kinds whose Go types a served module has: a manifest of one of them must
// decode into it with no unknown field, so a typo fails the tests.
var strictTypes = map[string]func() any{
	"v1/Namespace":                              func() any { return &corev1.Namespace{} },
	"v1/ConfigMap":                              func() any { return &corev1.ConfigMap{} },
	"gateway.networking.k8s.io/v1/Gateway":      func() any { return &gatewayv1.Gateway{} },
	"gateway.networking.k8s.io/v1/HTTPRoute":    func() any { return &gatewayv1.HTTPRoute{} },
	"gateway.networking.k8s.io/v1/GatewayClass": func() any { return &gatewayv1.GatewayClass{} },
	"gateway.networking.k8s.io/v1/GRPCRoute":    func() any { return &gatewayv1.GRPCRoute{} },
}

func TestEveryYAMLFileUnderSrcParses(t *testing.T) {
	var files, strict int
	err := fs.WalkDir(src.FS, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(name) != ".yaml" {
			return err
		}
		files++
		data, err := fs.ReadFile(src.FS, name)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for doc := 1; ; doc++ {
			var node yaml.Node
			err := dec.Decode(&node)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Errorf("src/%s: document %d: %v", name, doc, err)
				break
			}
			var head struct {
				APIVersion string `yaml:"apiVersion"`
				Kind       string `yaml:"kind"`
			}
			if err := node.Decode(&head); err != nil || head.Kind == "" {
				continue // not a Kubernetes manifest: Talos patch, values, lock
			}
			newType, ok := strictTypes[head.APIVersion+"/"+head.Kind]
			if !ok {
				continue
			}
			var raw any
			if err := node.Decode(&raw); err != nil {
				t.Errorf("src/%s: %v", name, err)
				continue
			}
			text, err := yaml.Marshal(raw)
			if err != nil {
				t.Fatal(err)
			}
			if err := sigsyaml.UnmarshalStrict(text, newType()); err != nil {
				t.Errorf("src/%s: document %d (%s %s) does not decode strictly: %v", name, doc, head.APIVersion, head.Kind, err)
			}
			strict++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 15 || strict < 3 {
		t.Errorf("parsed %d YAML files, %d strictly: src/ lost data, or the walk is broken", files, strict)
	}
}

func TestStrictDecodingCatchesATypo(t *testing.T) {
	typo := "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: x}\nspec:\n  gatewayClassName: cilium\n  listners: []\n"
	if err := sigsyaml.UnmarshalStrict([]byte(typo), &gatewayv1.Gateway{}); err == nil || !strings.Contains(err.Error(), "listners") {
		t.Errorf("a misspelt field decoded: %v", err)
	}
}

// TestThePinnedGatewayAPIReleaseIsVendored fails, naming the vendoring command, when the program's
// default Gateway API release (which Renovate bumps) has no vendored CRDs.
func TestThePinnedGatewayAPIReleaseIsVendored(t *testing.T) {
	if _, err := manifests.GatewayAPICRDs(src.FS, stackconfig.DefaultGatewayAPIVersion); err != nil {
		t.Error(err)
	}
}
