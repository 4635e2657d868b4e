package scenarios

import (
	"slices"
	"testing"
	"time"

	"homelab/internal/fixture"
)

// TestLabWorkersRollInBatches rolls a reboot-needing change across three control planes and six
// workers twice: with maxUnavailable 3 the workers go in two batches of three, each after the last
// is healthy, never more than three workers and one control plane down; with maxUnavailable 1, one
// node at a time. The batched rollout costs less hardware time, and both figures are printed.
func TestLabWorkersRollInBatches(t *testing.T) {
	c := fixture.NineNodes(t)
	c["adopt"] = true
	l, _ := adoptedLab(t, c)
	cps, workers := map[string]bool{}, map[string]bool{}
	for _, n := range l.nodeNames() {
		if n == "urd" || n == "verdandi" || n == "skuld" {
			cps[n] = true
		} else {
			workers[n] = true
		}
	}
	roll := func(t *testing.T, maxUnavailable int, value string) step {
		t.Helper()
		l.rollout = map[string]any{"maxUnavailable": maxUnavailable}
		l.configure(c)
		l.setData(fixture.SrcWith(t, map[string]string{"talos/patches/env.yaml": "machine:\n  env:\n    GODEBUG: " + value + "\n"}))
		s := l.mustUp()
		downOnce := count(s.events, "reboot")
		for _, n := range l.nodeNames() {
			if downOnce[n] != 1 {
				t.Errorf("%s rebooted %d times, want once", n, downOnce[n])
			}
		}
		if c := maxConcurrent(downtimes(s.events), cps); c != 1 {
			t.Errorf("%d control planes down at once", c)
		}
		return s
	}
	batched := roll(t, 3, "netdns=go")
	l.figures("reboot change, maxUnavailable 3", batched)
	if w := maxConcurrent(downtimes(batched.events), workers); w < 2 || w > 3 {
		t.Errorf("%d workers down at once with maxUnavailable 3; want batches of up to three", w)
	}
	// The second batch starts only once every node of the first is back.
	ds := downtimes(batched.events)
	lastUp, firstDown := lastEnd(ds, "w1", "w2", "w3"), firstStart(ds, "w4", "w5", "w6")
	if firstDown.Before(lastUp) {
		t.Errorf("the second batch went down at %s, before the first was back at %s", firstDown, lastUp)
	}
	serial := roll(t, 1, "netdns=cgo")
	l.figures("reboot change, maxUnavailable 1", serial)
	if w := maxConcurrent(downtimes(serial.events), workers); w != 1 {
		t.Errorf("%d workers down at once with maxUnavailable 1", w)
	}
	if realTime(batched) >= realTime(serial) {
		t.Errorf("the batched rollout (hardware ≈ %s) is not faster than one node at a time (≈ %s)", realTime(batched), realTime(serial))
	}
	l.rollout = nil
	l.noNodeTouched(l.mustUp())
}

// lastEnd is when the last of the nodes came back.
func lastEnd(ds []downtime, nodes ...string) time.Time {
	var t time.Time
	for _, d := range ds {
		if slices.Contains(nodes, d.node) && d.end.After(t) {
			t = d.end
		}
	}
	return t
}

// firstStart is when the first of the nodes went down.
func firstStart(ds []downtime, nodes ...string) time.Time {
	var t time.Time
	for _, d := range ds {
		if slices.Contains(nodes, d.node) && (t.IsZero() || d.start.Before(t)) {
			t = d.start
		}
	}
	return t
}
