# Kubernetes upgrade, run by `pulumi up` (never by a preview) as the create and update command of
# k8s-upgrade: after the health gate, before any node config that carries the new version is
# staged or applied. When the control plane or a kubelet runs another version than
# KUBERNETES_VERSION, `talosctl upgrade-k8s` upgrades them, one node at a time, with its own
# pre-checks; it patches every node's config to the new images, so the configs the program applies
# afterwards change nothing. A cluster already on the version is left alone, so a resumed run does
# not upgrade twice. Talos detects the running version the same way (its control-plane pods'
# images: pkg/cluster/kubernetes/detect.go:20-74 in Talos v1.11.5).
#
# Input (environment): KUBERNETES_VERSION, ENDPOINT (a control plane), TIMEOUT, TALOSCONFIG_DATA and
# KUBECONFIG_DATA (secrets).
setup talosctl kubectl
kube() { kubectl --kubeconfig "$work/kubeconfig" "$@"; }

apiservers=$(kube -n kube-system get pods -l k8s-app=kube-apiserver -o jsonpath='{range .items[*]}{.spec.containers[0].image}{"\n"}{end}' | sed 's/.*://' | sort -u)
kubelets=$(kube get nodes -o jsonpath='{range .items[*]}{.status.nodeInfo.kubeletVersion}{"\n"}{end}' | sort -u)
if [ "$apiservers" = "$KUBERNETES_VERSION" ] && [ "$kubelets" = "$KUBERNETES_VERSION" ]; then
  echo "Kubernetes runs $KUBERNETES_VERSION on every control plane and kubelet" >&2
else
  echo "upgrading Kubernetes (API servers: $(printf "%s " $apiservers), kubelets: $(printf "%s " $kubelets)) to $KUBERNETES_VERSION" >&2
  talosctl --talosconfig "$work/talosconfig" --endpoints "$ENDPOINT" --nodes "$ENDPOINT" \
    upgrade-k8s --to "${KUBERNETES_VERSION#v}" >&2
fi
echo "$KUBERNETES_VERSION"
