// Command labworld runs one simulated homelab for the lab tests (package world): Talos nodes on
// loopback addresses and, once bootstrapped, a real Kubernetes control plane. It is driven through
// the control API on $LAB_STATE/world.sock and stops on SIGTERM or POST /shutdown.
//
//	LAB_STATE=<dir> LAB_BIN=<kubernetes binaries> labworld
package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"homelab/lab/sim/world"
	"homelab/lab/simkit/labevent"
)

func main() {
	dir := labevent.Dir()
	if dir == "" {
		fmt.Fprintln(os.Stderr, "labworld: LAB_STATE is not set")
		os.Exit(2)
	}
	w, err := world.New(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "labworld:", err)
		os.Exit(1)
	}
	done := make(chan struct{})
	stop := func() {
		w.Close()
		close(done)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		stop()
	}()
	go func() {
		if err := w.Serve(filepath.Join(dir, "world.sock"), stop); err != nil {
			fmt.Fprintln(os.Stderr, "labworld:", err)
		}
	}()
	<-done
}
