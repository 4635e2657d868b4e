package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"homelab/internal/fixture"
)

// A stack that adopts a running cluster and has no state restores it: the identity is imported
// (from the 1Password backup, or secrets.yaml when given), never created, and nodes take their
// first managed config staged.

func backupVault(bundle string) map[string]map[string]string {
	v := fixture.Vault()
	v[identityVault+"/talos-norns"] = map[string]string{"secrets.yaml": bundle, "talosconfig": "context: norns\n"}
	return v
}

func TestAdoptionNeverMintsAnIdentity(t *testing.T) {
	r := runProgram(t, fixture.Cluster(t, "norns"), runOpts{restore: true})
	if r.err == nil {
		t.Fatal("a restore without the identity went on")
	}
	for _, want := range []string{"homelab:cluster.adopt is true", "never created", `vault "kubernetes-identity" has no item "talos-norns"`, `field "secrets.yaml"`, "secrets.yaml in the project directory"} {
		if !strings.Contains(r.err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, r.err)
		}
	}
	if len(r.resources) != 0 {
		t.Errorf("registered %s before failing", r.names(""))
	}
}

func TestRestoreImportsTheIdentityFromTheBackup(t *testing.T) {
	dir := t.TempDir()
	r := mustRun(t, fixture.Cluster(t, "norns"), runOpts{restore: true, root: dir, vault: backupVault("cluster:\n  id: from-the-vault\n")})
	sec := r.get(t, secretsToken, "cluster-secrets")
	if got := sec.Req.GetImportId(); got != "secrets.yaml" {
		t.Errorf("the secrets bundle is imported from %q, want secrets.yaml", got)
	}
	if !sec.Req.GetProtect() {
		t.Error("the imported bundle is not protected")
	}
	if _, err := os.Stat(filepath.Join(dir, "secrets.yaml")); !os.IsNotExist(err) {
		t.Errorf("the bundle written for the import is still in the project directory: %v", err)
	}
	for _, in := range r.ofType(applyToken) {
		if strings.HasPrefix(in.Name, "install-") && str(in.Inputs["applyMode"]) != "staged" {
			t.Errorf("%s applies in mode %s to a running node; auto would reboot it in the background", in.Name, str(in.Inputs["applyMode"]))
		}
	}
}

