// Package stackout reads a stack's outputs for the commands that work beside the program
// (cmd/drift, cmd/etcd): `pulumi stack output --show-secrets`, written to private files that the
// caller removes.
package stackout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Read reads the stack's outputs, secrets shown. without names the flags that work without the
// Pulumi CLI, for the message when it is missing.
func Read(stack, without string) (map[string]any, error) {
	if _, err := exec.LookPath("pulumi"); err != nil {
		return nil, fmt.Errorf("pulumi is not on PATH, and the stack's outputs are read with it: install the Pulumi CLI, or pass %s", without)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("pulumi", "stack", "output", "--stack", stack, "--show-secrets", "--json")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("pulumi stack output: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	out := map[string]any{}
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("pulumi stack output: %w", err)
	}
	return out, nil
}

// File writes output key of outputs to dir/key (mode 0600) and returns its path.
func File(outputs map[string]any, stack, key, dir string) (string, error) {
	text, ok := outputs[key].(string)
	if !ok || text == "" {
		return "", fmt.Errorf("the stack %s has no output %s: run pulumi up once with this version of the program", stack, key)
	}
	path := filepath.Join(dir, key)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		return "", err
	}
	return path, nil
}

// PrivateDir makes the directory for the files File writes: under $RUNNER_TEMP in a job (the
// runner empties it after the job), else under the system's temporary directory. The caller
// removes it, on a signal too.
func PrivateDir(prefix string) (string, error) {
	root := os.Getenv("RUNNER_TEMP")
	if root == "" {
		root = os.TempDir()
	}
	return os.MkdirTemp(root, prefix)
}

// ErrNoProject is the error of a command run outside the repository.
var ErrNoProject = errors.New("there is no Pulumi.yaml here: run it from the repository root (the directory with Pulumi.yaml and src/)")
