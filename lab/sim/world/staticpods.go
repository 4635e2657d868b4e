package world

import (
	"fmt"
	"sort"
	"strings"

	"github.com/siderolabs/talos/pkg/machinery/resources/k8s"
)

// Talos renders the control plane's static pods with these command lines: its own defaults,
// merged with the component's extraArgs from .cluster (control_plane_static_pod.go:352-436 for the
// API server, :580-615 for the controller manager, :760-790 for the scheduler, at v1.13.9; the
// same keys at v1.11.5 and v1.12.6), then written as sorted --key=value arguments
// (argsbuilder.Args.Args). Paths and values that no check reads are shortened; the keys are
// Talos's, which is what go-kubernetes's removed-flag checks compare
// (kubernetes/upgrade/checks.go:427-441 at v0.2.38).
var staticPodDefaults = map[string]map[string]string{
	k8s.APIServerID: {
		"admission-control-config-file": "/system/config/kube-apiserver/admission-control-config.yaml",
		"allow-privileged":              "true", "anonymous-auth": "false", "bind-address": "0.0.0.0",
		"client-ca-file":                     "/system/secrets/kubernetes/kube-apiserver/ca.crt",
		"enable-admission-plugins":           "NodeRestriction",
		"requestheader-allowed-names":        "front-proxy-client",
		"requestheader-extra-headers-prefix": "X-Remote-Extra-", "requestheader-group-headers": "X-Remote-Group",
		"requestheader-username-headers": "X-Remote-User", "enable-bootstrap-token-auth": "true",
		"tls-min-version": "VersionTLS12", "audit-log-maxage": "30", "audit-log-maxbackup": "10", "audit-log-maxsize": "100",
		"profiling": "false", "secure-port": "6443", "kubelet-preferred-address-types": "InternalIP,ExternalIP,Hostname",
		"service-cluster-ip-range": "10.96.0.0/12", "authorization-mode": "Node,RBAC",
	},
	k8s.ControllerManagerID: {
		"allocate-node-cidrs": "true", "bind-address": "127.0.0.1", "cluster-cidr": "10.244.0.0/16",
		"service-cluster-ip-range": "10.96.0.0/12", "controllers": "*,tokencleaner", "configure-cloud-routes": "false",
		"leader-elect": "true", "profiling": "false", "tls-min-version": "VersionTLS13",
	},
	k8s.SchedulerID: {
		"config": "/system/config/kube-scheduler/scheduler-config.yaml", "authentication-tolerate-lookup-failure": "false",
		"bind-address": "127.0.0.1", "leader-elect": "true", "profiling": "false", "tls-min-version": "VersionTLS13",
	},
}

// commandLine is a component's command: its binary, then Talos's defaults merged with extraArgs.
func commandLine(id string, extra map[string][]string) []string {
	args := map[string]string{}
	for k, v := range staticPodDefaults[id] {
		args[k] = v
	}
	for k, v := range extra {
		args[k] = strings.Join(v, ",")
	}
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := []string{"/usr/local/bin/" + id}
	for _, k := range keys {
		out = append(out, fmt.Sprintf("--%s=%s", k, args[k]))
	}
	return out
}

// staticPod is the pod of a StaticPod resource (its spec.pod): what upgrade-k8s's checks read.
func staticPod(id, image string, command []string) map[string]any {
	cmd := make([]any, len(command))
	for i, c := range command {
		cmd[i] = c
	}
	return map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": id, "namespace": "kube-system",
			"labels": map[string]any{"tier": "control-plane", "k8s-app": id, "component": id}},
		"spec": map[string]any{"hostNetwork": true, "priorityClassName": "system-cluster-critical",
			"containers": []any{map[string]any{"name": id, "image": image, "command": cmd}}},
	}
}

// kubeletArgs are the kubelet's arguments as the KubeletSpec carries them: Talos's own
// (controllers/k8s/kubelet_spec.go, the keys that change with the config) and machine.kubelet's
// extraArgs, which upgrade-k8s checks for flags the next Kubernetes removes (checks.go:398-414 at
// v0.2.38).
func kubeletArgs(cfg *machineConfig) []string {
	args := map[string]string{
		"bootstrap-kubeconfig": "/etc/kubernetes/bootstrap-kubeconfig", "kubeconfig": "/etc/kubernetes/kubeconfig-kubelet",
		"config": "/etc/kubernetes/kubelet.yaml", "cert-dir": "/var/lib/kubelet/pki", "hostname-override": cfg.hostname(),
		"node-ip": "", "node-labels": "",
	}
	for k, v := range cfg.p.Machine().Kubelet().ExtraArgs() {
		args[k] = strings.Join(v, ",")
	}
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, fmt.Sprintf("--%s=%s", k, args[k]))
	}
	return out
}
