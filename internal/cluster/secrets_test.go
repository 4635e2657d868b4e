package cluster

import (
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"homelab/internal/fixture"
	"homelab/internal/manifests"
	"homelab/src"
)

const (
	argoAppToken = "kubernetes:argoproj.io/v1alpha1:Application"
	opItemToken  = "kubernetes:onepassword.com/v1:OnePasswordItem"
	nsToken      = "kubernetes:v1:Namespace"
	secretToken  = "kubernetes:v1:Secret"
)

func TestSecretsReachTheClusterOnlyAsSecrets(t *testing.T) {
	r := mustRun(t, fixture.Cluster(t, "norns"), runOpts{})
	credentials := r.get(t, secretToken, "onepassword-op-credentials").Inputs["stringData"]
	token := r.get(t, secretToken, "onepassword-onepassword-token").Inputs["stringData"]
	if !credentials.IsSecret() || !token.IsSecret() {
		t.Fatalf("connect credentials secret %v, operator token secret %v: both must be secrets", credentials.IsSecret(), token.IsSecret())
	}
	file := str(credentials.SecretValue().Element.ObjectValue()["1password-credentials.json"])
	if got, _ := base64.StdEncoding.DecodeString(file); string(got) != fixture.ConnectCredentials {
		t.Errorf("the credentials file decodes to %q, want the vault's credentials file", got)
	}
	if got := str(token.SecretValue().Element.ObjectValue()["token"]); got != fixture.ConnectToken {
		t.Errorf("operator token %q, want the vault's", got)
	}
	// The chart reads both by name and never sees them.
	values := r.templates["connect"]["values"].(map[string]any)
	connect, operator := values["connect"].(map[string]any), values["operator"].(map[string]any)
	if connect["credentialsName"] != "op-credentials" || operator["token"].(map[string]any)["name"] != "onepassword-token" {
		t.Errorf("the chart reads credentials from %v and the token from %v, not the program's Secrets", connect["credentialsName"], operator["token"])
	}
	if _, ok := connect["credentials_base64"]; ok {
		t.Error("the credentials pass through the chart")
	}
	// What a chart itself generates into a Secret is secret too.
	if !r.get(t, secretToken, "onepassword:Secret:onepassword/connect-generated").Inputs["data"].IsSecret() {
		t.Error("a Secret the chart renders is registered with clear data")
	}
}

// No key material (the vault's values, the mocked providers' keys and kubeconfig and talosconfig,
// in clear or base64) reaches any resource's inputs outside a secret: the state would keep it in
// clear. Checked for a new cluster, an adopted one and a restore.
func TestSecretValuesNeverLeaveInClear(t *testing.T) {
	adopted := fixture.Cluster(t, "norns")
	for name, run := range map[string]func() *result{
		"new cluster": func() *result { return mustRun(t, fixture.FreshNorns(t), runOpts{}) },
		"adopted":     func() *result { return mustRun(t, adopted, runOpts{}) },
		"restore": func() *result {
			return mustRun(t, adopted, runOpts{restore: true, root: t.TempDir(), vault: backupVault("cluster:\n  secret: " + mockSecrets.clusterSecret + "\n")})
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := run()
			if len(r.resources) == 0 {
				t.Fatal("nothing registered")
			}
			for _, res := range r.resources {
				checkNoClearSecret(t, res.Type+" "+res.Name, resource.NewObjectProperty(res.Inputs))
			}
		})
	}
}

// checkNoClearSecret fails when a fixture secret appears in a value outside a secret.
func checkNoClearSecret(t *testing.T, where string, v resource.PropertyValue) {
	t.Helper()
	switch {
	case v.IsSecret():
		return
	case v.IsObject():
		for k, e := range v.ObjectValue() {
			checkNoClearSecret(t, where+"."+string(k), e)
		}
	case v.IsArray():
		for _, e := range v.ArrayValue() {
			checkNoClearSecret(t, where, e)
		}
	case v.IsString():
		for _, secret := range secretForms() {
			if strings.Contains(v.StringValue(), secret) {
				t.Errorf("%s holds a secret in clear text (%.10s...)", where, secret)
			}
		}
	}
}

