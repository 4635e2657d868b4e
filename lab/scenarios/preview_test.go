package scenarios

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"homelab/internal/fixture"
	"homelab/internal/prcomment"
	"homelab/internal/stackconfig"
	"homelab/src"
)

// changedResources lists the custom resources a preview plans to change (not same, not read).
func changedResources(s step) []string {
	var out []string
	for name, op := range s.ops {
		if op != "same" && op != "read" && !strings.HasPrefix(name, "homelab-") {
			out = append(out, name+" "+op)
		}
	}
	sort.Strings(out)
	return out
}

// prComment builds the pull-request comment of a preview as the workflow does, writes it to
// $LAB_ARTIFACTS/pr-comment-<scenario>.md when that is set, and checks what every comment must
// hold: its stack's marker, fewer than prcomment.MainLines lines before the collapsed section, and
// no secret value (the vault's, and the cluster identity's).
func (l *lab) prComment(t *testing.T, scenario string, p step, secrets []string) string {
	t.Helper()
	text := prcomment.Build("norns", labStackCluster(t, l.cluster), l.stackRollout(), prcomment.FromEvents(p.engine))
	if dir := os.Getenv("LAB_ARTIFACTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "pr-comment-"+scenario+".md"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.HasPrefix(text, prcomment.Marker("norns")) {
		t.Error("the comment does not start with the stack's marker: the workflow would post a new one each push")
	}
	head, _, _ := strings.Cut(text, "<details>")
	if n := strings.Count(head, "\n"); n >= prcomment.MainLines {
		t.Errorf("%d lines before the collapsed section, want fewer than %d:\n%s", n, prcomment.MainLines, head)
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("the comment holds a secret value (%d characters)", len(s))
		}
	}
	return text
}

// nodeRow returns the comment's table row of a node, its cells trimmed.
func nodeRow(t *testing.T, comment, node string) []string {
	t.Helper()
	for _, line := range strings.Split(comment, "\n") {
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) == 4 && strings.TrimSpace(cells[0]) == node {
			for i := range cells {
				cells[i] = strings.TrimSpace(cells[i])
			}
			return cells
		}
	}
	t.Fatalf("no row for %s in the comment:\n%s", node, comment)
	return nil
}