func TestRestorePrefersAGivenSecretsFile(t *testing.T) {
	dir := t.TempDir()
	given := filepath.Join(dir, "secrets.yaml")
	if err := os.WriteFile(given, []byte("cluster:\n  id: given\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, fixture.Cluster(t, "norns"), runOpts{restore: true, root: dir}) // no backup item in the vault
	if got := r.get(t, secretsToken, "cluster-secrets").Req.GetImportId(); got != "secrets.yaml" {
		t.Errorf("import from %q, want secrets.yaml", got)
	}
	if _, err := os.Stat(given); err != nil {
		t.Errorf("the operator's secrets.yaml was removed: %v", err)
	}
}

func TestAStackThatDeployedNeverImports(t *testing.T) {
	r := mustRun(t, fixture.Cluster(t, "norns"), runOpts{})
	if id := r.get(t, secretsToken, "cluster-secrets").Req.GetImportId(); id != "" {
		t.Errorf("a stack with state imports its identity from %q", id)
	}
	for _, in := range r.ofType(applyToken) {
		if strings.HasPrefix(in.Name, "install-") && str(in.Inputs["applyMode"]) != "auto" {
			t.Errorf("%s: mode %s; a node new to a managed stack is in maintenance mode, which needs auto", in.Name, str(in.Inputs["applyMode"]))
		}
	}
}

// One backup item per cluster: 1Password allows two items of one title, and a read by title then
// fails, so a restore that added a second one would break the next restore.
func TestRestoreAdoptsTheBackupItemItRestoresFrom(t *testing.T) {
	for name, opts := range map[string]func(dir string) runOpts{
		"from the backup": func(dir string) runOpts {
			return runOpts{restore: true, root: dir, vault: backupVault("cluster:\n  id: from-the-vault\n")}
		},
		"from a given secrets.yaml": func(dir string) runOpts {
			if err := os.WriteFile(filepath.Join(dir, "secrets.yaml"), []byte("cluster:\n  id: given\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return runOpts{restore: true, root: dir, vault: backupVault("cluster:\n  id: given\n")}
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := mustRun(t, fixture.Cluster(t, "norns"), opts(t.TempDir()))
			item := r.get(t, itemToken, "backup")
			if got, want := item.Req.GetImportId(), "vaults/identity-uuid/items/uuid-talos-norns"; got != want {
				t.Errorf("the backup item is registered with import ID %q, want %q (the item restored from)", got, want)
			}
			ignored := strings.Join(item.Req.GetIgnoreChanges(), ",")
			for _, p := range []string{"sections", "tags", "category"} {
				if !strings.Contains(ignored, p) {
					t.Errorf("the import compares %s (ignoreChanges %q): the restore renewed the talosconfig, so it would never match", p, ignored)
				}
			}
		})
	}
}

func TestRestoreWithoutABackupItemCreatesOne(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secrets.yaml"), []byte("cluster:\n  id: given\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, fixture.Cluster(t, "norns"), runOpts{restore: true, root: dir})
	if id := r.get(t, itemToken, "backup").Req.GetImportId(); id != "" {
		t.Errorf("the backup item is imported from %q though the vault has none", id)
	}
}

func TestNewClusterStopsWhenTheVaultHoldsABackup(t *testing.T) {
	r := runProgram(t, fixture.FreshNorns(t), runOpts{vault: backupVault("cluster:\n  id: another\n")})
	if r.err == nil {
		t.Fatal("a new cluster went on beside an existing backup item of its title")
	}
	for _, want := range []string{`already holds "talos-norns"`, "homelab:cluster.adopt to true", "archive or rename"} {
		if !strings.Contains(r.err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, r.err)
		}
	}
	if len(r.resources) != 0 {
		t.Errorf("registered %s before failing", r.names(""))
	}
}

func TestBackupCategoryNeverReplacesTheItem(t *testing.T) {
	r := mustRun(t, fixture.Cluster(t, "norns"), runOpts{})
	item := r.get(t, itemToken, "backup")
	if id := item.Req.GetImportId(); id != "" {
		t.Errorf("a stack with state imports its backup from %q", id)
	}
	if !strings.Contains(strings.Join(item.Req.GetIgnoreChanges(), ","), "category") {
		t.Error("a category change would replace the backup item, and RetainOnDelete would leave two of one title")
	}
}

// A new cluster's first run that stopped half-way (say, at an install) has written its backup item,
// tagged with the stack, and no deployment record yet: its next run is the same new cluster going
// on, not a second cluster beside a backup.
func TestNewClusterResumesBesideItsOwnBackupItem(t *testing.T) {
	v := backupVault("cluster:\n  id: this-one\n")
	v[identityVault+"/talos-norns"][tagsField] = "talos,pulumi,pulumi-stack/homelab/norns"
	r := mustRun(t, fixture.FreshNorns(t), runOpts{vault: v})
	item := r.get(t, itemToken, "backup")
	if id := item.Req.GetImportId(); id != "" {
		t.Errorf("the run imports its own backup item from %q; the state holds it", id)
	}
	if !strings.Contains(fmt.Sprint(item.Inputs["tags"]), "pulumi-stack/homelab/norns") {
		t.Errorf("the backup item does not carry the stack's tag: %v", item.Inputs["tags"])
	}
	v[identityVault+"/talos-norns"][tagsField] = "talos,pulumi,pulumi-stack/homelab/other"
	if r := runProgram(t, fixture.FreshNorns(t), runOpts{vault: v}); r.err == nil {
		t.Error("a new cluster went on beside another stack's backup item")
	}
}

// A restore that stops (here: a node does not answer) leaves no copy of the cluster identity in the
// project directory.
func TestARestoreThatStopsLeavesNoSecretsFile(t *testing.T) {
	dir := t.TempDir()
	r := runProgram(t, fixture.Cluster(t, "norns"), runOpts{restore: true, root: dir, vault: backupVault("cluster:\n  id: from-the-vault\n"),
		unreachable: []string{"192.168.0.122"}})
	if r.err == nil {
		t.Fatal("the restore went on with a node that does not answer")
	}
	if _, err := os.Stat(filepath.Join(dir, "secrets.yaml")); !os.IsNotExist(err) {
		t.Errorf("the stopped restore left secrets.yaml in the project directory: %v", err)
	}
}
