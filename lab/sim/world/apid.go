package world

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/siderolabs/grpc-proxy/proxy"
	"github.com/siderolabs/talos/pkg/grpc/middleware/authz"
	"github.com/siderolabs/talos/pkg/grpc/proxy/backend"
	"github.com/siderolabs/talos/pkg/machinery/api/common"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// apid is a node's API gateway, as Talos's apid (internal/app/apid): every request to
// <node>:50000 (mutual TLS under the cluster's OS CA) or to the node's API socket goes through the
// same director, which sends it to the node's own machined, or forwards it to other nodes' apid
// (one-to-one for the "node" metadata key, one-to-many with reply metadata for "nodes"). A worker
// has no client certificate for other nodes, so it forwards nothing.
type apid struct {
	n        *Node
	streamed []*regexp.Regexp
	local    proxy.Backend
	remote   func(target string) (proxy.Backend, error) // nil on workers
	mu       sync.Mutex
	conns    map[string]*apidBackend
}

// streamedMethods are the streaming methods apid registers with the proxy
// (internal/app/apid/main.go:128-147 at v1.11.5 and v1.12.6; internal/app/apid/service.go:83-103
// at v1.13.9, which adds DebugContainer and the LifecycleService calls).
func streamedMethods(r release) []*regexp.Regexp {
	methods := []string{
		"/machine.MachineService/Copy", "/machine.MachineService/DiskUsage", "/machine.MachineService/Dmesg",
		"/machine.MachineService/EtcdSnapshot", "/machine.MachineService/Events", "/machine.MachineService/ImageList",
		"/machine.MachineService/Kubeconfig", "/machine.MachineService/List", "/machine.MachineService/Logs",
		"/machine.MachineService/PacketCapture", "/machine.MachineService/Read", "/os.OSService/Dmesg",
		"/cluster.ClusterService/HealthCheck",
	}
	if r.hasLifecycleAPI() {
		methods = append(methods, "/machine.MachineService/DebugContainer", "/machine.LifecycleService/Install", "/machine.LifecycleService/Upgrade")
	}
	var out []*regexp.Regexp
	for _, m := range methods {
		out = append(out, regexp.MustCompile("^"+regexp.QuoteMeta(m)+"$"))
	}
	return append(out, regexp.MustCompile("Stream$"))
}

func newAPID(n *Node, machinedSocket string, clientCert *tls.Certificate, pool *x509.CertPool, streamed []*regexp.Regexp) *apid {
	a := &apid{n: n, streamed: streamed, local: backend.NewLocal("machined", machinedSocket), conns: map[string]*apidBackend{}}
	if clientCert != nil {
		a.remote = func(target string) (proxy.Backend, error) {
			// Basic validation, as NewAPID does (internal/app/apid/pkg/backend/apid.go:53-63).
			if target == "" || strings.Contains(target, ":") && net.ParseIP(target) == nil {
				return nil, fmt.Errorf("invalid target %q", target)
			}
			a.mu.Lock()
			defer a.mu.Unlock()
			if b, ok := a.conns[target]; ok {
				return b, nil
			}
			b := &apidBackend{target: target, tls: &tls.Config{Certificates: []tls.Certificate{*clientCert}, RootCAs: pool, ServerName: target}}
			a.conns[target] = b
			return b, nil
		}
	}
	return a
}

func (a *apid) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, b := range a.conns {
		b.close()
	}
}

// isLocal follows the local address provider: the node's addresses and hostname
// (internal/app/apid/pkg/director/local_address.go:31-47,84-92).
func (a *apid) isLocal(target string) bool {
	if target == a.n.Addr {
		return true
	}
	a.n.mu.Lock()
	defer a.n.mu.Unlock()
	return a.n.active != nil && target == a.n.active.hostname()
}

// director routes one call (internal/app/apid/pkg/director/director.go:50-128).
func (a *apid) director(ctx context.Context, method string) (proxy.Mode, []proxy.Backend, error) {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return proxy.One2One, []proxy.Backend{a.local}, nil
	}
	if _, from := md["proxyfrom"]; from {
		return proxy.One2One, []proxy.Backend{a.local}, nil
	}
	nodes, okNodes := md["nodes"]
	node, okNode := md["node"]
	if okNode && len(node) != 1 {
		return proxy.One2One, nil, status.Error(codes.InvalidArgument, "node metadata must be single-valued")
	}
	if a.remote == nil { // :67-78
		if okNode && a.isLocal(node[0]) {
			okNode = false
		}
		if okNodes && len(nodes) == 1 && a.isLocal(nodes[0]) {
			okNodes = false
		}
	}
	switch {
	case okNodes:
		if strings.HasPrefix(method, "/cosi.") {
			return proxy.One2One, nil, status.Error(codes.InvalidArgument, "one-2-many proxying is not supported for COSI methods")
		}
		if a.remote == nil {
			return proxy.One2One, nil, status.Error(codes.PermissionDenied, "no request forwarding")
		}
		backends := make([]proxy.Backend, len(nodes))
		for i, t := range nodes {
			b, err := a.remote(t)
			if err != nil {
				return proxy.One2Many, nil, status.Error(codes.Internal, err.Error())
			}
			backends[i] = b
		}
		return proxy.One2Many, backends, nil
	case okNode:
		if a.remote == nil {
			return proxy.One2One, nil, status.Error(codes.PermissionDenied, "no request forwarding")
		}
		b, err := a.remote(node[0])
		if err != nil {
			return proxy.One2One, nil, status.Error(codes.Internal, err.Error())
		}
		return proxy.One2One, []proxy.Backend{b}, nil
	default:
		return proxy.One2One, []proxy.Backend{a.local}, nil
	}
}

