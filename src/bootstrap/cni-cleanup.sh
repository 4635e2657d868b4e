# Clean-up after the CNI handover, run by `pulumi up` (never by a preview) once every node runs its
# final config. Talos only ever creates its bootstrap manifests: switching to `cni: none` and
# `proxy.disabled` leaves Flannel and kube-proxy running. Delete them, then prove that only Cilium
# remains. Every step is idempotent: on a cluster that never ran them (adopted) it only checks.
#
# Input (environment): TIMEOUT, KUBECONFIG_DATA (secret; written to a private temporary directory
# that is removed on exit).
setup kubectl
kube() { kubectl --kubeconfig "$work/kubeconfig" "$@"; }

# Foreground cascade: the DaemonSets go only once their pods are gone, and --wait waits for that.
# (The default, background, returns while the pods still terminate, and the check below fails.)
kube -n kube-system delete daemonset kube-flannel kube-proxy --ignore-not-found --cascade=foreground --wait=true --timeout "$TIMEOUT" >&2
kube -n kube-system delete configmap kube-flannel-cfg --ignore-not-found >&2
kube -n kube-system delete serviceaccount flannel kube-proxy --ignore-not-found >&2
kube delete clusterrolebinding flannel kube-proxy --ignore-not-found >&2
kube delete clusterrole flannel --ignore-not-found >&2

# The proof: no Flannel or kube-proxy DaemonSet or pod is left, and Cilium runs on every node.
left=$(kube -n kube-system get daemonsets,pods -o name | grep -E '/(kube-flannel|kube-proxy)' || true)
if [ -n "$left" ]; then
  echo "still present after the clean-up:" >&2
  echo "$left" >&2
  exit 1
fi
kube -n kube-system rollout status daemonset/cilium --timeout "$TIMEOUT" >&2
echo "only Cilium remains: no kube-flannel or kube-proxy DaemonSet or pod in kube-system"
