package talosplan_test

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"homelab/src"
)

// A script stopped by a signal (a cancelled job, a Ctrl-C, pulumi's cancellation) leaves none of
// the key material its setup wrote: the private directory goes with the signal, as with a normal
// exit, and it lies under $RUNNER_TEMP in a job.
func TestScriptsLeaveNoKeysWhenInterrupted(t *testing.T) {
	pre, err := fs.ReadFile(src.FS, src.Preamble)
	if err != nil {
		t.Fatal(err)
	}
	// A job's step starts with each signal's default action. A test run under nohup, or in the
	// background of a script, would pass HUP or INT on ignored, and a shell cannot trap a signal
	// ignored when it started (POSIX, trap); catching them here gives the shell the default back.
	caught := make(chan os.Signal, 1)
	signal.Notify(caught, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(caught)
	for _, sig := range []syscall.Signal{0, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM} {
		name := "exit"
		if sig != 0 {
			name = sig.String()
		}
		t.Run(name, func(t *testing.T) {
			temp := t.TempDir()
			// The script reports its directory, then waits to be stopped (or exits at once).
			body := "setup\necho \"$work\"\n"
			if sig != 0 {
				body += "kill -" + strings.TrimPrefix(unixName(sig), "SIG") + " $$\nsleep 5\necho survived\n"
			}
			cmd := exec.Command("sh", "-c", string(pre)+"\n"+body)
			cmd.Env = append(os.Environ(), "RUNNER_TEMP="+temp, "TALOSCONFIG_DATA=talosconfig-key-material",
				"KUBECONFIG_DATA=kubeconfig-key-material")
			out, err := cmd.Output()
			work := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
			if !strings.HasPrefix(work, temp+string(filepath.Separator)) {
				t.Fatalf("the private directory %q is not under $RUNNER_TEMP %s", work, temp)
			}
			if strings.Contains(string(out), "survived") {
				t.Errorf("the script ran on after %s", name)
			}
			var exit *exec.ExitError
			if sig != 0 && (!errors.As(err, &exit) || exit.ExitCode() != 128+int(sig)) {
				t.Errorf("the script ended with %v; want status %d", err, 128+int(sig))
			}
			if _, err := os.Stat(work); !os.IsNotExist(err) {
				t.Errorf("%s is still there after %s (%v)", work, name, err)
			}
			left, _ := os.ReadDir(temp)
			if len(left) != 0 {
				t.Errorf("$RUNNER_TEMP holds %d entries after %s", len(left), name)
			}
		})
	}
}

func unixName(s syscall.Signal) string {
	return map[syscall.Signal]string{syscall.SIGHUP: "HUP", syscall.SIGINT: "INT", syscall.SIGTERM: "TERM"}[s]
}

// A script killed outright runs no trap: the next script's setup removes the directory it left,
// and leaves those of scripts still running.
func TestTheNextScriptRemovesWhatAKilledOneLeft(t *testing.T) {
	pre, err := fs.ReadFile(src.FS, src.Preamble)
	if err != nil {
		t.Fatal(err)
	}
	temp := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	killed := filepath.Join(temp, "homelab."+strconv.Itoa(dead.Process.Pid)+".abc123")
	running := filepath.Join(temp, "homelab."+strconv.Itoa(os.Getpid())+".def456")
	for _, d := range []string{killed, running} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "talosconfig"), []byte("key material"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("sh", "-c", string(pre)+"\nsetup\n")
	cmd.Env = append(os.Environ(), "RUNNER_TEMP="+temp)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("setup failed: %v\n%s", err, out)
	}
	if _, err := os.Stat(killed); !os.IsNotExist(err) {
		t.Errorf("the directory of a killed script is still there (%v)", err)
	}
	if _, err := os.Stat(running); err != nil {
		t.Errorf("the directory of a running script was removed: %v", err)
	}
}
