// Package manifests loads the Kubernetes data under src/bootstrap: the vendored Gateway API CRDs
// (checked against their lock file), the Cilium values and the L2 announcement objects. It decodes
// YAML into plain Objects that components register; it needs no Kubernetes SDK.
package manifests

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"homelab/internal/stackconfig"
	"homelab/src"
)

// Paths inside src/.
const (
	GatewayAPIDir = "bootstrap/gateway-api"
	CiliumValues  = "bootstrap/cilium/values.yaml"
	L2File        = "bootstrap/cilium/l2.yaml"
	// VendorCommand is how a Gateway API release gets into src/.
	VendorCommand = "scripts/vendor-gateway-api"
)

// Object is one Kubernetes object read from a manifest.
type Object struct {
	// Source is the file under src/ the object comes from.
	Source              string
	APIVersion, Kind    string
	Name, Namespace     string
	Labels, Annotations map[string]string
	// Fields holds every top-level field but apiVersion, kind, metadata and status.
	Fields map[string]any
}

// Decode reads every YAML document of a manifest file. Metadata may hold only name, namespace,
// labels and annotations (null fields such as creationTimestamp are dropped); status is dropped.
func Decode(source string, data []byte) ([]Object, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []Object
	for i := 1; ; i++ {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("src/%s: document %d: %w", source, i, err)
		}
		if doc == nil {
			continue
		}
		obj, err := ToObject(source, doc)
		if err != nil {
			return nil, fmt.Errorf("src/%s: document %d: %w", source, i, err)
		}
		out = append(out, obj)
	}
}

// ToObject turns one decoded manifest document into an Object. Metadata may hold only name,
// namespace, labels and annotations (null fields are dropped); status is dropped.
func ToObject(source string, doc map[string]any) (Object, error) {
	o := Object{Source: source, Fields: map[string]any{}}
	var ok bool
	if o.APIVersion, ok = doc["apiVersion"].(string); !ok || o.APIVersion == "" {
		return o, fmt.Errorf("apiVersion is missing")
	}
	if o.Kind, ok = doc["kind"].(string); !ok || o.Kind == "" {
		return o, fmt.Errorf("kind is missing")
	}
	meta, _ := doc["metadata"].(map[string]any)
	for k, v := range meta {
		switch k {
		case "name":
			o.Name, _ = v.(string)
		case "namespace":
			o.Namespace, _ = v.(string)
		case "labels":
			o.Labels = stringMap(v)
		case "annotations":
			o.Annotations = stringMap(v)
		default:
			if v != nil {
				return o, fmt.Errorf("metadata.%s is not supported in a manifest here; remove it", k)
			}
		}
	}
	if o.Name == "" {
		return o, fmt.Errorf("%s has no metadata.name", o.Kind)
	}
	for k, v := range doc {
		switch k {
		case "apiVersion", "kind", "metadata", "status":
		default:
			o.Fields[k] = v
		}
	}
	return o, nil
}

func stringMap(v any) map[string]string {
	m, _ := v.(map[string]any)
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, val := range m {
		out[k] = fmt.Sprint(val)
	}
	return out
}

