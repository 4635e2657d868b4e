// Package labstate is the world the lab's simulators share: the simulated nodes, etcd, the
// Kubernetes objects and the 1Password vault, kept in one JSON file under $LAB_STATE and changed
// under a file lock, plus a timestamped event log every simulator appends to.
package labstate

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Node modes.
const (
	Maintenance = "maintenance"
	Running     = "running"
	Rebooting   = "rebooting"
)

// Config is what the simulator knows of a node's machine config.
type Config struct {
	Hostname string `json:"hostname"`
	// Reboot holds the settings Talos needs a reboot for: CNI, kube-proxy, installer, kernel args.
	Reboot map[string]string `json:"reboot"`
	// Hash identifies the whole config (base config and patches).
	Hash string `json:"hash"`
}

// Node is one simulated machine.
type Node struct {
	Address string  `json:"address"`
	Role    string  `json:"role"`
	Mode    string  `json:"mode"`
	Config  *Config `json:"config,omitempty"` // what it runs
	Staged  *Config `json:"staged,omitempty"` // what it boots into next
	// UpAt is when a rebooting node is up again.
	UpAt time.Time `json:"upAt"`
}

// State is the simulated world.
type State struct {
	Nodes map[string]*Node `json:"nodes"` // by address
	// Bootstrapped is true once etcd is bootstrapped.
	Bootstrapped bool `json:"bootstrapped"`
	// CRDs, DaemonSets and Objects exist in the cluster; Charts maps an installed chart to its version.
	CRDs       map[string]bool   `json:"crds"`
	DaemonSets map[string]bool   `json:"daemonSets"`
	Objects    map[string]bool   `json:"objects"`
	Charts     map[string]string `json:"charts"`
	// Vault maps item titles to fields; Written holds the items the program wrote.
	Vault   map[string]map[string]string `json:"vault"`
	Written map[string]map[string]string `json:"written"`
}

// Dir is the lab state directory of this process.
func Dir() string { return os.Getenv("LAB_STATE") }

// RebootTime is how long a simulated reboot (or install) takes: $LAB_REBOOT_MS, default 800 ms.
func RebootTime() time.Duration {
	if ms, err := strconv.Atoi(os.Getenv("LAB_REBOOT_MS")); err == nil {
		return time.Duration(ms) * time.Millisecond
	}
	return 800 * time.Millisecond
}

// Write stores a state (used by tests to set up a world).
func Write(dir string, s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600)
}

// Read returns the current state, with finished reboots settled.
func Read(dir string) (*State, error) {
	var s *State
	err := Update(dir, func(st *State) error { s = st; return nil })
	return s, err
}

// Update changes the state under the lock. Reboots that have finished are settled first: the node
// runs what was staged.
func Update(dir string, fn func(*State) error) error {
	if dir == "" {
		return errors.New("LAB_STATE is not set: the lab simulators run only under the lab tests")
	}
	lock, err := os.OpenFile(filepath.Join(dir, "state.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return err
	}
	s := &State{}
	if err := json.Unmarshal(b, s); err != nil {
		return err
	}
	s.settle(time.Now())
	if err := fn(s); err != nil {
		return err
	}
	return Write(dir, s)
}

func (s *State) settle(now time.Time) {
	for _, n := range s.Nodes {
		if n.Mode == Rebooting && !now.Before(n.UpAt) {
			n.Mode = Running
			if n.Staged != nil {
				n.Config, n.Staged = n.Staged, nil
			}
		}
	}
}

// Reboot starts a node's reboot; it runs its staged config when it is back.
func (s *State) Reboot(n *Node) (start, end time.Time) {
	start = time.Now()
	n.Mode = Rebooting
	n.UpAt = start.Add(RebootTime())
	return start, n.UpAt
}

// NodeByName finds a node by the hostname of the config it runs.
func (s *State) NodeByName(name string) *Node {
	for _, n := range s.Nodes {
		if n.Config != nil && n.Config.Hostname == name {
			return n
		}
	}
	return nil
}

// Healthy reports whether every installed node runs and etcd is bootstrapped, or why not.
func (s *State) Healthy() error {
	if !s.Bootstrapped {
		return errors.New("etcd is not bootstrapped")
	}
	for _, n := range s.Nodes {
		if n.Mode != Running {
			return fmt.Errorf("node %s is %s", n.Address, n.Mode)
		}
	}
	return nil
}

// Wait polls the state until cond returns nil or the timeout passes.
func Wait(dir string, timeout time.Duration, cond func(*State) error) error {
	deadline := time.Now().Add(timeout)
	for {
		s, err := Read(dir)
		if err != nil {
			return err
		}
		err = cond(s)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Event is one thing a simulator did. Node operations name the node's address.
type Event struct {
	Time  time.Time `json:"time"`
	Actor string    `json:"actor"`
	Op    string    `json:"op"`
	Node  string    `json:"node,omitempty"`
	// Start and End bound operations that take time (reboots, applies).
	Start  time.Time `json:"start,omitzero"`
	End    time.Time `json:"end,omitzero"`
	Detail string    `json:"detail,omitempty"`
}

// Log appends an event to $LAB_STATE/events.jsonl.
func Log(dir string, e Event) {
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

// Events reads the event log.
func Events(dir string) ([]Event, error) {
	b, err := os.ReadFile(filepath.Join(dir, "events.jsonl"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Event
	for _, line := range splitLines(b) {
		var e Event
		if err := json.Unmarshal(line, &e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	start := 0
	for i, c := range b {
		if c == '\n' {
			if i > start {
				out = append(out, b[start:i])
			}
			start = i + 1
		}
	}
	return out
}
