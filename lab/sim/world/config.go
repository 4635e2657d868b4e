package world

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"github.com/siderolabs/talos/pkg/machinery/config/machine"
)

// machineConfig is a machine config as a node holds it: its bytes and Talos's own parse.
type machineConfig struct {
	bytes []byte
	p     config.Provider
}

// parseConfig loads a machine config with the loader Talos uses (configloader.NewFromBytes), so a
// config the real node would refuse to parse is refused here too.
func parseConfig(b []byte) (*machineConfig, error) {
	p, err := configloader.NewFromBytes(b)
	if err != nil {
		return nil, err
	}
	return &machineConfig{bytes: b, p: p}, nil
}

// hostname is the node's static hostname: a HostnameConfig document's from contract v1.12, else
// .machine.network.hostname (which the container falls back to: pkg/machinery/config/container/
// container.go:300-313 at v1.13.9).
func (c *machineConfig) hostname() string {
	if c == nil {
		return ""
	}
	if h := c.p.NetworkHostnameConfig(); h != nil {
		return h.Hostname()
	}
	return ""
}

func (c *machineConfig) controlPlane() bool {
	if c == nil || c.p.Machine() == nil {
		return false
	}
	t := c.p.Machine().Type()
	return t == machine.TypeControlPlane || t == machine.TypeInit
}

func (c *machineConfig) machineType() machine.Type {
	if c == nil || c.p.Machine() == nil {
		return machine.TypeUnknown
	}
	return c.p.Machine().Type()
}

// kubeletVersion is the version tag of machine.kubelet.image, the version the node's kubelet reports.
func (c *machineConfig) kubeletVersion() string {
	return imageTag(c.p.Machine().Kubelet().Image())
}

func imageTag(image string) string {
	ref, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return ""
	}
	if t, ok := ref.(reference.Tagged); ok {
		return t.Tag()
	}
	return ""
}

// installerImage is what an installer image reference says about the Talos it installs: the
// Image Factory's form factory.talos.dev/<platform>-installer[-secureboot]/<schematic>:<version>, or
// any other installer image (the vanilla schematic).
type installerImage struct {
	Ref        string `json:"ref"`
	Version    string `json:"version"`
	Schematic  string `json:"schematic"`
	SecureBoot bool   `json:"secureBoot"`
}

// vanillaSchematic is the Image Factory ID of the empty schematic (an image without extensions).
const vanillaSchematic = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"

func parseInstaller(image string) (installerImage, error) {
	ref, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return installerImage{}, fmt.Errorf("invalid installer image reference %q: %w", image, err)
	}
	t, ok := ref.(reference.Tagged)
	if !ok {
		return installerImage{}, fmt.Errorf("installer image %q has no version tag", image)
	}
	out := installerImage{Ref: image, Version: t.Tag(), Schematic: vanillaSchematic}
	path := reference.Path(ref)
	if reference.Domain(ref) == "factory.talos.dev" {
		parts := strings.Split(path, "/")
		if len(parts) == 2 && strings.Contains(parts[0], "installer") {
			out.Schematic = parts[1]
			out.SecureBoot = strings.HasSuffix(parts[0], "-secureboot")
		}
	}
	return out, nil
}