// GatewayAPICRDs returns the CRDs of a vendored Gateway API release, after checking every file
// against <version>.lock.yaml. A missing release fails with the command that vendors it.
func GatewayAPICRDs(fsys fs.FS, version string) ([]Object, error) {
	lockPath := path.Join(GatewayAPIDir, version+".lock.yaml")
	vendor := fmt.Sprintf("run `%s %s` and commit src/%s/%s/ and its lock file", VendorCommand, version, GatewayAPIDir, version)
	lockData, err := fs.ReadFile(fsys, lockPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("homelab:networking.gatewayAPI.version is %s, but src/%s is missing: %s", version, lockPath, vendor)
	}
	if err != nil {
		return nil, fmt.Errorf("src/%s: %w", lockPath, err)
	}
	var lock struct {
		Version string            `yaml:"version"`
		Files   map[string]string `yaml:"files"`
	}
	if err := yaml.Unmarshal(lockData, &lock); err != nil {
		return nil, fmt.Errorf("src/%s: %w", lockPath, err)
	}
	if lock.Version != version || len(lock.Files) == 0 {
		return nil, fmt.Errorf("src/%s does not describe release %s: %s", lockPath, version, vendor)
	}
	dir := path.Join(GatewayAPIDir, version)
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("src/%s: %w", dir, err)
	}
	present := map[string]bool{}
	for _, e := range entries {
		if !e.IsDir() {
			present[e.Name()] = true
		}
	}
	names := make([]string, 0, len(lock.Files))
	for name := range lock.Files {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []Object
	var problems []string
	for _, name := range names {
		file := path.Join(dir, name)
		delete(present, name)
		data, err := fs.ReadFile(fsys, file)
		if errors.Is(err, fs.ErrNotExist) {
			problems = append(problems, fmt.Sprintf("src/%s is missing", file))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("src/%s: %w", file, err)
		}
		sum := sha256.Sum256(data)
		if got := "sha256:" + hex.EncodeToString(sum[:]); got != lock.Files[name] {
			problems = append(problems, fmt.Sprintf("src/%s has %s, the lock says %s", file, got, lock.Files[name]))
			continue
		}
		objs, err := Decode(file, data)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			if o.Kind != "CustomResourceDefinition" {
				return nil, fmt.Errorf("src/%s holds a %s; only CRDs belong there", file, o.Kind)
			}
		}
		out = append(out, objs...)
	}
	for name := range present {
		problems = append(problems, fmt.Sprintf("src/%s/%s is not in the lock", dir, name))
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("the Gateway API CRDs of %s do not match src/%s (vendored files are never edited by hand): %s; %s",
			version, lockPath, strings.Join(problems, "; "), vendor)
	}
	return out, nil
}

// L2Objects returns the load-balancer IP pool, its blocks set to the stack's range, and the L2
// announcement policy.
func L2Objects(fsys fs.FS, pool stackconfig.AddressRange) ([]Object, error) {
	data, err := fs.ReadFile(fsys, L2File)
	if err != nil {
		return nil, fmt.Errorf("src/%s: %w", L2File, err)
	}
	objs, err := Decode(L2File, data)
	if err != nil {
		return nil, err
	}
	found := false
	for i := range objs {
		if objs[i].Kind == "CiliumLoadBalancerIPPool" {
			spec, _ := objs[i].Fields["spec"].(map[string]any)
			if spec == nil {
				spec = map[string]any{}
				objs[i].Fields["spec"] = spec
			}
			spec["blocks"] = []any{map[string]any{"start": pool.Start, "stop": pool.Stop}}
			found = true
		}
	}
	if !found {
		return nil, fmt.Errorf("src/%s has no CiliumLoadBalancerIPPool for homelab:networking.loadBalancerPool", L2File)
	}
	return objs, nil
}

// ReadValues returns a Helm values file, checked to be a YAML mapping.
func ReadValues(fsys fs.FS, name string) (string, error) {
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		return "", fmt.Errorf("src/%s: %w", name, err)
	}
	var values map[string]any
	if err := yaml.Unmarshal(data, &values); err != nil {
		return "", fmt.Errorf("src/%s: not a YAML mapping of Helm values: %w", name, err)
	}
	return string(data), nil
}

// CleanupScript deletes what Talos leaves of Flannel and kube-proxy after the CNI handover.
const CleanupScript = "bootstrap/cni-cleanup.sh"

// Networking is the networking data of one stack, loaded and checked.
type Networking struct {
	// GatewayAPICRDs are the vendored CRDs of the pinned release.
	GatewayAPICRDs []Object
	// CiliumValues is the text of src/bootstrap/cilium/values.yaml.
	CiliumValues string
	// L2 holds the pool and announcement policy; empty without a pool in the stack file.
	L2 []Object
	// CleanupScript is src/bootstrap/cni-cleanup.sh after the shared preamble.
	CleanupScript string
}

// Load reads everything the networking components need, reporting every problem at once.
func Load(fsys fs.FS, cfg stackconfig.Networking) (*Networking, error) {
	n := &Networking{}
	var errs []error
	var err error
	if n.GatewayAPICRDs, err = GatewayAPICRDs(fsys, cfg.GatewayAPI.Version); err != nil {
		errs = append(errs, err)
	}
	if n.CiliumValues, err = ReadValues(fsys, CiliumValues); err != nil {
		errs = append(errs, err)
	}
	if cfg.LoadBalancerPool != nil {
		if n.L2, err = L2Objects(fsys, *cfg.LoadBalancerPool); err != nil {
			errs = append(errs, err)
		}
	}
	if n.CleanupScript, err = src.Script(fsys, CleanupScript); err != nil {
		errs = append(errs, err)
	}
	return n, errors.Join(errs...)
}
