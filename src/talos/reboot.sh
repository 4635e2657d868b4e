# Rollout gate of one node, run by `pulumi up` (never by a preview) as the create and update
# command of the node's reboot resource. The node's new config is already staged.
#
# 1. Reboot the node if its reboot settings (src/talos/reboot.yaml) differ from the ones it last
#    booted with: the previous run's output, or on the first run the settings it was installed with.
# 2. Wait until the node is healthy again: Talos health, the Kubernetes node Ready and, once Cilium
#    runs, the Cilium agent on the node Ready. Only then does the next node's gate start.
# 3. Print the settings the node now runs with; Pulumi keeps them as this resource's output.
#
# Input (environment): NODE_NAME, NODE_ADDRESS, HEALTH_ENDPOINT, REBOOT_SETTINGS, ROLL_MARK,
# INSTALLED_MARK, TIMEOUT, CHECK_CILIUM, TALOSCONFIG_DATA and KUBECONFIG_DATA (secrets, written to
# a private temporary directory that is removed on exit).
set -eu
for tool in talosctl kubectl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is not on PATH: install it on the machine that runs pulumi up" >&2; exit 1; }
done
previous="${PULUMI_COMMAND_STDOUT:-$INSTALLED_MARK}"
umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%s\n' "$TALOSCONFIG_DATA" >"$work/talosconfig"
printf '%s\n' "$KUBECONFIG_DATA" >"$work/kubeconfig"
talos() { talosctl --talosconfig "$work/talosconfig" --endpoints "$NODE_ADDRESS" --nodes "$NODE_ADDRESS" "$@"; }
# seconds turns a Go duration of whole minutes or seconds (10m, 90s) into seconds.
seconds() { case "$1" in *m) echo $(( ${1%m} * 60 ));; *s) echo "${1%s}";; *) echo "$1";; esac; }
kube() { kubectl --kubeconfig "$work/kubeconfig" "$@"; }

if [ "$previous" != "$ROLL_MARK" ]; then
  echo "$NODE_NAME: reboot settings changed; rebooting into the staged config" >&2
  printf '%s\n' "$REBOOT_SETTINGS" >&2
  talos reboot --wait --timeout "$TIMEOUT" >&2
fi
# Talos runs the health check on the node it is sent to, and a worker can neither reach the other
# nodes nor serve the kubeconfig: ask a control plane (HEALTH_ENDPOINT: the node itself when it is
# one, otherwise the first control plane).
talosctl --talosconfig "$work/talosconfig" --endpoints "$HEALTH_ENDPOINT" --nodes "$HEALTH_ENDPOINT" \
  health --wait-timeout "$TIMEOUT" >&2
kube wait --for=condition=Ready "node/$NODE_NAME" --timeout "$TIMEOUT" >&2
if [ "$CHECK_CILIUM" = true ]; then
  # kubectl wait fails at once when no pod matches, and a node that just joined may not have its
  # Cilium agent pod yet: wait for the pod to exist, then for it to be Ready.
  deadline=$(( $(date +%s) + $(seconds "$TIMEOUT") ))
  until [ -n "$(kube -n kube-system get pod -l k8s-app=cilium --field-selector "spec.nodeName=$NODE_NAME" -o name)" ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "$NODE_NAME: no Cilium agent pod after $TIMEOUT" >&2
      exit 1
    fi
    sleep 2
  done
  kube -n kube-system wait --for=condition=Ready pod -l k8s-app=cilium \
    --field-selector "spec.nodeName=$NODE_NAME" --timeout "$TIMEOUT" >&2
fi
echo "$ROLL_MARK"
