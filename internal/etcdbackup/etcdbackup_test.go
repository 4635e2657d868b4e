package etcdbackup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	_ "homelab/internal/golden" // defines -update, so `go test ./... -update` runs here too
	"homelab/internal/stackconfig"
)

// The snapshot's revision and size come from talosctl's own report of it (etcdutl's status).
func TestTheSnapshotReportGivesTheRevisionAndSize(t *testing.T) {
	out := "etcd snapshot saved to \"/tmp/db\" (2015264 bytes)\nsnapshot info: hash c25fd181, revision 4193, total keys 1203, total size 2015232\n"
	info, err := parseInfo(out)
	if err != nil || info.Revision != 4193 || info.Keys != 1203 || info.Size != 2015232 || info.Hash != "c25fd181" {
		t.Errorf("parsed %+v, %v", info, err)
	}
	if _, err := parseInfo("etcd snapshot saved\n"); err == nil {
		t.Error("a report without the snapshot's status was taken")
	}
}

// A snapshot leaves the machine only encrypted to the recipients, and only their identity opens it.
func TestASnapshotIsStoredOnlyEncrypted(t *testing.T) {
	dir := t.TempDir()
	id, _ := age.GenerateX25519Identity()
	other, _ := age.GenerateX25519Identity()
	recipients, err := recipientsOf(stackconfig.Backup{Recipients: []string{id.Recipient().String()}})
	if err != nil {
		t.Fatal(err)
	}
	clear := filepath.Join(dir, "db")
	if err := os.WriteFile(clear, []byte("the cluster's etcd data: a Secret's value"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := encrypt(clear, clear+".age", recipients); err != nil {
		t.Fatal(err)
	}
	enc, _ := os.ReadFile(clear + ".age")
	if strings.Contains(string(enc), "Secret's value") || !strings.HasPrefix(string(enc), "age-encryption.org/v1") {
		t.Fatal("the stored snapshot is not an age file, or holds the data in clear")
	}
	if err := decrypt(clear+".age", filepath.Join(dir, "wrong"), []age.Identity{other}); err == nil {
		t.Error("an identity of no recipient opened the snapshot")
	}
	if err := decrypt(clear+".age", filepath.Join(dir, "back"), []age.Identity{id}); err != nil {
		t.Fatal(err)
	}
	if back, _ := os.ReadFile(filepath.Join(dir, "back")); string(back) != "the cluster's etcd data: a Secret's value" {
		t.Errorf("decrypted %q", back)
	}
}

// Without the bucket's access key in the environment (op run fills it), nothing is attempted, and
// the error names the vault item to read it from.
func TestTheBucketKeyComesFromTheVault(t *testing.T) {
	t.Setenv("ETCD_BACKUP_ACCESS_KEY_ID", "op://kubernetes/etcd-backup/accessKeyID")
	t.Setenv("ETCD_BACKUP_SECRET_ACCESS_KEY", "")
	_, err := OpenStore("norns", stackconfig.Backup{S3: &stackconfig.S3Bucket{Endpoint: "https://s3.lan", Bucket: "etcd"}, Item: "etcd-backup"}, "kubernetes")
	if err == nil || !strings.Contains(err.Error(), `item "etcd-backup" of vault "kubernetes"`) || !strings.Contains(err.Error(), "op run") {
		t.Errorf("err = %v", err)
	}
}
