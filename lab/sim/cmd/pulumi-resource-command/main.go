// Command pulumi-resource-command simulates the command provider plugin (pulumi-command 1.2.1)
// for the lab: local.Command as provider/pkg/provider/local/{commandController,commandOutputs}.go
// of v1.2.1 runs it (cited as CMD:<file>:<line>). Only a change of triggers replaces; any other
// change runs update (or create when update is unset); a preview runs nothing; the script runs
// with /bin/sh -c, the provider's environment plus the resource's, and on update and delete
// PULUMI_COMMAND_STDOUT/STDERR of the previous run when they are not empty; stdout and stderr are
// kept with one trailing newline trimmed; a non-zero exit fails the step and keeps the old state;
// each line the script prints on stdout or stderr is logged as it comes, as an ephemeral status
// line of the resource; the script is killed when the engine cancels the operation.
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"homelab/lab/simkit/labevent"
	"homelab/lab/simkit/simprov"
)

func main() {
	simprov.Main(simprov.Provider{
		Name: "command", Version: "1.2.1",
		Resources: map[string]simprov.Resource{
			"command:local:Command": {
				Replaces: []string{"triggers"}, // CMD:common/inputs.go:10,20-24
				Create: func(r simprov.Request) (string, resource.PropertyMap, error) {
					out, err := run(r, simprov.Str(r.News, "create"), "create", nil) // commandController.go:34-57
					return fmt.Sprintf("%s%08x", r.Name, time.Now().UnixNano()&0xffffffff), out, err
				},
				Update: func(r simprov.Request) (resource.PropertyMap, error) {
					script, which := simprov.Str(r.News, "update"), "update" // commandController.go:67-90
					if script == "" {
						script, which = simprov.Str(r.News, "create"), "create"
					}
					return run(r, script, which, r.Olds)
				},
				Delete: func(r simprov.Request) error {
					script := simprov.Str(r.Olds, "delete") // commandController.go:93-99: the state's inputs
					if script == "" {
						return nil
					}
					_, err := run(simprov.Request{Name: r.Name, News: r.Olds, Ctx: r.Ctx, Status: r.Status}, script, "delete", r.Olds)
					return err
				},
			},
		},
	})
}

// run follows CMD:local/commandOutputs.go:39-146.
func run(r simprov.Request, script, which string, previous resource.PropertyMap) (resource.PropertyMap, error) {
	out := r.News.Copy()
	if previous != nil {
		out["stdout"], out["stderr"] = previous["stdout"], previous["stderr"]
	}
	if script == "" {
		return out, nil
	}
	env := os.Environ()
	e := r.News["environment"]
	for e.IsSecret() {
		e = e.SecretValue().Element
	}
	if e.IsObject() {
		for k, v := range e.ObjectValue() {
			env = append(env, string(k)+"="+simprov.StrValue(v))
		}
	}
	if previous != nil {
		for _, k := range []string{"stdout", "stderr"} {
			if v := simprov.Str(previous, k); v != "" {
				env = append(env, "PULUMI_COMMAND_"+strings.ToUpper(k)+"="+v)
			}
		}
	}
	cmd := exec.CommandContext(r.Ctx, "/bin/sh", "-c", script) // commandOutputs.go:59
	cmd.Env = env
	// Every line goes to the log as the script prints it (commandOutputs.go:62-74,101-110; the
	// default logging is stdoutAndStderr, local/logging.go:27-32; util/util.go:32-40 logs each
	// line with InfoStatus).
	logs, logw := io.Pipe()
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		lines := bufio.NewScanner(logs)
		for lines.Scan() {
			r.Status(lines.Text())
		}
		_, _ = io.Copy(io.Discard, logs)
	}()
	var stdout, stderr, combined bytes.Buffer
	var mu sync.Mutex
	cmd.Stdout = tee{&mu, &stdout, &combined, logw}
	cmd.Stderr = tee{&mu, &stderr, &combined, logw}
	start := time.Now()
	err := cmd.Run()
	_ = logw.Close()
	<-logged
	labevent.Log(labevent.Dir(), labevent.Event{Actor: "command", Op: which, Start: start, End: time.Now(), Detail: r.Name})
	if err != nil {
		return nil, fmt.Errorf("%w: running %q:\n%s", err, script, combined.String())
	}
	out["stdout"] = resource.NewStringProperty(strings.TrimSuffix(stdout.String(), "\n"))
	out["stderr"] = resource.NewStringProperty(strings.TrimSuffix(stderr.String(), "\n"))
	return out, nil
}

// tee writes what the script prints to its own buffer, the combined one and the log, one write
// at a time (stdout and stderr are written from two goroutines).
type tee struct {
	mu       *sync.Mutex
	own, all *bytes.Buffer
	log      io.Writer
}

func (t tee) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.own.Write(p)
	t.all.Write(p)
	return t.log.Write(p)
}
