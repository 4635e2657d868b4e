package components_test

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pulumiverse/pulumi-talos/sdk/go/talos/machine"
	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"

	"homelab/components"
	_ "homelab/internal/golden" // registers -update for go test ./...
)

// The backup must be a secrets.yaml that talosctl (and `pulumi import`, and cmd/render) reads back
// into the same bundle: that is the restore path.
func TestBackupIsATalosctlSecretsFile(t *testing.T) {
	want, err := secrets.LoadBundle("../internal/render/testdata/secrets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	ms := machine.MachineSecrets{
		Cluster: machine.Cluster{Id: want.Cluster.ID, Secret: want.Cluster.Secret},
		Secrets: machine.KubernetesSecrets{
			BootstrapToken: want.Secrets.BootstrapToken, SecretboxEncryptionSecret: want.Secrets.SecretboxEncryptionSecret,
		},
		Trustdinfo: machine.TrustdInfo{Token: want.TrustdInfo.Token},
		Certs: machine.Certificates{
			Etcd:              machine.Certificate{Cert: b64(want.Certs.Etcd.Crt), Key: b64(want.Certs.Etcd.Key)},
			K8s:               machine.Certificate{Cert: b64(want.Certs.K8s.Crt), Key: b64(want.Certs.K8s.Key)},
			K8sAggregator:     machine.Certificate{Cert: b64(want.Certs.K8sAggregator.Crt), Key: b64(want.Certs.K8sAggregator.Key)},
			K8sServiceaccount: machine.Key{Key: b64(want.Certs.K8sServiceAccount.Key)},
			Os:                machine.Certificate{Cert: b64(want.Certs.OS.Crt), Key: b64(want.Certs.OS.Key)},
		},
	}
	text, err := components.SecretsYAML(ms)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "secrets.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := secrets.LoadBundle(path)
	if err != nil {
		t.Fatalf("talosctl's loader rejects the backup: %v", err)
	}
	if got.Cluster.ID != want.Cluster.ID || got.Secrets.BootstrapToken != want.Secrets.BootstrapToken ||
		got.TrustdInfo.Token != want.TrustdInfo.Token || string(got.Certs.OS.Key) != string(want.Certs.OS.Key) ||
		string(got.Certs.Etcd.Crt) != string(want.Certs.Etcd.Crt) || string(got.Certs.K8sServiceAccount.Key) != string(want.Certs.K8sServiceAccount.Key) {
		t.Error("the backup reads back into a different bundle")
	}
}

// The kubeconfig follows the stack's endpoint; one already on it is passed through unchanged.
func TestTheKubeconfigFollowsTheEndpoint(t *testing.T) {
	raw := "apiVersion: v1\nkind: Config\nclusters:\n    - name: norns\n      cluster:\n        server: https://192.168.0.120:6443\n        certificate-authority-data: Zm9v\ncontexts: []\n"
	same, err := components.WithServer(raw, "https://192.168.0.120:6443")
	if err != nil || same != raw {
		t.Errorf("unchanged kubeconfig rewritten: %v\n%s", err, same)
	}
	moved, err := components.WithServer(raw, "https://192.168.0.119:6443")
	if err != nil || !strings.Contains(moved, "server: https://192.168.0.119:6443") || strings.Contains(moved, "192.168.0.120") ||
		!strings.Contains(moved, "certificate-authority-data: Zm9v") {
		t.Errorf("moved kubeconfig: %v\n%s", err, moved)
	}
}
