// Command pulumi-resource-command simulates the command provider (pulumi-command 1.2.1) for the
// lab: local.Command runs its create or update script with /bin/sh, like the real provider, with
// the resource's environment and, on update, PULUMI_COMMAND_STDOUT and PULUMI_COMMAND_STDERR from
// the previous run. A change of triggers replaces; any other change runs update. The scripts find
// the lab's talosctl and kubectl on PATH.
package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"homelab/internal/lab/labstate"
	"homelab/internal/lab/simprov"
)

func main() {
	simprov.Main(simprov.Provider{
		Name: "command", Version: "1.2.1",
		Resources: map[string]simprov.Resource{
			"command:local:Command": {
				Replaces: []string{"triggers"},
				Create: func(r simprov.Request) (string, resource.PropertyMap, error) {
					out, err := runScript(r, "create", nil)
					return r.Name, out, err
				},
				Update: func(r simprov.Request) (resource.PropertyMap, error) {
					script := "update"
					if simprov.Str(r.News, "update") == "" {
						script = "create"
					}
					return runScript(r, script, r.Olds)
				},
				Delete: func(r simprov.Request) error {
					if simprov.Str(r.OldInputs, "delete") == "" {
						return nil
					}
					_, err := runScript(simprov.Request{Name: r.Name, News: r.OldInputs}, "delete", r.Olds)
					return err
				},
			},
		},
	})
}

func runScript(r simprov.Request, which string, previous resource.PropertyMap) (resource.PropertyMap, error) {
	env := os.Environ()
	if e := r.News["environment"]; e.IsObject() || e.IsSecret() {
		for e.IsSecret() {
			e = e.SecretValue().Element
		}
		for k, v := range e.ObjectValue() {
			env = append(env, string(k)+"="+simprov.StrValue(v))
		}
	}
	if previous != nil {
		env = append(env, "PULUMI_COMMAND_STDOUT="+simprov.Str(previous, "stdout"), "PULUMI_COMMAND_STDERR="+simprov.Str(previous, "stderr"))
	}
	cmd := exec.Command("/bin/sh", "-c", simprov.Str(r.News, which))
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	labstate.Log(labstate.Dir(), labstate.Event{Actor: "command", Op: which, Start: start, End: time.Now(), Detail: r.Name})
	if err != nil {
		return nil, fmt.Errorf("running %s of %s: %w: %s", which, r.Name, err, strings.TrimSpace(stderr.String()))
	}
	out := r.News.Copy()
	out["stdout"] = resource.NewStringProperty(strings.TrimSuffix(stdout.String(), "\n"))
	out["stderr"] = resource.NewStringProperty(strings.TrimSuffix(stderr.String(), "\n"))
	return out, nil
}
