package scenarios

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"homelab/internal/fixture"
)

// s3 is the lab's S3-compatible store: the real versitygw (lab/s3), serving a directory on loopback.
type s3 struct {
	endpoint, bucket, dir string
	env                   []string // the access key, as op run puts it in the environment
}

// startS3 starts versitygw with one bucket, homelab-etcd, until the test ends.
func startS3(t *testing.T) *s3 {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &s3{endpoint: "http://127.0.0.1:" + strconv.Itoa(port), bucket: "homelab-etcd", dir: t.TempDir(),
		env: []string{"ETCD_BACKUP_ACCESS_KEY_ID=lab-backup", "ETCD_BACKUP_SECRET_ACCESS_KEY=lab-backup-secret-Nq2"}}
	if err := os.MkdirAll(filepath.Join(s.dir, s.bucket), 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(labDir(t), "bin", "versitygw"), "--port", "127.0.0.1:"+strconv.Itoa(port),
		"--access", "lab-backup", "--secret", "lab-backup-secret-Nq2", "posix", s.dir)
	log, err := os.Create(filepath.Join(t.TempDir(), "versitygw.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting versitygw: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("versitygw does not listen")
		}
	}
	return s
}

// objects are the stored snapshots' names.
func (s *s3) objects(t *testing.T) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(filepath.Join(s.dir, s.bucket), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".db.age") {
			out = append(out, filepath.Base(p))
		}
		return nil
	})
	return out
}

// TestLabEtcdSnapshotsAndRecoveryFromALostQuorum: cmd/etcd takes snapshots of a running norns
// through the nodes' Talos API (the real etcd's own snapshot), encrypts them with age and stores
// them in the lab's S3 (versitygw), keeping two. Then two control planes lose their etcd data at
// once: no quorum, no API. cmd/etcd recover wipes the survivor's etcd data (whereupon the cluster's
// data is gone), bootstraps it from the newest snapshot through the Talos API (the real etcdutl
// restore) and waits for the others to join. A ConfigMap made after the bring-up, not in Git, is
// back; one made after the snapshot is not; the next pulumi up changes nothing.
func TestLabEtcdSnapshotsAndRecoveryFromALostQuorum(t *testing.T) {
	l, _ := adoptedLab(t, fixture.Cluster(t, "norns"))
	store := startS3(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	identity := filepath.Join(t.TempDir(), "age.key")
	if err := os.WriteFile(identity, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	project := l.project(t, map[string]any{"homelab:backup": map[string]any{
		"s3":         map[string]any{"endpoint": store.endpoint, "bucket": store.bucket, "prefix": "lab/"},
		"recipients": []string{id.Recipient().String()},
		"keep":       2,
	}})
	tc := l.outputFiles(t, "talosconfig")["talosconfig"]
	etcd := func(args ...string) (string, int) {
		return runIn(t, project, store.env, command(t, "etcd"), append(args, "--stack", "norns", "--talosconfig", tc)...)
	}
	if out, err := l.w.kubectl("create", "configmap", "made-after-bring-up", "--from-literal=kept=yes"); err != nil {
		t.Fatal(err, out)
	}

	t.Run("snapshots are encrypted, stored and pruned", func(t *testing.T) {
		var line string
		for i := 0; i < 3; i++ {
			out, code := etcd("snapshot")
			if code != 0 {
				t.Fatalf("etcd snapshot: exit %d\n%s", code, out)
			}
			line = lastLine(out)
			time.Sleep(1100 * time.Millisecond) // names carry the second they were taken
		}
		t.Logf("FIGURES etcd snapshot: %s", line)
		if !strings.Contains(line, "revision ") || !strings.Contains(line, "-> s3://homelab-etcd/lab/norns/etcd-") {
			t.Errorf("the snapshot line does not give the revision and where it went: %s", line)
		}
		if objs := store.objects(t); len(objs) != 2 {
			t.Errorf("the bucket holds %v; want the newest 2 (keep: 2)", objs)
		}
		for _, o := range store.objects(t) {
			b, _ := os.ReadFile(filepath.Join(store.dir, store.bucket, "lab", "norns", o))
			if !strings.HasPrefix(string(b), "age-encryption.org/v1") || strings.Contains(string(b), "made-after-bring-up") {
				t.Errorf("%s is not an age file, or shows the cluster's data in clear", o)
			}
		}
	})
	if out, err := l.w.kubectl("create", "configmap", "made-after-the-snapshot", "--from-literal=kept=no"); err != nil {
		t.Fatal(err, out)
	}

	t.Run("a recovery is refused while etcd has its quorum", func(t *testing.T) {
		out, code := etcd("recover", "--identity", identity, "--yes")
		if code == 0 || !strings.Contains(out, "it has its quorum") {
			t.Errorf("exit %d; want a refusal:\n%s", code, out)
		}
	})

	t.Run("two control planes lose their etcd data; the newest snapshot brings the cluster back", func(t *testing.T) {
		// At once: one after the other, each would rejoin the quorum the other two still have.
		l.w.post("/etcd/data-lost", map[string]any{"nodes": []string{labAddr["verdandi"], labAddr["skuld"]}})
		if out, code := etcd("recover", "--identity", identity); code != 0 || !strings.Contains(out, "nothing was done") ||
			!strings.Contains(out, "wipe the EPHEMERAL partition of urd") {
			t.Fatalf("without --yes: exit %d\n%s", code, out)
		}
		start := time.Now()
		out, code := etcd("recover", "--identity", identity, "--yes")
		t.Logf("FIGURES etcd recovery: lab %.1fs", time.Since(start).Seconds())
		if code != 0 {
			t.Fatalf("etcd recover: exit %d\n%s", code, out)
		}
		var recovered, gone int
		for _, e := range l.w.events() {
			switch e.Op {
			case "etcd-recover":
				recovered++
			case "etcd-data-gone":
				gone++
			}
		}
		if gone != 1 || recovered != 1 {
			t.Errorf("the cluster's data was gone %d times and recovered %d times, want once each", gone, recovered)
		}
		if members := l.w.snapshot().EtcdMembers; len(members) != 3 {
			t.Errorf("etcd has %d members after the recovery, want the 3 control planes: %v", len(members), members)
		}
		if out, err := l.w.kubectl("get", "configmap", "made-after-bring-up", "-o", "jsonpath={.data.kept}"); err != nil || out != "yes" {
			t.Errorf("the ConfigMap made after the bring-up did not survive: %v %s", err, out)
		}
		if out, err := l.w.kubectl("get", "configmap", "made-after-the-snapshot"); err == nil {
			t.Errorf("a ConfigMap made after the snapshot is back: the restore did not come from the snapshot\n%s", out)
		}
	})

	t.Run("the next pulumi up finds nothing to do", func(t *testing.T) {
		s := l.mustUp()
		l.figures("up after the etcd recovery", s)
		l.noNodeTouched(s)
		for name, op := range s.ops {
			if op != "same" && op != "read" {
				t.Errorf("%s: %s after the recovery", name, op)
			}
		}
	})
}

func lastLine(s string) string {
	var last string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if t := strings.TrimSpace(sc.Text()); t != "" {
			last = t
		}
	}
	return last
}