func TestBackupItemHoldsTheClusterIdentity(t *testing.T) {
	r := mustRun(t, fixture.Cluster(t, "norns"), runOpts{})
	item := r.get(t, itemToken, "backup")
	if !item.deps()["cluster-secrets"] {
		t.Errorf("the backup item does not depend on the cluster secrets; deps %v", item.deps())
	}
	if str(item.Inputs["vault"]) != "identity-uuid" || str(item.Inputs["title"]) != "talos-norns" {
		t.Errorf("backup goes to vault %v, item %v; want the kubernetes-identity vault's UUID and talos-norns", item.Inputs["vault"], item.Inputs["title"])
	}
	labels := map[string]bool{}
	for _, f := range item.Inputs["sections"].ArrayValue()[0].ObjectValue()["fields"].ArrayValue() {
		labels[str(f.ObjectValue()["label"])] = true
		if !f.ObjectValue()["value"].IsSecret() {
			t.Errorf("field %s of the backup item is not secret", str(f.ObjectValue()["label"]))
		}
	}
	if !labels["secrets.yaml"] || !labels["talosconfig"] {
		t.Errorf("backup fields %v, want secrets.yaml and talosconfig", labels)
	}
	if !item.Req.GetRetainOnDelete() {
		t.Error("destroy would delete the backup")
	}
	if item.Req.GetVersion() != "1.1.4" || item.Req.GetPluginDownloadURL() != "github://api.github.com/1Password/pulumi-onepassword" {
		t.Errorf("item registered for plugin %q from %q; want the real onepassword 1.1.4", item.Req.GetVersion(), item.Req.GetPluginDownloadURL())
	}
}

func TestConnectWaitsForCiliumAndArgoCDForConnect(t *testing.T) {
	r := mustRun(t, fixture.FreshNorns(t), runOpts{})
	for _, obj := range r.chartObjects("onepassword") {
		if !r.waitsForChart(t, obj, "cilium") {
			t.Errorf("%s of 1Password Connect does not wait for Cilium", obj.Name)
		}
	}
	admin := r.get(t, opItemToken, "argocd-admin-secret")
	if !r.waitsForChart(t, admin, "onepassword") || str(admin.Inputs["spec"].ObjectValue()["itemPath"]) != "vaults/kubernetes/items/argocd" {
		t.Errorf("admin secret: deps %v, spec %v", admin.deps(), admin.Inputs["spec"])
	}
	for _, obj := range r.chartObjects("argocd") {
		if !r.waitsForChart(t, obj, "cilium") || !r.dependsOn(obj, "argocd-admin-secret") {
			t.Errorf("%s of Argo CD does not wait for Cilium and its admin secret", obj.Name)
		}
	}
	root := r.get(t, argoAppToken, "argocd-root-app")
	if !r.waitsForChart(t, root, "argocd") {
		t.Error("the root application does not wait for the Argo CD chart (its CRDs)")
	}
}

func TestRootAppSyncsTheStackRepository(t *testing.T) {
	r := mustRun(t, fixture.Cluster(t, "norns"), runOpts{config: map[string]string{
		"homelab:argocd": `{"repoURL": "https://git.example.org/lab.git", "revision": "v2", "path": "deploy/apps"}`,
	}})
	spec := r.get(t, argoAppToken, "argocd-root-app").Inputs["spec"].ObjectValue()
	src := spec["source"].ObjectValue()
	if str(src["repoURL"]) != "https://git.example.org/lab.git" || str(src["targetRevision"]) != "v2" || str(src["path"]) != "deploy/apps" {
		t.Errorf("root source %v", src)
	}
	auto := spec["syncPolicy"].ObjectValue()["automated"].ObjectValue()
	if !auto["prune"].BoolValue() || !auto["selfHeal"].BoolValue() {
		t.Errorf("root sync policy %v, want automated prune and self-heal", auto)
	}
}

func TestArgoCDOffRegistersNoneOfIt(t *testing.T) {
	vault := fixture.Vault()
	delete(vault, "argocd") // not needed without Argo CD
	r := mustRun(t, fixture.Cluster(t, "norns"), runOpts{vault: vault, config: map[string]string{"homelab:argocd": `{"enabled": false}`}})
	for _, res := range r.resources {
		if strings.Contains(res.Type, "argoproj") || strings.HasPrefix(res.Name, "argocd") || res.Type == "homelab:gitops:ArgoCD" {
			t.Errorf("Argo CD is off, but %s %s is registered", res.Type, res.Name)
		}
	}
	if len(r.ofType(chartToken)) != 2 {
		t.Errorf("charts %s; want cilium and onepassword only", r.names(chartToken))
	}
}

