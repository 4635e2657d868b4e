package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"homelab/internal/fixture"
	_ "homelab/internal/golden" // defines -update, so `go test ./... -update` runs here too
)

// TestMain runs the command itself when a test starts this binary as drift.
func TestMain(m *testing.M) {
	if args, ok := os.LookupEnv("DRIFT_TEST_ARGS"); ok {
		os.Args = append([]string{"drift"}, strings.Fields(args)...)
		os.Exit(guard(os.Stderr, cli))
	}
	os.Exit(m.Run())
}

// A talosconfig that passes the checks; its keys are not real.
const talosconfigText = "context: norns\ncontexts:\n  norns:\n    endpoints: [192.168.0.120]\n    ca: Zm9v\n    crt: Zm9v\n    key: Zm9v\n"

// Stopped by a signal while it reads the nodes (a cancelled job, Ctrl-C), drift leaves none of the
// key material it wrote: the talosconfig and the secrets bundle lie under $RUNNER_TEMP only while
// it runs and go with the signal, and the exit is 130, never 2 ("drifted").
func TestAStoppedDriftLeavesNoKeys(t *testing.T) {
	root := fixture.Root(t)
	project := fixture.Project(t, filepath.Join(root, "Pulumi.norns.yaml"), "norns")
	bin, temp, work := t.TempDir(), t.TempDir(), t.TempDir()
	secrets, err := os.ReadFile(filepath.Join(root, "internal", "render", "testdata", "secrets.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	outputs, err := json.Marshal(map[string]string{"talosconfig": talosconfigText, "talosSecrets": string(secrets)})
	if err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(work, "talosctl.pid")
	for name, text := range map[string]string{
		"outputs.json": string(outputs),
		// pulumi stack output prints the stack's outputs; talosctl hangs as an unreachable node does.
		"bin/pulumi":   "#!/bin/sh\ncat '" + filepath.Join(work, "outputs.json") + "'\n",
		"bin/talosctl": "#!/bin/sh\necho $$ > '" + pidFile + ".new' && mv '" + pidFile + ".new' '" + pidFile + "'\nexec sleep 60\n",
	} {
		path := filepath.Join(work, name)
		if strings.HasPrefix(name, "bin/") {
			path = filepath.Join(bin, strings.TrimPrefix(name, "bin/"))
		}
		if err := os.WriteFile(path, []byte(text), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			stderr, err := os.Create(filepath.Join(work, "stderr"))
			if err != nil {
				t.Fatal(err)
			}
			defer stderr.Close()
			cmd := exec.Command(os.Args[0])
			cmd.Dir, cmd.Stdout, cmd.Stderr = project, stderr, stderr
			cmd.Env = append(os.Environ(), "DRIFT_TEST_ARGS=--stack norns", "RUNNER_TEMP="+temp,
				"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pid := waitForPID(t, pidFile, cmd)
			defer syscall.Kill(pid, syscall.SIGKILL)
			defer os.Remove(pidFile)
			written, _ := filepath.Glob(filepath.Join(temp, "homelab-drift.*", "*"))
			if len(written) != 2 {
				t.Fatalf("while the nodes are read $RUNNER_TEMP holds %v; want the talosconfig and the secrets bundle", written)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			var exit *exec.ExitError
			if err := cmd.Wait(); !errors.As(err, &exit) || exit.ExitCode() != 130 {
				t.Errorf("drift stopped by %s: %v; want exit 130", sig, err)
			}
			if left, _ := os.ReadDir(temp); len(left) != 0 {
				t.Errorf("$RUNNER_TEMP holds %d entries after %s", len(left), sig)
			}
		})
	}
}

// waitForPID waits until the fake talosctl has written its process ID, or drift has ended.
func waitForPID(t *testing.T, path string, drift *exec.Cmd) int {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if text, err := os.ReadFile(path); err == nil {
			pid, err := strconv.Atoi(strings.TrimSpace(string(text)))
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
	}
	drift.Process.Kill()
	drift.Wait()
	t.Fatalf("drift never ran talosctl; its output: %s", readFile(t, filepath.Join(filepath.Dir(path), "stderr")))
	return 0
}

func readFile(t *testing.T, path string) string {
	text, _ := os.ReadFile(path)
	return string(text)
}

// A panic is status 1, never 2: 2 means "drifted" to the scheduled check.
func TestAPanicIsStatusOneNeverDrifted(t *testing.T) {
	var stderr bytes.Buffer
	if code := guard(&stderr, func() int { panic("boom") }); code != 1 || !strings.Contains(stderr.String(), "internal error: boom") {
		t.Errorf("exit %d, stderr %q; want 1 and the message", code, stderr.String())
	}
}

// A talosconfig given as --secrets, or a secrets.yaml given as --talosconfig, is a message and
// status 1, before any node is read.
func TestWrongFilesAreAMessageAndStatusOne(t *testing.T) {
	root := fixture.Root(t)
	t.Chdir(fixture.Project(t, filepath.Join(root, "Pulumi.norns.yaml"), "norns"))
	dir := t.TempDir()
	talosconfig := filepath.Join(dir, "talosconfig")
	if err := os.WriteFile(talosconfig, []byte(talosconfigText), 0o600); err != nil {
		t.Fatal(err)
	}
	secretsFile := filepath.Join(root, "internal", "render", "testdata", "secrets.yaml")
	for name, args := range map[string][2]string{
		"talosconfig as --secrets":      {talosconfig, talosconfig},
		"secrets.yaml as --talosconfig": {secretsFile, secretsFile},
	} {
		t.Run(name, func(t *testing.T) {
			code, err := run("norns", args[0], args[1], false, false)
			if code != 1 || err == nil || !strings.Contains(err.Error(), "is not a") {
				t.Errorf("exit %d, %v; want 1 and a message saying what the file is not", code, err)
			}
		})
	}
}
