package cluster

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"homelab/internal/fixture"
	"homelab/internal/stackfile"
)

// Every stack under internal/validate/testdata/refused is refused by the program before it
// registers anything, naming the key at fault; cmd/render refuses each with the same key
// (cmd/render's TestRenderRefusesWhatTheProgramRefuses).
func TestRefusedStacksAreRefusedByTheProgram(t *testing.T) {
	for _, r := range fixture.RefusedStacks(t) {
		t.Run(filepath.Base(r.Path), func(t *testing.T) {
			res := runStackFile(t, fixture.Project(t, r.Path, "refused"), "refused", runOpts{})
			if res.err == nil || !strings.Contains(res.err.Error(), r.Key) {
				t.Errorf("the program gave %v; want a refusal naming %s", res.err, r.Key)
			}
			if len(res.resources) != 0 {
				t.Errorf("%d resources registered before the refusal", len(res.resources))
			}
		})
	}
}

// runStackFile runs the program on the stack file Pulumi.<stack>.yaml of project dir, with its
// settings as they stand (plus the provider's credentials, which the stack holds as secrets).
func runStackFile(t *testing.T, dir, stack string, opts runOpts) *result {
	t.Helper()
	sf, err := stackfile.Load(dir, stack)
	if err != nil {
		t.Fatal(err)
	}
	decode := func(key string) map[string]any {
		out := map[string]any{}
		if text, ok := sf.Get(key); ok {
			if err := json.Unmarshal([]byte(text), &out); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	config := map[string]string{}
	for _, key := range []string{"rollout", "onepassword", "argocd"} {
		if v, ok := sf.Get(key); ok {
			config["homelab:"+key] = v
		}
	}
	for k, v := range opts.config {
		config[k] = v
	}
	opts.config = config
	return runProgramWith(t, decode("cluster"), decode("networking"), opts)
}

// The example stack is a new user's first run: with an empty vault it stops before it registers
// anything, naming the item and fields to create; once they exist it brings the cluster up
// reading no other item than the backup it is about to write (to be sure it writes no second one).
func TestTheExampleStackAsksOnlyForWhatTheUserCreates(t *testing.T) {
	root := fixture.Root(t)
	empty := runStackFile(t, root, "example", runOpts{vault: map[string]map[string]string{}})
	for _, want := range []string{`vault "kubernetes"`, `"onepassword-connect"`, "credentials", "token"} {
		if empty.err == nil || !strings.Contains(empty.err.Error(), want) {
			t.Errorf("with an empty vault the run gave %v; want it to name %s", empty.err, want)
		}
	}
	if len(empty.resources) != 0 {
		t.Errorf("%d resources registered before the vault was complete", len(empty.resources))
	}
	connect := map[string]map[string]string{"onepassword-connect": fixture.Vault()["onepassword-connect"]}
	res := runStackFile(t, root, "example", runOpts{vault: connect})
	if res.err != nil {
		t.Fatalf("with the connect item in the vault the first run failed: %v", res.err)
	}
	for _, title := range res.items {
		if !slices.Contains([]string{"onepassword-connect", identityVault + "/talos-example"}, title) {
			t.Errorf("the first run read vault item %q, which the example does not ask the user to create", title)
		}
	}
	if !slices.Contains(res.items, identityVault+"/talos-example") || len(res.ofType(bootstrapToken)) != 1 {
		t.Errorf("the first run did not bring a new cluster up (items read %v, %d bootstraps)", res.items, len(res.ofType(bootstrapToken)))
	}
}