func (a *apid) streamedDetector(method string) bool {
	return slices.ContainsFunc(a.streamed, func(re *regexp.Regexp) bool { return re.MatchString(method) })
}

// server builds apid's gRPC server: TLS credentials for the network listener, none for the socket.
// The network listener takes roles from the client certificate (RBAC enabled), the socket from
// the request's metadata (internal/app/apid/main.go:168-228).
func (a *apid) server(creds credentials.TransportCredentials) *grpc.Server {
	injector := &authz.Injector{Mode: authz.MetadataOnly}
	opts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(proxy.Codec()),
		grpc.UnknownServiceHandler(proxy.TransparentHandler(a.director, proxy.WithStreamedDetector(a.streamedDetector))),
	}
	if creds != nil {
		opts = append(opts, grpc.Creds(creds))
		injector = &authz.Injector{Mode: authz.Enabled}
	}
	opts = append(opts, grpc.UnaryInterceptor(injector.UnaryInterceptor()), grpc.StreamInterceptor(injector.StreamInterceptor()))
	return grpc.NewServer(opts...)
}

// apidBackend forwards to another node's apid, as Talos's APID backend
// (internal/app/apid/pkg/backend/apid.go:40-257).
type apidBackend struct {
	target string
	tls    *tls.Config
	mu     sync.Mutex
	conn   *grpc.ClientConn
}

func (b *apidBackend) String() string { return b.target }

// GetConnection copies the incoming metadata, marks it proxied and drops the routing keys (:70-86).
func (b *apidBackend) GetConnection(ctx context.Context, _ string) (context.Context, *grpc.ClientConn, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	md = md.Copy()
	authz.SetMetadata(md, authz.GetRoles(ctx))
	if authority := md[":authority"]; len(authority) > 0 {
		md.Set("proxyfrom", authority...)
	} else {
		md.Set("proxyfrom", "unknown")
	}
	delete(md, ":authority")
	delete(md, "nodes")
	delete(md, "node")
	out := metadata.NewOutgoingContext(ctx, md)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn != nil {
		return out, b.conn, nil
	}
	bo := backoff.DefaultConfig
	bo.MaxDelay = 15 * time.Second // :104-105
	var err error
	b.conn, err = grpc.NewClient(net.JoinHostPort(b.target, "50000"),
		grpc.WithTransportCredentials(credentials.NewTLS(b.tls)),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: 20 * time.Second}),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(proxy.Codec())),
	)
	return out, b.conn, err
}

// AppendInfo adds Metadata{hostname: target} to each reply (:173-218).
func (b *apidBackend) AppendInfo(streaming bool, resp []byte) ([]byte, error) {
	payload, err := proto.Marshal(&common.Empty{Metadata: &common.Metadata{Hostname: b.target}})
	if streaming {
		return append(resp, payload...), err
	}
	const field, wire = 1, 2
	typ, n1 := protowire.ConsumeVarint(resp)
	if n1 < 0 {
		return nil, protowire.ParseError(n1)
	}
	_, n2 := protowire.ConsumeVarint(resp[n1:])
	if n2 < 0 {
		return nil, protowire.ParseError(n2)
	}
	if typ != (field<<3)|wire {
		return nil, fmt.Errorf("unexpected message format: %d", typ)
	}
	if n1+n2 > len(resp) {
		return nil, fmt.Errorf("unexpected message size: %d", len(resp))
	}
	resp = resp[n1+n2:]
	prefix := protowire.AppendVarint(protowire.AppendVarint(nil, (field<<3)|wire), uint64(len(resp)+len(payload)))
	return slices.Concat(prefix, resp, payload), err
}

// BuildError turns a backend's failure into a reply carrying it (:239-257).
func (b *apidBackend) BuildError(streaming bool, err error) ([]byte, error) {
	var resp proto.Message = &common.Empty{Metadata: &common.Metadata{Hostname: b.target, Error: err.Error(), Status: status.Convert(err).Proto()}}
	if !streaming {
		resp = &common.EmptyResponse{Messages: []*common.Empty{resp.(*common.Empty)}}
	}
	return proto.Marshal(resp)
}

func (b *apidBackend) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn != nil {
		_ = b.conn.Close()
		b.conn = nil
	}
}