func TestMissingVaultItemStopsTheRunAndRegistersNothing(t *testing.T) {
	cases := map[string]struct {
		mutate func(map[string]map[string]string)
		want   []string
	}{
		"missing item": {func(v map[string]map[string]string) { delete(v, "onepassword-connect") }, []string{
			`vault "kubernetes" has no item "onepassword-connect"`, `field "credentials" (the content of 1password-credentials.json`, `field "token" (a Connect token`}},
		"missing field": {func(v map[string]map[string]string) { delete(v["argocd"], "server.secretkey") }, []string{
			`item "argocd" in vault "kubernetes" lacks field "server.secretkey": add field "server.secretkey" (a random string`}},
		"empty field": {func(v map[string]map[string]string) { v["onepassword-connect"]["token"] = "" }, []string{
			`item "onepassword-connect" in vault "kubernetes" lacks field "token"`}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			vault := fixture.Vault()
			tc.mutate(vault)
			r := runProgram(t, fixture.FreshNorns(t), runOpts{vault: vault})
			if r.err == nil {
				t.Fatal("the run went on without the vault item")
			}
			for _, want := range tc.want {
				if !strings.Contains(r.err.Error(), want) {
					t.Errorf("error does not contain %q:\n%v", want, r.err)
				}
			}
			if len(r.resources) != 0 {
				t.Errorf("registered %s before failing", r.names(""))
			}
		})
	}
}

func TestProviderCredentialsMustBeSecretStackSettings(t *testing.T) {
	r := runProgramPlain(t, fixture.Cluster(t, "norns"), map[string]string{"onepassword:url": "http://connect:8080", "onepassword:token": "plain-token"})
	if r.err == nil || !strings.Contains(r.err.Error(), "onepassword:token is stored in plain text; store it encrypted: pulumi config set --secret onepassword:token <token>") {
		t.Errorf("a plain-text token gave %v", r.err)
	}
	r = runProgramPlain(t, fixture.Cluster(t, "norns"), map[string]string{})
	if r.err == nil || !strings.Contains(r.err.Error(), "the 1Password provider has no credentials; set either onepassword:serviceAccountToken") {
		t.Errorf("no credentials gave %v", r.err)
	}
	if len(r.resources) != 0 {
		t.Errorf("registered %s before failing", r.names(""))
	}
}

func TestChildApplicationsFollowTheStackRepository(t *testing.T) {
	argo := fixture.StackKey(t, "norns", "argocd")
	apps, err := fs.Glob(src.FS, "apps/*/*.app.yaml")
	if err != nil || len(apps) == 0 {
		t.Fatalf("no child application under src/apps (%v)", err)
	}
	var infrastructure bool
	for _, name := range apps {
		data, err := fs.ReadFile(src.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := manifests.Decode(name, data)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if o.Kind != "Application" || o.Namespace != "argocd" {
				t.Errorf("src/%s: %s %s/%s; child applications are Applications in argocd", name, o.Kind, o.Namespace, o.Name)
				continue
			}
			source := o.Fields["spec"].(map[string]any)["source"].(map[string]any)
			if source["repoURL"] != argo["repoURL"] {
				t.Errorf("src/%s syncs %v, the norns stack's repository is %v", name, source["repoURL"], argo["repoURL"])
			}
			if p, _ := source["path"].(string); !strings.HasPrefix(p, "src/apps/") {
				t.Errorf("src/%s: source path %q is outside src/apps", name, p)
			} else if _, err := fs.Stat(src.FS, strings.TrimPrefix(p, "src/")); err != nil {
				t.Errorf("src/%s: source path %q does not exist", name, p)
			}
			infrastructure = infrastructure || strings.HasPrefix(name, "apps/infrastructure/")
		}
	}
	if !infrastructure {
		t.Error("no infrastructure application ships under src/apps/infrastructure/")
	}
}

