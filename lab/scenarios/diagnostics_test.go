package scenarios

import (
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/apitype"
)

// TestLabAHungRunSaysWhereItWaited pins what a scenario stopped at its deadline reports: the
// resources still in flight with their last lines (not those that finished), and the world's
// goroutines that waited minutes in the world's code (not those waiting briefly, on a socket, or
// elsewhere).
func TestLabAHungRunSaysWhereItWaited(t *testing.T) {
	urn := func(name string) string { return "urn:pulumi:lab::homelab::command:local:Command::" + name }
	pre := func(name string) apitype.EngineEvent {
		return apitype.EngineEvent{ResourcePreEvent: &apitype.ResourcePreEvent{Metadata: apitype.StepEventMetadata{URN: urn(name)}}}
	}
	engine := []apitype.EngineEvent{
		pre("config-gate-urd"), pre("config-gate-skuld"),
		{DiagnosticEvent: &apitype.DiagnosticEvent{URN: urn("config-gate-urd"), Message: "urd: none\n"}},
		{ResOutputsEvent: &apitype.ResOutputsEvent{Metadata: apitype.StepEventMetadata{URN: urn("config-gate-urd")}}},
		{DiagnosticEvent: &apitype.DiagnosticEvent{URN: urn("config-gate-skuld"), Message: "skuld: rebooting into the staged config\n"}},
		{DiagnosticEvent: &apitype.DiagnosticEvent{URN: urn("config-gate-skuld"), Message: "waiting for all k8s nodes to report ready\n"}},
	}
	got := inFlight(engine)
	for _, want := range []string{"in flight at the deadline: config-gate-skuld", "    waiting for all k8s nodes to report ready"} {
		if !strings.Contains(got, want) {
			t.Errorf("the report lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "urd") {
		t.Errorf("the report names a resource that finished:\n%s", got)
	}

	// The shape of runtime/pprof's goroutine profile at debug=2 (runtime.Stack's format): a
	// header with the wait reason and, after a minute, its length; then function and file lines.
	dump := `goroutine 1 [IO wait]:
internal/poll.runtime_pollWait(0x7f, 0x72)
	runtime/netpoll.go:351 +0x85
main.main()
	homelab/lab/sim/cmd/labworld/main.go:40 +0x1f

goroutine 812 [sync.Mutex.Lock, 7 minutes]:
sync.(*Mutex).Lock(...)
	sync/mutex.go:81
homelab/lab/sim/world.(*World).kubeletUp(0xc000, 0xc001)
	homelab/lab/sim/world/k8s.go:58 +0x4a
homelab/lab/sim/world.(*World).nodeRunning(0xc000, 0xc001)
	homelab/lab/sim/world/world.go:218 +0x90
created by homelab/lab/sim/world.(*Node).reboot in goroutine 700
	homelab/lab/sim/world/node.go:300 +0x1ab

goroutine 25 [IO wait, 5 minutes]:
internal/poll.runtime_pollWait(0x7f, 0x72)
	runtime/netpoll.go:351 +0x85
homelab/lab/sim/world.(*World).Serve(0xc000, {0xc004, 0x3e}, 0xc005)
	homelab/lab/sim/world/control.go:180 +0x3c

goroutine 90 [select, 3 minutes]:
net/http.(*persistConn).writeLoop(0xc002)
	net/http/transport.go:2519 +0xe7

goroutine 91 [select]:
homelab/lab/sim/world.(*World).runCilium(0xc000, {0x1, 0xc003})
	homelab/lab/sim/world/cilium.go:47 +0x8d
`
	stuck := stuckGoroutines(dump)
	for _, want := range []string{"goroutine 812 [sync.Mutex.Lock, 7 minutes]:", "homelab/lab/sim/world.(*World).kubeletUp(0xc000, 0xc001)"} {
		if !strings.Contains(stuck, want) {
			t.Errorf("the stuck goroutines lack %q:\n%s", want, stuck)
		}
	}
	for _, not := range []string{"goroutine 1 ", "goroutine 25 ", "goroutine 90 ", "goroutine 91 "} {
		if strings.Contains(stuck, not) {
			t.Errorf("the stuck goroutines show %q, which waited briefly or outside the world's code:\n%s", not, stuck)
		}
	}
}
