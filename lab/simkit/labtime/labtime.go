// Package labtime compresses time for the lab: every duration the simulators take from real
// hardware (a reboot, an install, a provider's retry timeout) is divided by one factor, so a
// scenario keeps the real order and concurrency of its steps and shows how long it would block on
// hardware. The factor is $LAB_TIME_SCALE (default 30: a 90 s reboot takes 3 s).
package labtime

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// DefaultScale is the compression factor when $LAB_TIME_SCALE is unset.
const DefaultScale = 30

// Scale returns the compression factor.
func Scale() float64 {
	if s, err := strconv.ParseFloat(os.Getenv("LAB_TIME_SCALE"), 64); err == nil && s >= 1 {
		return s
	}
	return DefaultScale
}

// Lab turns a real-hardware duration into lab time.
func Lab(real time.Duration) time.Duration {
	return time.Duration(float64(real) / Scale())
}

// Real turns a lab duration back into its real-hardware equivalent.
func Real(lab time.Duration) time.Duration {
	return time.Duration(float64(lab) * Scale())
}

// Hardware durations the lab compresses. Talos's sources fix none of them; they are typical
// figures for the bare-metal nodes of the runbook (NUC-class machines booting from NVMe), stated
// once here so every simulator uses the same ones.
const (
	// Boot is power-on (or kexec-less reboot through firmware, as secure boot forces) to Talos
	// reporting the machine running and ready.
	Boot = 90 * time.Second
	// Shutdown is stopping every service and pod before a reboot, reset or upgrade.
	Shutdown = 10 * time.Second
	// Install is pulling the installer image and writing Talos to disk from maintenance mode.
	Install = 120 * time.Second
	// Upgrade is pulling the installer image and writing the other boot entry of a running node.
	Upgrade = 60 * time.Second
	// ContainerStart is a pod's containers starting once the kubelet runs.
	ContainerStart = 5 * time.Second
)

// ClockOffsetFile, in $LAB_STATE, holds how far a scenario has moved the lab's calendar forward
// (a Go duration), to pass the months after which certificates near their expiry.
const ClockOffsetFile = "clock-offset"

// Now is the date a simulator decides by (is a certificate within a month of expiry?): the real
// time moved forward by $LAB_STATE/clock-offset. What it issues still carries the real time, as
// the real providers issue certificates at time.Now, so the real servers and CLIs accept them.
func Now() time.Time {
	now := time.Now()
	b, err := os.ReadFile(filepath.Join(os.Getenv("LAB_STATE"), ClockOffsetFile))
	if err != nil {
		return now
	}
	d, err := time.ParseDuration(strings.TrimSpace(string(b)))
	if err != nil {
		return now
	}
	return now.Add(d)
}
