package world

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/siderolabs/talos/pkg/machinery/api/common"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"homelab/lab/simkit/labevent"
	"homelab/lab/simkit/labtime"
)

// The registries the lab's nodes pull from: the releases they serve. Talos's installer images
// come from the Image Factory for any schematic (factory.talos.dev/<kind>/<schematic>:<tag>), the
// Kubernetes images from registry.k8s.io and ghcr.io/siderolabs/kubelet. A tag a registry does not
// serve is NotFound, as a real registry answers.
var (
	talosReleases = map[string]bool{"v1.11.5": true, "v1.11.6": true, "v1.12.6": true, "v1.13.9": true}
	k8sReleases   = map[string]bool{"v1.34.1": true, "v1.34.2": true, "v1.35.8": true, "v1.36.5": true}
)

// Pull timing: a pull takes PullTime of hardware time; the retries of a pull that cannot reach
// its registry stop after Talos's PullTimeout (internal/pkg/containers/image/image.go:37-38 at
// v1.13.9, :28-29 at v1.11.5).
const (
	PullTime    = 20 * time.Second
	PullTimeout = 20 * time.Minute
)

// registryHas reports whether a registry serves ref.
func registryHas(ref string) bool {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return false
	}
	tagged, ok := named.(reference.Tagged)
	if !ok {
		return false
	}
	tag := tagged.Tag()
	switch domain, path := reference.Domain(named), reference.Path(named); {
	case domain == "factory.talos.dev" && strings.Contains(path, "installer"):
		return talosReleases[tag]
	case domain == "registry.k8s.io" && strings.HasPrefix(path, "kube-"):
		return k8sReleases[tag]
	case domain == "ghcr.io" && path == "siderolabs/kubelet":
		return k8sReleases[strings.TrimSuffix(strings.TrimSuffix(tag, "-fat"), "-slim")]
	}
	return true // the other images a cluster runs (CNI, add-ons): the lab does not model their tags
}

// pull is containerd pulling ref onto the node, as Talos's image.Pull does with
// WithSkipIfAlreadyPulled and the caller's not-found retries (image.go:120-200 at v1.13.9): an
// image already in the node's store is not pulled again; a tag the registry does not serve fails
// NotFound at once (MaxNotFoundRetries 0 for the pull APIs, 1 for the installer); a node that
// cannot reach the registry retries until PullTimeout, then fails.
func (n *Node) pull(ctx context.Context, ref string) error {
	n.mu.Lock()
	have, off := n.images[ref], n.registryDown
	n.mu.Unlock()
	if have {
		return nil
	}
	start := time.Now()
	if off {
		select {
		case <-time.After(labtime.Lab(PullTimeout)):
		case <-ctx.Done():
			return ctx.Err()
		}
		n.log("pull-failed", ref, start, PullTimeout)
		return fmt.Errorf("failed to pull image %q: failed to resolve reference %q: dial tcp: lookup %s: i/o timeout", ref, ref, strings.Split(ref, "/")[0])
	}
	if !registryHas(ref) {
		return status.Errorf(codes.NotFound, "error pulling image: failed to resolve reference %q: %s: not found", ref, ref)
	}
	select {
	case <-time.After(labtime.Lab(PullTime)):
	case <-ctx.Done():
		return ctx.Err()
	}
	n.mu.Lock()
	n.images[ref] = true
	n.mu.Unlock()
	n.log("pull", ref, start, PullTime)
	return nil
}

// ImagePull is the machine API's pull into the CRI (v1alpha1_images.go:82-112 at v1.12.6, :86 at
// v1.13.9, deprecated there for ImageService.Pull): talosctl upgrade-k8s pre-pulls with it.
func (s *machineServer) ImagePull(ctx context.Context, in *machine.ImagePullRequest) (*machine.ImagePullResponse, error) {
	if err := s.node().pull(ctx, in.GetReference()); err != nil {
		return nil, err
	}
	return &machine.ImagePullResponse{Messages: []*machine.ImagePull{{}}}, nil
}

// imageServer is Talos 1.13's ImageService (internal/app/images/images.go at v1.13.9): the pull
// talosctl upgrade uses before LifecycleService.Upgrade.
type imageServer struct {
	machine.UnimplementedImageServiceServer
	rt *bootRuntime
}

// Pull follows images.go:88-145: the pull, then the image's name, pinned to its digest.
func (s *imageServer) Pull(in *machine.ImageServicePullRequest, srv grpc.ServerStreamingServer[machine.ImageServicePullResponse]) error {
	ref := in.GetImageRef()
	if err := s.rt.n.pull(srv.Context(), ref); err != nil {
		return err
	}
	return srv.Send(&machine.ImageServicePullResponse{Response: &machine.ImageServicePullResponse_Name{Name: pinned(ref)}})
}

// List reports what the node's store holds.
func (s *imageServer) List(_ *machine.ImageServiceListRequest, srv grpc.ServerStreamingServer[machine.ImageServiceListResponse]) error {
	s.rt.n.mu.Lock()
	refs := make([]string, 0, len(s.rt.n.images))
	for r := range s.rt.n.images {
		refs = append(refs, r)
	}
	s.rt.n.mu.Unlock()
	for _, r := range refs {
		if err := srv.Send(&machine.ImageServiceListResponse{Name: r}); err != nil {
			return err
		}
	}
	return nil
}

// Remove drops an image from the node's store.
func (s *imageServer) Remove(_ context.Context, in *machine.ImageServiceRemoveRequest) (*emptypb.Empty, error) {
	s.rt.n.mu.Lock()
	delete(s.rt.n.images, in.GetImageRef())
	s.rt.n.mu.Unlock()
	return &emptypb.Empty{}, nil
}

// pinned is a reference pinned to a digest the lab derives from its name.
func pinned(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ref
	}
	return named.Name() + "@sha256:" + fmt.Sprintf("%064x", fnv(ref))
}

func fnv(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// stored reports whether the node's store holds ref, or the image a pinned name stands for.
func (n *Node) stored(ref string) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.images[ref] {
		return ref, true
	}
	for r := range n.images {
		if pinned(r) == ref {
			return r, true
		}
	}
	return "", false
}

// setRegistryDown cuts the node off its registries (a broken mirror, a firewall) or restores them.
func (n *Node) setRegistryDown(down bool) {
	n.mu.Lock()
	n.registryDown = down
	n.mu.Unlock()
	labevent.Log(n.w.Dir, labevent.Event{Actor: "talos-node", Op: map[bool]string{true: "registry-down", false: "registry-up"}[down], Node: n.Addr})
}

var (
	_ = common.Code_FATAL
	_ = errors.New
)