// exported is the deployment record a run exported, as the next run reads it.
func exported(t *testing.T, r *result) map[string]any {
	t.Helper()
	b, err := json.Marshal(r.outputs[deployedOutput])
	if err != nil {
		t.Fatal(err)
	}
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// A stack whose backup sits in the main vault (records of older runs) moves it to the identity
// vault in two runs, never leaving two copies: the first keeps it and makes it deletable (the
// engine deletes by the options of the last registration); the second replaces it, deleting the
// old item before it creates the new one; the third finds it in place and keeps it on delete again.
func TestTheBackupMovesToItsVaultWithoutASecondCopy(t *testing.T) {
	c := fixture.Cluster(t, "norns")
	older := deployedRecord(c)
	delete(older, "backupVault")
	item := func(r *result) registration {
		t.Helper()
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.get(t, itemToken, "backup")
	}
	arm := runProgram(t, c, runOpts{previous: older})
	if it := item(arm); str(it.Inputs["vault"]) != "vault-uuid" || it.Req.GetRetainOnDelete() {
		t.Errorf("first run: the backup is in %v, kept on delete %t; want it left in the main vault, deletable",
			it.Inputs["vault"], it.Req.GetRetainOnDelete())
	}
	armed := exported(t, arm)
	if armed["backupVault"] != "kubernetes" || armed["backupDeletable"] != true {
		t.Fatalf("first run exported %v; want the item recorded in kubernetes, deletable", armed)
	}
	move := runProgram(t, c, runOpts{previous: armed})
	if it := item(move); str(it.Inputs["vault"]) != "identity-uuid" || !it.Req.GetDeleteBeforeReplace() {
		t.Errorf("second run: the backup goes to %v, delete before replace %t; want the identity vault, the old item deleted first",
			it.Inputs["vault"], it.Req.GetDeleteBeforeReplace())
	}
	moved := exported(t, move)
	if moved["backupVault"] != identityVault || moved["backupDeletable"] == true {
		t.Fatalf("second run exported %v; want the item recorded in %s", moved, identityVault)
	}
	stay := runProgram(t, c, runOpts{previous: moved})
	if it := item(stay); str(it.Inputs["vault"]) != "identity-uuid" || !it.Req.GetRetainOnDelete() {
		t.Errorf("third run: the backup is in %v, kept on delete %t; want it in place and kept", it.Inputs["vault"], it.Req.GetRetainOnDelete())
	}
}

// The operator syncs OnePasswordItems only in the namespaces the stack lists and Argo CD's.
func TestTheOperatorWatchesOnlyTheListedNamespaces(t *testing.T) {
	r := mustRun(t, fixture.Cluster(t, "norns"), runOpts{config: map[string]string{
		"homelab:onepassword": `{"watchNamespaces": ["media"]}`}})
	values, _ := json.Marshal(r.templates["connect"]["values"])
	if !strings.Contains(string(values), `"watchNamespace":["argocd","media"]`) {
		t.Errorf("the connect chart's values %s; want operator.watchNamespace [argocd media]", values)
	}
}

// A preview of a deployed stack never opens the identity vault (the preview's 1Password account
// cannot): it takes the vault's UUID from the last run's record.
func TestAPreviewNeedsNoAccessToTheIdentityVault(t *testing.T) {
	c := fixture.Cluster(t, "norns")
	first := mustRun(t, c, runOpts{})
	rec := exported(t, first)
	if rec["backupVaultUUID"] != "identity-uuid" {
		t.Fatalf("the record %v does not keep the identity vault's UUID", rec)
	}
	p := runProgram(t, c, runOpts{preview: true, previous: rec})
	if p.err != nil {
		t.Fatalf("preview: %v", p.err)
	}
	for _, key := range p.items {
		if strings.HasPrefix(key, identityVault+"/") {
			t.Errorf("the preview read %s", key)
		}
	}
	if got := str(p.get(t, itemToken, "backup").Inputs["vault"]); got != "identity-uuid" {
		t.Errorf("the preview registers the backup in vault %q", got)
	}
	if n := strings.Count(strings.Join(p.invokes, ","), vaultInvoke); n != 1 {
		t.Errorf("the preview looked up %d vaults, want only the main one", n)
	}
}
