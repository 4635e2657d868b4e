// Package labevent is the lab's event log: every simulator appends what it did (a reboot, an
// apply, a Kubernetes object it created) as one JSON line to $LAB_STATE/events.jsonl, and the lab
// tests read the file to count and time node operations.
package labevent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"
)

// Event is one thing a simulator did. Node operations name the node's address.
type Event struct {
	Time  time.Time `json:"time"`
	Actor string    `json:"actor"`
	Op    string    `json:"op"`
	Node  string    `json:"node,omitempty"`
	// Start and End bound operations that take time (reboots, upgrades, applies).
	Start time.Time `json:"start,omitzero"`
	End   time.Time `json:"end,omitzero"`
	// Real is the real-hardware duration the lab compressed into [Start, End], if any.
	Real   time.Duration `json:"real,omitempty"`
	Detail string        `json:"detail,omitempty"`
}

// Dir is the lab state directory of this process.
func Dir() string { return os.Getenv("LAB_STATE") }

// Log appends an event to dir/events.jsonl. A small write with O_APPEND is atomic, so every
// simulator process may log concurrently.
func Log(dir string, e Event) {
	if dir == "" {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	f, err := os.OpenFile(filepath.Join(dir, "events.jsonl"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.Write(append(b, '\n'))
}
