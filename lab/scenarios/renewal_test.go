package scenarios

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"homelab/internal/fixture"
)

// setClock moves the lab's calendar (labtime.Now, which the provider simulators decide by) by d,
// as if that much time had passed; "0s" puts it back.
func (l *lab) setClock(d string) {
	l.t.Helper()
	if err := os.WriteFile(filepath.Join(l.w.state, "clock-offset"), []byte(d), 0o600); err != nil {
		l.t.Fatal(err)
	}
}

// TestLabCertificateRenewalIsQuiet passes 340 days after bring-up: the admin client certificate
// and the kubeconfig's are within a month of their year. The preview says the credentials are
// renewed and lists no node change; pulumi up renews them, re-sends every node's config unchanged
// and re-checks every gate, with no reboot, no upgrade and no config change; a month later (the
// renewed certificates fresh) a run does nothing.
func TestLabCertificateRenewalIsQuiet(t *testing.T) {
	l, _ := adoptedLab(t, fixture.Cluster(t, "norns"))
	l.setClock("8160h")
	p := l.preview()
	if p.err != nil {
		t.Fatalf("preview failed: %v\n%s", p.err, tail(p.output))
	}
	comment := l.prComment(t, "renewal", p, bundleSecrets(t, l.w))
	if !strings.Contains(comment, "**Credentials renewed** (the Talos admin client certificate and the kubeconfig's client certificate") ||
		!strings.Contains(comment, "**Nodes:** no node changes.") {
		t.Errorf("the preview does not read as the renewal alone:\n%s", comment)
	}
	before := l.clientKeys(t)
	s := l.mustUp()
	l.figures("certificate renewal", s)
	if n := len(count(s.events, "reboot")) + len(count(s.events, "upgrade")); n != 0 {
		t.Errorf("the renewal took nodes down: reboots %v, upgrades %v", count(s.events, "reboot"), count(s.events, "upgrade"))
	}
	l.noNodeTouched(s)
	if !hasEvent(s.events, "client-certificate-renewed") {
		t.Error("the provider renewed no client certificate")
	}
	after := l.clientKeys(t)
	if strings.Join(before, ",") == strings.Join(after, ",") {
		t.Error("the talosconfig and kubeconfig outputs keep their old client keys")
	}
	l.setClock("0s")
	l.noNodeTouched(l.mustUp())
}

func hasEvent(evs []labEvent, op string) bool {
	for _, e := range evs {
		if e.Op == op {
			return true
		}
	}
	return false
}
