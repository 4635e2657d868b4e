// Command kubectl is the lab's stand-in for kubectl: it serves the commands of the reboot gate
// and the CNI clean-up (wait, delete, get, rollout status) against the simulated cluster.
package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"homelab/internal/lab/labstate"
)

func main() {
	var positional []string
	flags := map[string]string{}
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--ignore-not-found" || strings.HasPrefix(a, "--wait="):
		case strings.HasPrefix(a, "--") && strings.Contains(a, "="):
			k, v, _ := strings.Cut(a, "=")
			flags[k] = v
		case strings.HasPrefix(a, "-"):
			i++
			flags[a] = args[i]
		default:
			positional = append(positional, a)
		}
	}
	if len(positional) == 0 {
		fail(fmt.Errorf("no command"))
	}
	dir := labstate.Dir()
	switch positional[0] {
	case "wait":
		waitFor(dir, positional[1:], flags)
	case "delete":
		kind := positional[1]
		names := positional[2:]
		err := labstate.Update(dir, func(s *labstate.State) error {
			if kind == "daemonset" {
				for _, n := range names {
					delete(s.DaemonSets, n)
				}
			}
			return nil
		})
		if err != nil {
			fail(err)
		}
		labstate.Log(dir, labstate.Event{Actor: "kubectl", Op: "delete", Detail: kind + " " + strings.Join(names, " ")})
	case "get":
		s, err := labstate.Read(dir)
		if err != nil {
			fail(err)
		}
		var out []string
		for ds := range s.DaemonSets {
			out = append(out, "daemonset.apps/"+ds)
			for _, n := range s.Nodes {
				out = append(out, "pod/"+ds+"-"+strings.ReplaceAll(n.Address, ".", "-"))
			}
		}
		if _, ok := s.Charts["cilium"]; ok {
			out = append(out, "daemonset.apps/cilium")
		}
		sort.Strings(out)
		fmt.Println(strings.Join(out, "\n"))
	case "rollout":
		if err := labstate.Wait(dir, time.Minute, func(s *labstate.State) error {
			if _, ok := s.Charts["cilium"]; !ok {
				return fmt.Errorf("daemonset cilium not found")
			}
			return nil
		}); err != nil {
			fail(err)
		}
	default:
		fail(fmt.Errorf("the lab's kubectl does not simulate %q", positional[0]))
	}
}

// waitFor serves `wait --for=condition=Ready node/NAME` and the Cilium pod on a node.
func waitFor(dir string, what []string, flags map[string]string) {
	var cond func(*labstate.State) error
	switch {
	case len(what) == 1 && strings.HasPrefix(what[0], "node/"):
		name := strings.TrimPrefix(what[0], "node/")
		cond = func(s *labstate.State) error {
			n := s.NodeByName(name)
			if n == nil || n.Mode != labstate.Running || !s.Bootstrapped {
				return fmt.Errorf("node %s is not Ready", name)
			}
			return nil
		}
		labstate.Log(dir, labstate.Event{Actor: "kubectl", Op: "wait-node", Detail: name})
	case len(what) == 1 && what[0] == "pod":
		name := strings.TrimPrefix(flags["--field-selector"], "spec.nodeName=")
		cond = func(s *labstate.State) error {
			n := s.NodeByName(name)
			if _, ok := s.Charts["cilium"]; !ok || n == nil || n.Mode != labstate.Running {
				return fmt.Errorf("no Ready cilium pod on %s", name)
			}
			return nil
		}
		labstate.Log(dir, labstate.Event{Actor: "kubectl", Op: "wait-cilium", Detail: name})
	default:
		fail(fmt.Errorf("the lab's kubectl cannot wait for %v", what))
	}
	if err := labstate.Wait(dir, time.Minute, cond); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kubectl:", err)
	os.Exit(1)
}
