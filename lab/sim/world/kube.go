package world

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"homelab/lab/simkit/labtime"
)

// kube is the cluster's Kubernetes control plane: one real etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler (v1.35.8, built from k8s.io/kubernetes) and KWOK in
// place of every node's kubelet, all on loopback. The world starts it when etcd is bootstrapped,
// with the cluster's own Kubernetes CA and service-account key from the bootstrap node's machine
// config, so the kubeconfig a node serves is trusted by it as on real hardware.
//
// Simplifications: one API server process serves every control plane. Each control-plane node's
// address gets a TCP proxy on port 6443 that forwards to it while that node runs (its API server
// static pod is up), so a cluster endpoint naming one node is unreachable while that node
// reboots, as on hardware. etcd's membership is simulated by the world (the nodes' etcd API); the
// one real etcd only stores Kubernetes' data.
type kube struct {
	dir     string
	bin     string
	procs   []*exec.Cmd
	apiPort int
	ca      *ca
	admin   *leaf
	client  *kubernetes.Clientset
	rest    *rest.Config

	mu      sync.Mutex
	proxies map[string]*tcpProxy // by node address
	// sans are the names the serving certificate holds now.
	sans []string
	// args are the command lines of the processes by name, to restart them; etcdPort and
	// peerPort are the real etcd's; etcdData its data directory ("" once destroyed).
	args               map[string][]string
	etcdPort, peerPort int
	etcdData           string
}

// kubeBin is the directory with the lab's Kubernetes binaries: $LAB_BIN.
func kubeBin() string { return os.Getenv("LAB_BIN") }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startKube starts the control plane. caCert/caKey are the cluster's Kubernetes CA, saKey the
// service-account signing key, all PEM; sans are the addresses the API server is reached at.
func startKube(dir string, caCert, caKey, saKey []byte, sans []string) (*kube, error) {
	k := &kube{dir: dir, bin: kubeBin(), proxies: map[string]*tcpProxy{}, args: map[string][]string{}}
	if k.bin == "" {
		return nil, fmt.Errorf("LAB_BIN is not set: the lab's Kubernetes binaries are built by lab/build")
	}
	var err error
	if k.ca, err = parseCA(caCert, caKey); err != nil {
		return nil, fmt.Errorf("cluster.ca of the bootstrap node: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		_ = os.WriteFile(p, b, 0o600)
		return p
	}
	if _, err := k.issueServing(sans); err != nil {
		return nil, err
	}
	client := func(cn string, orgs ...string) (*leaf, error) {
		return k.ca.issue(leafSpec{cn: cn, orgs: orgs, usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	}
	if k.admin, err = client("admin", "system:masters"); err != nil {
		return nil, err
	}
	kcm, err := client("system:kube-controller-manager")
	if err != nil {
		return nil, err
	}
	sched, err := client("system:kube-scheduler")
	if err != nil {
		return nil, err
	}
	caFile := write("ca.crt", caCert)
	write("ca.key", caKey)
	saFile := write("sa.key", saKey)
	logs := filepath.Join(dir, "logs")
	_ = os.MkdirAll(logs, 0o700)
	k.etcdData = filepath.Join(dir, "etcd")
	// A port freePort found free can be taken before the process binds it (another shard's
	// connection, on a busy machine): a process that could not bind starts again on new ports.
	var server string
	for attempt := 1; ; attempt++ {
		if k.etcdPort, err = freePort(); err != nil {
			return nil, err
		}
		if k.peerPort, err = freePort(); err != nil {
			return nil, err
		}
		if k.apiPort, err = freePort(); err != nil {
			return nil, err
		}
		server = fmt.Sprintf("https://127.0.0.1:%d", k.apiPort)
		if err := k.startEtcd(); err != nil {
			return nil, err
		}
		if err := k.start("kube-apiserver",
			fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", k.etcdPort),
			"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", k.apiPort),
			"--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
			"--tls-cert-file="+filepath.Join(dir, "apiserver.crt"), "--tls-private-key-file="+filepath.Join(dir, "apiserver.key"),
			"--client-ca-file="+caFile, "--authorization-mode=Node,RBAC",
			"--service-account-key-file="+saFile, "--service-account-signing-key-file="+saFile,
			"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
			"--service-cluster-ip-range=10.96.0.0/12", "--allow-privileged=true"); err != nil {
			return nil, err
		}
		err := waitHTTPS(server+"/readyz", caCert, k.admin, 60*time.Second)
		if err == nil {
			break
		}
		taken := k.bindFailed("etcd", k.etcdPort) || k.bindFailed("etcd", k.peerPort) || k.bindFailed("kube-apiserver", k.apiPort)
		k.stopProc("kube-apiserver")
		k.stopProc("etcd")
		if !taken || attempt == 3 {
			k.stop()
			return nil, fmt.Errorf("kube-apiserver: %w (logs in %s)", err, logs)
		}
		_ = os.RemoveAll(k.etcdData)
	}
	kubeconfig := func(name string, l *leaf) string {
		return write(name+".kubeconfig", []byte(kubeconfigText("lab", server, caCert, l.certPEM, l.keyPEM)))
	}
	adminKC := kubeconfig("admin", k.admin)
	if err := k.start("kube-controller-manager", "--kubeconfig="+kubeconfig("kcm", kcm),
		"--leader-elect=false", "--use-service-account-credentials", "--secure-port=0",
		"--service-account-private-key-file="+saFile, "--root-ca-file="+caFile,
		"--cluster-signing-cert-file="+caFile, "--cluster-signing-key-file="+filepath.Join(dir, "ca.key"),
		"--controllers=*,-nodeipam"); err != nil {
		return nil, err
	}
	if err := k.start("kube-scheduler", "--kubeconfig="+kubeconfig("scheduler", sched), "--leader-elect=false",
		"--authentication-kubeconfig="+filepath.Join(dir, "scheduler.kubeconfig"),
		"--authorization-kubeconfig="+filepath.Join(dir, "scheduler.kubeconfig"), "--secure-port=0"); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "kwok.yaml"), []byte(kwokStages()), 0o600); err != nil {
		return nil, err
	}
	if err := k.start("kwok", "--kubeconfig="+adminKC, "--config="+filepath.Join(dir, "kwok.yaml"),
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake", "--node-lease-duration-seconds=40",
		"--server-address="); err != nil {
		return nil, err
	}
	if k.rest, err = clientcmd.RESTConfigFromKubeConfig([]byte(kubeconfigText("lab", server, caCert, k.admin.certPEM, k.admin.keyPEM))); err != nil {
		return nil, err
	}
	k.rest.QPS, k.rest.Burst = 200, 400
	if k.client, err = kubernetes.NewForConfig(k.rest); err != nil {
		return nil, err
	}
	return k, nil
}

