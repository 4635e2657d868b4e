// Command talosctl is the lab's stand-in for talosctl: it serves the two commands the reboot gate
// runs, `reboot --wait` and `health`, against the simulated nodes.
package main

import (
	"fmt"
	"os"
	"time"

	"homelab/internal/lab/labstate"
)

func main() {
	var node, cmd string
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--nodes", "-n":
			i++
			node = args[i]
		case "--talosconfig", "--endpoints", "-e", "--timeout", "--wait-timeout":
			i++
		case "--wait":
		default:
			if cmd == "" {
				cmd = args[i]
			}
		}
	}
	dir := labstate.Dir()
	switch cmd {
	case "reboot":
		var start, end time.Time
		err := labstate.Update(dir, func(s *labstate.State) error {
			n, ok := s.Nodes[node]
			if !ok || n.Mode != labstate.Running {
				return fmt.Errorf("node %s is not running", node)
			}
			start, end = s.Reboot(n)
			return nil
		})
		if err != nil {
			fail(err)
		}
		labstate.Log(dir, labstate.Event{Actor: "talosctl", Op: "reboot", Node: node, Start: start, End: end})
		fmt.Fprintf(os.Stderr, "waiting for %s to reboot\n", node)
		if err := labstate.Wait(dir, time.Minute, func(s *labstate.State) error {
			if s.Nodes[node].Mode != labstate.Running {
				return fmt.Errorf("%s is %s", node, s.Nodes[node].Mode)
			}
			return nil
		}); err != nil {
			fail(err)
		}
	case "health":
		labstate.Log(dir, labstate.Event{Actor: "talosctl", Op: "health", Node: node})
		if err := labstate.Wait(dir, time.Minute, func(s *labstate.State) error { return s.Healthy() }); err != nil {
			fail(err)
		}
		fmt.Fprintln(os.Stderr, "cluster is healthy")
	default:
		fail(fmt.Errorf("the lab's talosctl does not simulate %q", cmd))
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "talosctl:", err)
	os.Exit(1)
}