// TestLabPreviewsAndPullRequestComments previews three changes of a running norns, each the way a
// pull request would: a live setting (maxPods 300 -> 250), from next to the cluster and from a
// machine that cannot reach it; a setting Talos applies only on boot; and a Talos version bump.
// Each preview plans exactly the resources the change touches, and each comment says what every
// node goes through, in roll order, with no secret in it. No node is touched by any preview.
func TestLabPreviewsAndPullRequestComments(t *testing.T) {
	c := fixture.Cluster(t, "norns")
	l, _ := adoptedLab(t, c)
	secrets := bundleSecrets(t, l.w)
	for _, fields := range fixture.Vault() {
		for _, v := range fields {
			secrets = append(secrets, v)
		}
	}
	maxPods := fixture.SrcWith(t, map[string]string{"talos/patches/kubelet.yaml": "machine:\n  kubelet:\n    extraConfig:\n      maxPods: 250\n"})
	liveChange := []string{}
	for _, n := range []string{"urd", "verdandi", "skuld"} {
		liveChange = append(liveChange, "config-apply-"+n+" update", "config-stage-"+n+" update")
	}
	sort.Strings(liveChange)

	checkLive := func(t *testing.T, scenario string, p step) {
		if p.err != nil {
			t.Fatalf("preview failed: %v\n%s", p.err, tail(p.output))
		}
		if got := changedResources(p); strings.Join(got, ", ") != strings.Join(liveChange, ", ") {
			t.Errorf("the preview plans %v; want exactly the staged and live config of each node", got)
		}
		comment := l.prComment(t, scenario, p, secrets)
		for _, n := range []string{"urd", "verdandi", "skuld"} {
			if row := nodeRow(t, comment, n); row[2] != "live" {
				t.Errorf("%s: %v, want a live apply", n, row)
			}
		}
		if !strings.Contains(comment, "-       maxPods: 300") || !strings.Contains(comment, "+       maxPods: 250") {
			t.Errorf("the comment does not show the patch change in clear text:\n%s", comment)
		}
		if strings.Contains(comment, "Other changes") || !strings.Contains(comment, "No node reboots.") {
			t.Errorf("the comment lists more than the change:\n%s", comment)
		}
		if touched := nodeEvents(p.events, "apply-live", "apply-staged", "reboot", "upgrade"); len(touched) != 0 {
			t.Errorf("the preview touched nodes: %v", touched)
		}
	}

	t.Run("maxPods 300 to 250, next to the cluster", func(t *testing.T) {
		l.setData(maxPods)
		checkLive(t, "maxpods", l.preview())
	})

	t.Run("maxPods 300 to 250, from a machine that cannot reach the cluster", func(t *testing.T) {
		for _, n := range l.nodeNames() {
			l.w.post("/nodes/"+labAddr[n]+"/unreachable", nil)
		}
		defer func() {
			for _, n := range l.nodeNames() {
				l.w.post("/nodes/"+labAddr[n]+"/reachable", nil)
			}
		}()
		p := l.preview()
		checkLive(t, "maxpods-offline", p)
	})

	t.Run("a setting Talos applies only on boot", func(t *testing.T) {
		l.setData(fixture.SrcWith(t, map[string]string{"talos/patches/kubelet.yaml": "machine:\n  kubelet:\n    extraConfig:\n      maxPods: 300\n  env:\n    GODEBUG: netdns=go\n"}))
		p := l.preview()
		if p.err != nil {
			t.Fatalf("preview failed: %v\n%s", p.err, tail(p.output))
		}
		comment := l.prComment(t, "reboot", p, secrets)
		for _, n := range []string{"urd", "verdandi", "skuld"} {
			if row := nodeRow(t, comment, n); row[2] != "reboot" || !strings.Contains(row[3], "machine.env") {
				t.Errorf("%s: %v, want a reboot for machine.env", n, row)
			}
		}
		if !strings.Contains(comment, "one at a time: urd → verdandi → skuld.") {
			t.Errorf("the rebooting nodes are not listed in roll order:\n%s", comment)
		}
		for _, r := range changedResources(p) {
			name := strings.Fields(r)[0]
			if !strings.HasPrefix(name, "config-") {
				t.Errorf("the preview plans %s, which the change does not touch", r)
			}
		}
	})

	t.Run("Talos v1.11.5 to v1.11.6", func(t *testing.T) {
		l.setData(src.FS)
		c["talosVersion"] = "v1.11.6"
		l.configure(c)
		defer func() {
			c["talosVersion"] = "v1.11.5"
			l.configure(c)
		}()
		p := l.preview()
		if p.err != nil {
			t.Fatalf("preview failed: %v\n%s", p.err, tail(p.output))
		}
		comment := l.prComment(t, "talos-upgrade", p, secrets)
		for _, n := range []string{"urd", "verdandi", "skuld"} {
			if row := nodeRow(t, comment, n); row[2] != "upgrade" || !strings.Contains(row[3], "Talos v1.11.5 → v1.11.6") {
				t.Errorf("%s: %v, want an upgrade from v1.11.5 to v1.11.6", n, row)
			}
		}
		if !strings.Contains(comment, "one at a time: urd → verdandi → skuld.") {
			t.Errorf("the upgrading nodes are not listed in roll order:\n%s", comment)
		}
		if touched := nodeEvents(p.events, "apply-live", "apply-staged", "reboot", "upgrade"); len(touched) != 0 {
			t.Errorf("the preview touched nodes: %v", touched)
		}
	})

	t.Run("a changed secret previews without its value", func(t *testing.T) {
		// The Connect token is rotated in the vault: the preview plans the Secret it feeds, and the
		// comment names the change without the old value or the new.
		const rotated = "rotated-connect-token-Wq9"
		defer setVaultField(t, l.w.state, "kubernetes", "onepassword-connect", "token", rotated)()
		p := l.preview()
		if p.err != nil {
			t.Fatalf("preview failed: %v\n%s", p.err, tail(p.output))
		}
		comment := l.prComment(t, "secret-change", p, append(slices.Clone(secrets), rotated))
		if !strings.Contains(comment, "onepassword-onepassword-token") {
			t.Errorf("the comment does not name the Secret the token feeds:\n%s", comment)
		}
	})
}

// stackRollout is the stack's homelab:rollout as the program reads it.
func (l *lab) stackRollout() stackconfig.Rollout {
	var r stackconfig.Rollout
	if n, ok := l.rollout["maxUnavailable"].(int); ok {
		r.MaxUnavailable = &n
	}
	return r
}

// setVaultField sets one field of a vault item in the lab's vault, as an operator edits it in
// 1Password (the item keeps its ID); the returned func puts the old value back.
func setVaultField(t *testing.T, state, vault, title, field, value string) func() {
	t.Helper()
	path := filepath.Join(state, "vault.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string][]map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	var old any
	for _, it := range v[vault] {
		if it["title"] == title {
			fields := it["fields"].(map[string]any)
			old, fields[field] = fields[field], value
		}
	}
	if old == nil {
		t.Fatalf("the lab's vault %s has no item %s with field %s", vault, title, field)
	}
	write := func(data map[string][]map[string]any) {
		out, err := json.Marshal(data)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, out, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(v)
	return func() { setVaultField(t, state, vault, title, field, old.(string)) }
}
