// Package stackfile reads Pulumi.yaml and Pulumi.<stack>.yaml from a project directory the way the
// Pulumi CLI does, for the tools that run without the CLI: cmd/render and the tests. It also checks
// what the CLI checks only in its heavy engine package: every stack value against the type Pulumi.yaml
// declares, no undeclared homelab:* key, and no missing key that has no default.
package stackfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/config"
	"github.com/pulumi/pulumi/sdk/v3/go/common/workspace"
	"gopkg.in/yaml.v3"

	"homelab/internal/stackconfig"
)

// Stack is a loaded stack file.
type Stack struct {
	Name    string
	Project *workspace.Project
	// values holds the project's keys (without namespace) as raw text; objects as JSON.
	values map[string]string
}

// Load reads dir/Pulumi.yaml and dir/Pulumi.<stack>.yaml and checks the stack's homelab:* values
// against the declarations in Pulumi.yaml. Every problem is reported at once.
func Load(dir, stack string) (*Stack, error) {
	if err := checkYAML(filepath.Join(dir, "Pulumi.yaml")); err != nil {
		return nil, err
	}
	proj, err := workspace.LoadProject(filepath.Join(dir, "Pulumi.yaml"))
	if err != nil {
		return nil, fmt.Errorf("Pulumi.yaml: %w", err)
	}
	if proj.Name.String() != stackconfig.Namespace {
		return nil, fmt.Errorf("Pulumi.yaml: project name is %q; the program reads config in the %q namespace", proj.Name, stackconfig.Namespace)
	}
	file := filepath.Join(dir, "Pulumi."+stack+".yaml")
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		existing, _ := filepath.Glob(filepath.Join(dir, "Pulumi.*.yaml"))
		var names []string
		for _, f := range existing {
			names = append(names, strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "Pulumi."), ".yaml"))
		}
		known := "there is no stack file yet"
		if len(names) > 0 {
			known = "the stacks here are " + strings.Join(names, ", ")
		}
		return nil, fmt.Errorf("%s does not exist (%s): check the stack name, or create the stack with "+
			"`pulumi stack select --create %s` and set its homelab:cluster (docs/configuration.md)", filepath.Base(file), known, stack)
	}
	if err := checkYAML(file); err != nil {
		return nil, err
	}
	ps, err := workspace.LoadProjectStack(nil, proj, file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Base(file), err)
	}
	s := &Stack{Name: stack, Project: proj, values: map[string]string{}}
	var problems []string
	for key, v := range ps.Config {
		if key.Namespace() != stackconfig.Namespace {
			continue
		}
		name := key.Name()
		decl, declared := proj.Config[name]
		if !declared {
			declaredKeys := make([]string, 0, len(proj.Config))
			for k := range proj.Config {
				declaredKeys = append(declaredKeys, k)
			}
			problems = append(problems, fmt.Sprintf("%s: %s is not declared in Pulumi.yaml's config block%s; remove it or declare it",
				filepath.Base(file), key, stackconfig.Suggest(name, declaredKeys)))
			continue
		}
		if v.Secure() {
			continue // only the program, with the stack's secrets provider, can read it
		}
		text, err := v.Value(config.NopDecrypter)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %s: %v", filepath.Base(file), key, err))
			continue
		}
		s.values[name] = text
		if decl.Type != nil && !workspace.ValidateConfigValue(*decl.Type, decl.Items, typed(v, text)) {
			problems = append(problems, fmt.Sprintf("%s: %s must be of type %s, as Pulumi.yaml declares",
				filepath.Base(file), key, workspace.InferFullTypeName(*decl.Type, decl.Items)))
		}
	}
	for name, decl := range proj.Config {
		key := stackconfig.Namespace + ":" + name
		if _, set := ps.Config[config.MustMakeKey(stackconfig.Namespace, name)]; !set && decl.Default == nil && decl.Value == nil {
			problems = append(problems, fmt.Sprintf("%s: %s is required (Pulumi.yaml gives it no default); set it", filepath.Base(file), key))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("invalid stack files:\n  - %s", strings.Join(problems, "\n  - "))
	}
	return s, nil
}

// checkYAML reports a YAML syntax error with the line it is on. The parser often names another
// line (the start of the enclosing block, or one off), as does the CLI's loader; the line here is
// the first one after the longest valid beginning of the file.
func checkYAML(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc yaml.Node
	perr := yaml.Unmarshal(data, &doc)
	if perr == nil {
		return nil
	}
	lines := strings.Split(string(data), "\n")
	at := 1
	for k := len(lines) - 1; k >= 1; k-- {
		var prefix yaml.Node
		if yaml.Unmarshal([]byte(strings.Join(lines[:k], "\n")), &prefix) == nil {
			at = k + 1
			break
		}
	}
	msg := lineMention.ReplaceAllString(perr.Error(), "")
	return fmt.Errorf("%s: not valid YAML at line %d (%q): %s", filepath.Base(path), at, strings.TrimSpace(lines[at-1]), msg)
}

var lineMention = regexp.MustCompile(`^yaml: line \d+: `)

// typed returns the value in the shape ValidateConfigValue expects: objects and lists decoded.
func typed(v config.Value, text string) any {
	if !v.Object() {
		return text
	}
	var out any
	if err := json.Unmarshal([]byte(text), &out); err != nil {
		return text
	}
	return out
}

// Get returns the raw text of a homelab key (objects as JSON) and whether the stack sets it. It has
// the shape of stackconfig.Source.
func (s *Stack) Get(key string) (string, bool) {
	v, ok := s.values[key]
	return v, ok
}

// LoadConfig loads a stack file and validates its homelab keys with stackconfig.Load, as the
// program does: what cmd/render and the tests start from.
func LoadConfig(dir, stack string) (*stackconfig.Config, []string, error) {
	sf, err := Load(dir, stack)
	if err != nil {
		return nil, nil, err
	}
	return stackconfig.Load(sf.Get)
}
