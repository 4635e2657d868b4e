package world

import (
	"errors"
	"fmt"
	"reflect"

	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/config/configdiff"
	"github.com/siderolabs/talos/pkg/machinery/config/container"
	"github.com/siderolabs/talos/pkg/machinery/config/types/v1alpha1"
)

// canApplyImmediate decides whether a running node can take next without a reboot, as Talos
// v1.11.5's Runtime.CanApplyImmediate does
// (internal/app/machined/pkg/runtime/v1alpha1/v1alpha1_runtime.go:118-206): only the v1alpha1
// document is compared; the fields Talos applies live are copied from the running config into a
// copy of the new one, and anything still different needs a reboot. The error text is Talos's.
func canApplyImmediate(running, next config.Provider) error {
	if running == nil {
		return errors.New("no current config") // :120-123
	}
	cur := running.RawV1Alpha1()
	if cur == nil {
		return errors.New("current config is not v1alpha1") // :125-128
	}
	nw := next.RawV1Alpha1()
	if nw == nil {
		return errors.New("new config is not v1alpha1") // :130-133
	}
	nw = nw.DeepCopy() // :136
	for _, live := range liveFields(cur, nw) {
		live()
	}
	if !reflect.DeepEqual(cur, nw) { // :196
		diff, err := configdiff.DiffConfigs(container.NewV1Alpha1(cur), container.NewV1Alpha1(nw))
		if err != nil {
			return fmt.Errorf("error calculating diff: %w", err)
		}
		return fmt.Errorf("this config change can't be applied in immediate mode\ndiff:\n%s", diff) // :202
	}
	return nil
}

// liveFields lists, as assignments from cur into nw, the fields v1alpha1_runtime.go:164-193
// allows to change live: .debug and the whole .cluster (:164-165); under .machine, when both
// configs have one (:167), ca, acceptedCAs, time, certSANs, install, network, sysfs, sysctls,
// logging, controlPlane, kubelet, kernel, registries, pods, seccompProfiles, nodeAnnotations,
// nodeLabels and nodeTaints (:168-185); under .machine.features, when both have it (:187),
// kubernetesTalosAPIAccess, kubePrism, hostDNS, imageCache and nodeAddressSortAlgorithm (:188-192).
func liveFields(cur, nw *v1alpha1.Config) []func() {
	out := []func(){
		func() { nw.ConfigDebug = cur.ConfigDebug },
		func() { nw.ClusterConfig = cur.ClusterConfig },
	}
	cm, nm := cur.MachineConfig, nw.MachineConfig
	if cm == nil || nm == nil {
		return out
	}
	out = append(out,
		func() { nm.MachineCA = cm.MachineCA },
		func() { nm.MachineAcceptedCAs = cm.MachineAcceptedCAs },
		func() { nm.MachineTime = cm.MachineTime },
		func() { nm.MachineCertSANs = cm.MachineCertSANs },
		func() { nm.MachineInstall = cm.MachineInstall },
		func() { nm.MachineNetwork = cm.MachineNetwork },
		func() { nm.MachineSysfs = cm.MachineSysfs },
		func() { nm.MachineSysctls = cm.MachineSysctls },
		func() { nm.MachineLogging = cm.MachineLogging },
		func() { nm.MachineControlPlane = cm.MachineControlPlane },
		func() { nm.MachineKubelet = cm.MachineKubelet },
		func() { nm.MachineKernel = cm.MachineKernel },
		func() { nm.MachineRegistries = cm.MachineRegistries },
		func() { nm.MachinePods = cm.MachinePods },
		func() { nm.MachineSeccompProfiles = cm.MachineSeccompProfiles },
		func() { nm.MachineNodeAnnotations = cm.MachineNodeAnnotations },
		func() { nm.MachineNodeLabels = cm.MachineNodeLabels },
		func() { nm.MachineNodeTaints = cm.MachineNodeTaints },
	)
	cf, nf := cm.MachineFeatures, nm.MachineFeatures
	if cf == nil || nf == nil {
		return out
	}
	return append(out,
		func() { nf.KubernetesTalosAPIAccessConfig = cf.KubernetesTalosAPIAccessConfig },
		func() { nf.KubePrismSupport = cf.KubePrismSupport },
		func() { nf.HostDNSSupport = cf.HostDNSSupport },
		func() { nf.ImageCacheSupport = cf.ImageCacheSupport },
		func() { nf.FeatureNodeAddressSortAlgorithm = cf.FeatureNodeAddressSortAlgorithm },
	)
}