// bindFailed reports whether the named process's log says it could not listen on port.
func (k *kube) bindFailed(name string, port int) bool {
	b, _ := os.ReadFile(filepath.Join(k.dir, "logs", name+".log"))
	return strings.Contains(string(b), fmt.Sprintf("127.0.0.1:%d: bind: address already in use", port))
}

// startEtcd starts the real etcd on its data directory.
func (k *kube) startEtcd() error {
	return k.start("etcd", "--name=lab", "--data-dir="+k.etcdData, "--unsafe-no-fsync",
		fmt.Sprintf("--listen-client-urls=http://127.0.0.1:%d", k.etcdPort),
		fmt.Sprintf("--advertise-client-urls=http://127.0.0.1:%d", k.etcdPort),
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", k.peerPort),
		fmt.Sprintf("--initial-advertise-peer-urls=http://127.0.0.1:%d", k.peerPort),
		fmt.Sprintf("--initial-cluster=lab=http://127.0.0.1:%d", k.peerPort))
}

func (k *kube) start(name string, args ...string) error {
	k.mu.Lock()
	k.args[name] = args
	k.mu.Unlock()
	log, err := os.OpenFile(filepath.Join(k.dir, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(k.bin, name), args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Dir = k.dir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	k.mu.Lock()
	k.procs = append(k.procs, cmd)
	k.mu.Unlock()
	return nil
}

// stopProc stops the named process.
func (k *kube) stopProc(name string) {
	k.mu.Lock()
	var keep []*exec.Cmd
	var stop []*exec.Cmd
	for _, c := range k.procs {
		if filepath.Base(c.Path) == name {
			stop = append(stop, c)
		} else {
			keep = append(keep, c)
		}
	}
	k.procs = keep
	k.mu.Unlock()
	for _, c := range stop {
		_ = c.Process.Kill()
		_, _ = c.Process.Wait()
	}
}

// snapshot streams the real etcd's snapshot, as Talos's EtcdSnapshot does through its local etcd
// client (v1alpha1_server.go:1900-1934 at v1.11.5): clientv3's Maintenance.Snapshot, the bbolt
// database followed by its sha256.
func (k *kube) snapshot(ctx context.Context) (io.ReadCloser, error) {
	k.mu.Lock()
	data := k.etcdData
	k.mu.Unlock()
	if data == "" {
		return nil, errors.New("etcd is not running")
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{fmt.Sprintf("http://127.0.0.1:%d", k.etcdPort)}, DialTimeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	rc, err := c.Snapshot(ctx)
	if err != nil {
		c.Close()
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{rc, closers{rc, c}}, nil
}

type closers []io.Closer

func (cs closers) Close() error {
	var errs []error
	for _, c := range cs {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// destroyData stops the real etcd and deletes its data: the last member that held the cluster's
// data lost it.
func (k *kube) destroyData() {
	k.stopProc("etcd")
	k.mu.Lock()
	data := k.etcdData
	k.etcdData = ""
	k.mu.Unlock()
	if data != "" {
		_ = os.RemoveAll(data)
	}
}

// restore restores the real etcd from a snapshot with etcd's own restore (etcdutl snapshot
// restore, the snapshot.Restore that Talos's etcd service runs: etcd.go:545-576 at v1.11.5; the
// hash check skipped only when asked), into a new data directory, then starts etcd on it and the
// API server again (it ran against the lost data).
func (k *kube) restore(snapshot string, skipHashCheck bool) error {
	k.stopProc("etcd")
	data := filepath.Join(k.dir, fmt.Sprintf("etcd-restored-%d", time.Now().UnixNano()))
	args := []string{"snapshot", "restore", snapshot, "--data-dir", data, "--name", "lab",
		fmt.Sprintf("--initial-cluster=lab=http://127.0.0.1:%d", k.peerPort),
		fmt.Sprintf("--initial-advertise-peer-urls=http://127.0.0.1:%d", k.peerPort)}
	if skipHashCheck {
		args = append(args, "--skip-hash-check")
	}
	if out, err := exec.Command(filepath.Join(k.bin, "etcdutl"), args...).CombinedOutput(); err != nil {
		return fmt.Errorf("error verifying snapshot: %w: %s", err, strings.TrimSpace(string(out)))
	}
	k.mu.Lock()
	old := k.etcdData
	k.etcdData = data
	apiArgs := k.args["kube-apiserver"]
	k.mu.Unlock()
	if old != "" {
		_ = os.RemoveAll(old)
	}
	if err := k.startEtcd(); err != nil {
		return err
	}
	k.stopProc("kube-apiserver")
	if err := k.start("kube-apiserver", apiArgs...); err != nil {
		return err
	}
	return waitHTTPS(fmt.Sprintf("https://127.0.0.1:%d/readyz", k.apiPort), k.ca.certPEM, k.admin, 60*time.Second)
}

func (k *kube) stop() {
	k.mu.Lock()
	for _, p := range k.proxies {
		p.close()
	}
	k.mu.Unlock()
	for i := len(k.procs) - 1; i >= 0; i-- {
		_ = k.procs[i].Process.Kill()
		_, _ = k.procs[i].Process.Wait()
	}
}

// issueServing issues the API server's serving certificate for sans (addresses and names) and
// writes it where the API server reads it.
func (k *kube) issueServing(sans []string) (*leaf, error) {
	ips := []net.IP{net.ParseIP("127.0.0.1")}
	dns := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	for _, s := range sans {
		if ip := net.ParseIP(s); ip != nil {
			ips = append(ips, ip)
		} else if !slices.Contains(dns, s) {
			dns = append(dns, s)
		}
	}
	serving, err := k.ca.issue(leafSpec{cn: "kube-apiserver", ips: ips, dns: dns, usage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return nil, err
	}
	// Written aside and renamed into place, the key first: the API server reloads the pair as
	// either file changes, and reads no half-written file.
	for _, f := range []struct {
		name string
		b    []byte
	}{{"apiserver.key", serving.keyPEM}, {"apiserver.crt", serving.certPEM}} {
		tmp := filepath.Join(k.dir, "."+f.name)
		if err := os.WriteFile(tmp, f.b, 0o600); err != nil {
			return nil, err
		}
		if err := os.Rename(tmp, filepath.Join(k.dir, f.name)); err != nil {
			return nil, err
		}
	}
	k.mu.Lock()
	k.sans = slices.Clone(sans)
	k.mu.Unlock()
	return serving, nil
}

// serveSANs issues the serving certificate again when the names it must hold change, as Talos
// does when a control plane's SANs change (controllers/secrets/kubernetes_dynamic_certs.go:104-105,
// 152,194). kube-apiserver reloads --tls-cert-file and --tls-private-key-file as they change on disk
// (k8s.io/apiserver v0.35.8 pkg/server/options/serving.go:304, dynamiccertificates/
// dynamic_serving_content.go:131-188: an fsnotify watch, and a check every minute).
func (k *kube) serveSANs(sans []string) error {
	k.mu.Lock()
	same := slices.Equal(k.sans, sans)
	k.mu.Unlock()
	if same {
		return nil
	}
	_, err := k.issueServing(sans)
	return err
}

// serveAt makes the API server reachable at addr:6443 (a control plane's API server is up) or not.
func (k *kube) serveAt(addr string, up bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p := k.proxies[addr]
	if p == nil {
		var err error
		if p, err = newProxy(net.JoinHostPort(addr, "6443"), fmt.Sprintf("127.0.0.1:%d", k.apiPort)); err != nil {
			return
		}
		k.proxies[addr] = p
	}
	p.setUp(up)
}

func waitHTTPS(url string, caPEM []byte, client *leaf, timeout time.Duration) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsClientConfig(pool, client)}}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		resp, err := hc.Get(url)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		last = err
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s: %v", timeout, last)
}

// kubeconfigText is a kubeconfig with one cluster, user and context.
func kubeconfigText(name, server string, caPEM, certPEM, keyPEM []byte) string {
	enc := base64.StdEncoding.EncodeToString
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster:
    server: %[2]s
    certificate-authority-data: %[3]s
users:
- name: admin@%[1]s
  user:
    client-certificate-data: %[4]s
    client-key-data: %[5]s
contexts:
- name: admin@%[1]s
  context:
    cluster: %[1]s
    namespace: default
    user: admin@%[1]s
current-context: admin@%[1]s
`, name, server, enc(caPEM), enc(certPEM), enc(keyPEM))
}

// kwokStages are the lab's KWOK stages: KWOK plays every node's kubelet. A node the world marks
// down (label lab.homelab.dev/down, while it reboots or is off) reports Ready=False, and its pods
// (annotation lab.homelab.dev/down) report not ready; otherwise nodes are Ready and scheduled pods
// start after labtime.ContainerStart. A deleted pod lingers for its grace period, compressed, as
// a kubelet stopping its containers would keep it (the stock "fast" stage deletes at once, which
// hides pods that outlive their DaemonSet). A DaemonSet's pod lingers daemonSetPodLinger of wall
// time, not compressed: only a DaemonSet's own deletion deletes one (drains leave them), and the
// commands a script runs between that deletion and its check are not compressed either, so a
// compressed linger would end before a few kubectl calls do, where on hardware the pods outlast them.
const daemonSetPodLinger = 3 * time.Second

// deleteStage is the stage that removes a deleted pod after delay: those a DaemonSet owns (op In)
// or the others (op NotIn).
func deleteStage(name, op, delay string) string {
	return fmt.Sprintf(`---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: %s
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: '.metadata.deletionTimestamp', operator: Exists}
    - {key: '.metadata.ownerReferences.[].kind', operator: %s, values: [DaemonSet]}
  delay:
    durationMilliseconds: %s
  next:
    finalizers:
      empty: true
    delete: true
`, name, op, delay)
}

func kwokStages() string {
	ms := func(d time.Duration) string { return strconv.FormatInt(labtime.Lab(d).Milliseconds(), 10) }
	return strings.NewReplacer("$START", ms(labtime.ContainerStart), "$GRACE", ms(30*time.Second),
		"$DSGRACE", strconv.FormatInt(daemonSetPodLinger.Milliseconds(), 10)).Replace(`apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: lab-node-ready
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
    - {key: '.metadata.labels["lab.homelab.dev/down"]', operator: DoesNotExist}
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: NotIn
      values: ['True']
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      {{ range NodeConditions }}
      - lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $now | Quote }}
        message: {{ .message | Quote }}
        reason: {{ .reason | Quote }}
        status: {{ .status | Quote }}
        type: {{ .type | Quote }}
      {{ end }}
      phase: Running
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: lab-node-down
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
    - key: '.metadata.labels["lab.homelab.dev/down"]'
      operator: In
      values: ['true']
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: In
      values: ['True']
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      {{ range NodeConditions }}
      {{ if eq .type "Ready" }}
      - lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $now | Quote }}
        message: "lab: the node is down"
        reason: KubeletNotReady
        status: "False"
        type: Ready
      {{ else }}
      - lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $now | Quote }}
        message: {{ .message | Quote }}
        reason: {{ .reason | Quote }}
        status: {{ .status | Quote }}
        type: {{ .type | Quote }}
      {{ end }}
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: lab-pod-ready
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: '.metadata.deletionTimestamp', operator: DoesNotExist}
    - {key: '.spec.nodeName', operator: Exists}
    - {key: '.metadata.annotations["lab.homelab.dev/down"]', operator: DoesNotExist}
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: NotIn
      values: ['True']
  delay:
    durationMilliseconds: $START
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - {lastProbeTime: null, lastTransitionTime: {{ $now | Quote }}, status: "True", type: Initialized}
      - {lastProbeTime: null, lastTransitionTime: {{ $now | Quote }}, status: "True", type: Ready}
      - {lastProbeTime: null, lastTransitionTime: {{ $now | Quote }}, status: "True", type: ContainersReady}
      - {lastProbeTime: null, lastTransitionTime: {{ $now | Quote }}, status: "True", type: PodScheduled}
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        imageID: ""
        name: {{ .name | Quote }}
        ready: true
        restartCount: 0
        started: true
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
      hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
      hostIPs:
      - ip: {{ NodeIPWith .spec.nodeName | Quote }}
      podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}
      phase: Running
      startTime: {{ $now | Quote }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: lab-pod-down
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: '.metadata.deletionTimestamp', operator: DoesNotExist}
    - {key: '.metadata.annotations["lab.homelab.dev/down"]', operator: Exists}
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: In
      values: ['True']
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - {lastProbeTime: null, lastTransitionTime: {{ $now | Quote }}, status: "True", type: Initialized}
      - {lastProbeTime: null, lastTransitionTime: {{ $now | Quote }}, status: "False", reason: ContainersNotReady, type: Ready}
      - {lastProbeTime: null, lastTransitionTime: {{ $now | Quote }}, status: "False", reason: ContainersNotReady, type: ContainersReady}
      - {lastProbeTime: null, lastTransitionTime: {{ $now | Quote }}, status: "True", type: PodScheduled}
` + deleteStage("lab-pod-delete", "NotIn", "$GRACE") + deleteStage("lab-daemonset-pod-delete", "In", "$DSGRACE"))
}

// proxy forwards TCP connections from one address to another while it is up.
type tcpProxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	up     bool
	conns  map[net.Conn]bool
}

func newProxy(listen, target string) (*tcpProxy, error) {
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	p := &tcpProxy{l: l, target: target, conns: map[net.Conn]bool{}}
	go p.serve()
	return p, nil
}

func (p *tcpProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		up := p.up
		if up {
			p.conns[c] = true
		}
		p.mu.Unlock()
		if !up {
			// A node that is down refuses: close at once (a reset, as an unreachable port would).
			_ = c.Close()
			continue
		}
		go p.pipe(c)
	}
}

func (p *tcpProxy) pipe(c net.Conn) {
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		c.Close()
	}()
	t, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	defer t.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(t, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, t); done <- struct{}{} }()
	<-done
}

func (p *tcpProxy) setUp(up bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.up = up
	if !up {
		for c := range p.conns {
			_ = c.Close()
		}
	}
}

func (p *tcpProxy) close() { _ = p.l.Close(); p.setUp(false) }

var _ = context.Background
