package delivery_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"homelab/internal/fixture"
	_ "homelab/internal/golden" // defines -update, so `go test ./... -update` runs here too
)

// workflow is what the audit reads of a workflow or a composite action.
type workflow struct {
	On          yaml.Node         `yaml:"on"`
	Permissions yaml.Node         `yaml:"permissions"`
	Env         map[string]string `yaml:"env"`
	Jobs        map[string]job    `yaml:"jobs"`
	Runs        struct {
		Steps []step `yaml:"steps"`
	} `yaml:"runs"`
}

type job struct {
	If          string            `yaml:"if"`
	RunsOn      yaml.Node         `yaml:"runs-on"`
	Environment yaml.Node         `yaml:"environment"`
	Env         map[string]string `yaml:"env"`
	Uses        string            `yaml:"uses"`
	Steps       []step            `yaml:"steps"`
}

type step struct {
	Uses string            `yaml:"uses"`
	Run  string            `yaml:"run"`
	With map[string]string `yaml:"with"`
	Env  map[string]string `yaml:"env"`
}

// files are the workflows and composite actions, by path relative to the repository root.
func files(t *testing.T) map[string]workflow {
	t.Helper()
	root := fixture.Root(t)
	paths, _ := filepath.Glob(filepath.Join(root, ".github", "workflows", "*.yml"))
	actions, _ := filepath.Glob(filepath.Join(root, ".github", "actions", "*", "action.yml"))
	out := map[string]workflow{}
	for _, p := range append(paths, actions...) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var w workflow
		if err := yaml.Unmarshal(b, &w); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = w
	}
	if len(paths) == 0 || len(actions) == 0 {
		t.Fatal("no workflows or actions found")
	}
	return out
}

func (w workflow) steps() []step {
	all := append([]step(nil), w.Runs.Steps...)
	for _, j := range w.Jobs {
		all = append(all, j.Steps...)
	}
	return all
}

// triggers are the events a workflow runs on.
func (w workflow) triggers() []string {
	switch w.On.Kind {
	case yaml.ScalarNode:
		return []string{w.On.Value}
	case yaml.SequenceNode:
		var out []string
		for _, n := range w.On.Content {
			out = append(out, n.Value)
		}
		return out
	case yaml.MappingNode:
		var out []string
		for i := 0; i < len(w.On.Content); i += 2 {
			out = append(out, w.On.Content[i].Value)
		}
		return out
	}
	return nil
}

var (
	pinned    = regexp.MustCompile(`^[^@]+@[0-9a-f]{40}$`)
	secretRef = regexp.MustCompile(`\$\{\{[^}]*secrets\.`)
	// Values a pull request's author controls, which must never be expanded inside a shell script.
	attacker = regexp.MustCompile(`\$\{\{[^}]*(github\.event\.|github\.head_ref|inputs\.)`)
)

// The workflows pass the audit docs/security.md describes: actions pinned by commit, checkout
// credentials never persisted, permissions set, self-hosted jobs in environments, no
// pull_request_target, no secret at workflow or job level of a pull-request workflow, pull-request
// jobs that get a secret guarded to this repository's branches and in an environment, and nothing
// an attacker controls expanded in a script.
func TestWorkflowsPassTheSecurityAudit(t *testing.T) {
	for path, w := range files(t) {
		t.Run(path, func(t *testing.T) {
			isWorkflow := strings.Contains(path, "workflows")
			triggers := w.triggers()
			onPR := false
			for _, tr := range triggers {
				if tr == "pull_request_target" {
					t.Error("runs on pull_request_target: a fork's code would run with this repository's secrets")
				}
				if tr == "pull_request" {
					onPR = true
				}
			}
			if isWorkflow && w.Permissions.Kind == 0 {
				t.Error("no top-level permissions: the token would get the repository's defaults")
			}
			for _, s := range w.steps() {
				if s.Uses != "" && !strings.HasPrefix(s.Uses, "./") && !pinned.MatchString(s.Uses) {
					t.Errorf("%s is not pinned to a commit", s.Uses)
				}
				if strings.HasPrefix(s.Uses, "actions/checkout@") && s.With["persist-credentials"] != "false" {
					t.Error("a checkout persists its credentials in .git/config")
				}
				if attacker.MatchString(s.Run) {
					t.Errorf("a script expands a value the pull request's author controls: %q", attacker.FindString(s.Run))
				}
			}
			if onPR {
				for k, v := range w.Env {
					if secretRef.MatchString(v) {
						t.Errorf("workflow-level env %s holds a secret in a pull-request workflow", k)
					}
				}
			}
			for name, j := range w.Jobs {
				selfHosted := strings.Contains(nodeText(j.RunsOn), "self-hosted")
				if selfHosted && j.Environment.Kind == 0 {
					t.Errorf("job %s runs on the self-hosted runner without an environment", name)
				}
				if !onPR {
					continue
				}
				for k, v := range j.Env {
					if secretRef.MatchString(v) {
						t.Errorf("job %s: job-level env %s holds a secret in a pull-request workflow", name, k)
					}
				}
				usesSecret := false
				for _, s := range j.Steps {
					for _, v := range s.Env {
						usesSecret = usesSecret || (secretRef.MatchString(v) && !strings.Contains(v, "secrets.GITHUB_TOKEN"))
					}
					for _, v := range s.With {
						usesSecret = usesSecret || (secretRef.MatchString(v) && !strings.Contains(v, "secrets.GITHUB_TOKEN"))
					}
				}
				if usesSecret && (j.Environment.Kind == 0 || !strings.Contains(j.If, "github.event.pull_request.head.repo.full_name == github.repository")) {
					t.Errorf("job %s gets a repository secret on a pull request without an environment and the guard to this repository's branches", name)
				}
			}
		})
	}
}

func nodeText(n yaml.Node) string {
	b, _ := yaml.Marshal(&n)
	return string(b)
}

// Deploy and drift run only from main, in environments: the audit above checks the environments;
// here each job also refuses any other ref, so a dispatch from a branch runs nothing.
func TestDeployAndDriftRunOnlyFromMain(t *testing.T) {
	w := files(t)
	for _, path := range []string{".github/workflows/deploy.yml", ".github/workflows/drift.yml"} {
		for name, j := range w[path].Jobs {
			if j.Uses != "" {
				continue // the stack list, which holds no secret
			}
			if !strings.Contains(j.If, "github.ref == 'refs/heads/main'") {
				t.Errorf("%s job %s runs from any ref", path, name)
			}
			if j.Environment.Kind == 0 {
				t.Errorf("%s job %s has no environment", path, name)
			}
		}
	}
}

// Files holding credentials are ignored by git wherever an operator writes them in the clone.
func TestCredentialFilesAreIgnored(t *testing.T) {
	root := fixture.Root(t)
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not on PATH")
	}
	if _, err := os.Stat(filepath.Join(root, ".git")); err != nil {
		t.Skip("not a git clone")
	}
	for _, f := range []string{"secrets.yaml", "talosconfig", "talosconfig.yaml", "kubeconfig", "kubeconfig.yaml",
		"controlplane.yaml", "worker.yaml", "norns.state.json", ".env", "1password-credentials.json", "out/norns/urd.yaml"} {
		if err := exec.Command("git", "-C", root, "check-ignore", "-q", f).Run(); err != nil {
			t.Errorf("%s is not ignored by git", f)
		}
	}
}
