// Command align keeps the repository's own Go modules on one version of each module they build in
// common, so that a cold .ci/run compiles a shared package once instead of once per module.
//
// The modules are the program (.), lab/simkit, lab/sim and lab/talosprovider. Each module they
// build is raised to the highest version any of them builds, except the modules a simulator
// pins on purpose (see held), which keep the version they have. Two packages are compiled once
// only when their whole dependency closure matches, which is why one stray version (x/net, say)
// is enough to compile the Kubernetes client twice.
//
// The Pulumi CLI (lab/cli, upstream's build) is not followed, though it shares the Pulumi SDK:
// its newer versions would add to the program's own cold build, which every preview pays
// (golang-set v2.9.0 alone brings in mongo-driver's bson), to save a cold .ci/run some 9 MB of
// the 515 MB of Go source it compiles.
//
// Usage, from the repository's root:
//
//	go run ./lab/align          raise what lags, then go mod tidy, until nothing does
//	go run ./lab/align -check   list what lags and exit 1 if anything does (.ci/run runs this)
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/mod/semver"
)

// unit is one module of the repository and the packages of it that CI builds.
type unit struct {
	dir      string
	packages []string
	// held modules stay at the version the unit selects (an entry ending in "/" holds every
	// module under it): the simulated provider compiles Talos and its libraries at the provider's
	// own versions, and lab/sim pins the Talos module and go-kubernetes at the newest release
	// whose module graph the proxy serves (their go.mod files say why).
	held []string
}

var units = []unit{
	{dir: ".", packages: []string{"-test", "./..."}},
	{dir: "lab/simkit", packages: []string{"./..."}},
	{dir: "lab/sim", packages: []string{"./..."}, held: []string{"github.com/siderolabs/talos", "github.com/siderolabs/go-kubernetes"}},
	{dir: "lab/talosprovider", packages: []string{"./..."}, held: []string{"github.com/siderolabs/", "github.com/cosi-project/"}},
}

func main() {
	check := flag.Bool("check", false, "list the modules that lag and exit 1 if any does; change nothing")
	flag.Parse()
	if err := run(*check); err != nil {
		fmt.Fprintln(os.Stderr, "align:", err)
		os.Exit(1)
	}
}

func run(check bool) error {
	var before map[string]map[string]string
	for round := 1; ; round++ {
		built, err := builtModules()
		if err != nil {
			return err
		}
		if before == nil {
			before = built
		} else if moved := movedHeld(before, built); len(moved) > 0 {
			return fmt.Errorf("aligning moved held modules (restore the go.mod and go.sum files, and hold what pulled them): %s", strings.Join(moved, "; "))
		}
		lag := lagging(built)
		if len(lag) == 0 {
			fmt.Println("align: the repository's modules build one version of each module they share")
			return nil
		}
		if check {
			for _, u := range units {
				for _, m := range lag[u.dir] {
					fmt.Printf("%s: %s %s, others build %s\n", u.dir, m.path, built[u.dir][m.path], m.version)
				}
			}
			return errors.New("some shared modules lag (a cold build compiles them twice): run go run ./lab/align and commit the go.mod and go.sum files")
		}
		if round > 4 {
			return fmt.Errorf("still lagging after %d rounds: %v", round-1, lag)
		}
		for _, u := range units {
			if len(lag[u.dir]) == 0 {
				continue
			}
			if err := raise(u, lag[u.dir]); err != nil {
				return err
			}
		}
	}
}

type module struct{ path, version string }

// builtModules lists, per unit, the version of every module whose packages the unit builds, with
// the build flags of .ci/run. Replaced modules are left out: their code is not the version's.
func builtModules() (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for _, u := range units {
		args := append([]string{"list", "-deps", "-f", "{{with .Module}}{{if not .Replace}}{{.Path}} {{.Version}}{{end}}{{end}}"}, u.packages...)
		b, err := goCmd(u.dir, args...)
		if err != nil {
			return nil, err
		}
		mods := map[string]string{}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) == 2 {
				mods[f[0]] = f[1]
			}
		}
		out[u.dir] = mods
	}
	return out, nil
}

// lagging returns, per unit that may change, the modules it builds below the highest version
// any unit builds.
func lagging(built map[string]map[string]string) map[string][]module {
	highest := map[string]string{}
	for _, mods := range built {
		for p, v := range mods {
			if h, ok := highest[p]; !ok || semver.Compare(v, h) > 0 {
				highest[p] = v
			}
		}
	}
	lag := map[string][]module{}
	for _, u := range units {
		for p, v := range built[u.dir] {
			if isHeld(u, p) || semver.Compare(v, highest[p]) >= 0 {
				continue
			}
			lag[u.dir] = append(lag[u.dir], module{p, highest[p]})
		}
		sort.Slice(lag[u.dir], func(i, j int) bool { return lag[u.dir][i].path < lag[u.dir][j].path })
	}
	return lag
}

func isHeld(u unit, path string) bool {
	for _, h := range u.held {
		if path == h || strings.HasSuffix(h, "/") && strings.HasPrefix(path, h) {
			return true
		}
	}
	return false
}

// movedHeld lists the held modules whose version differs between two listings: a raise of one
// unit can move another's (lab/simkit is every simulator's, through a replace directive).
func movedHeld(before, after map[string]map[string]string) []string {
	var moved []string
	for _, u := range units {
		for p, v := range before[u.dir] {
			if isHeld(u, p) && after[u.dir][p] != v {
				moved = append(moved, fmt.Sprintf("%s: %s %s -> %s", u.dir, p, v, after[u.dir][p]))
			}
		}
	}
	sort.Strings(moved)
	return moved
}

// conflicts returns the modules that go get's output says another module requires at a higher
// version than the one asked for ("A@v requires B@x, not B@y"): their pins are dropped, and go
// get picks the version required.
func conflicts(output string) []string {
	var paths []string
	for _, line := range strings.Split(output, "\n") {
		if i := strings.Index(line, ", not "); i > 0 {
			paths = append(paths, strings.SplitN(line[i+len(", not "):], "@", 2)[0])
		}
	}
	return paths
}

// raise runs go get for the lagging modules of one unit, then go mod tidy. A version that another
// raise requires above its target is left to go get (dropped from the command and retried).
func raise(u unit, lag []module) error {
	args := []string{"get"}
	for _, m := range lag {
		args = append(args, m.path+"@"+m.version)
	}
	for {
		b, err := goCmd(u.dir, args...)
		if err == nil {
			break
		}
		n := len(args)
		for _, p := range conflicts(string(b)) {
			for j, a := range args {
				if strings.HasPrefix(a, p+"@") {
					args = append(args[:j], args[j+1:]...)
					break
				}
			}
		}
		if len(args) == n {
			return err
		}
	}
	_, err := goCmd(u.dir, "mod", "tidy")
	return err
}

// goCmd runs the go command in a unit's directory with .ci/run's CGO_ENABLED and GOFLAGS (without
// its -gcflags, which changes no package list): they decide which packages, and so which modules,
// are built.
func goCmd(dir string, args ...string) ([]byte, error) {
	cmd := exec.Command("go", args...)
	cmd.Dir = filepath.Clean(dir)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-trimpath -ldflags=-w", "GOWORK=off")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s: go %s: %w\n%s", dir, strings.Join(args, " "), err, out.Bytes())
	}
	return out.Bytes(), nil
}
