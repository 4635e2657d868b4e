# Removal of one node from the cluster, run by `pulumi up` (never by a preview) as the create
# command of remove-<node>, in the run whose stack file no longer lists the node, before the health
# gate: Talos's health checks would otherwise still find the node's Kubernetes Node (and, for a
# control plane, its etcd member) and fail with "unexpected nodes".
#
# 1. Drain the node. It may be down: pods whose deletion has waited a minute are not waited for
#    (a NotReady node's kubelet never confirms them), and they go with its Node.
# 2. A control plane leaves etcd: `talosctl etcd leave` on the node, or, if it does not answer,
#    `etcd remove-member` from another control plane. etcd itself refuses a removal that would
#    leave too few members for a quorum; the program removes at most one control plane per run and
#    never the last (internal/lifecycle).
# 3. Delete the Kubernetes Node.
# The node itself is left running (or down) as it is; with homelab:cluster.resetOnDestroy its
# reset runs at the end of the run (config-reset-<node>), back to maintenance mode. Without it, a
# node left running rejoins at its next boot (etcd, its Node): reset it or power it off.
#
# Input (environment): NODE_NAME, NODE_ADDRESS, ROLE, ENDPOINT (another control plane), TIMEOUT,
# TALOSCONFIG_DATA and KUBECONFIG_DATA (secrets).
setup talosctl kubectl
kube() { kubectl --kubeconfig "$work/kubeconfig" "$@"; }
# via ENDPOINT NODE ARGS...: talosctl through ENDPOINT for NODE.
via() { e=$1 n=$2; shift 2; talosctl --talosconfig "$work/talosconfig" --endpoints "$e" --nodes "$n" "$@"; }

if kube get node "$NODE_NAME" >/dev/null 2>&1; then
  kube drain "$NODE_NAME" --ignore-daemonsets --delete-emptydir-data --force --skip-wait-for-delete-timeout=60 \
    --timeout "$TIMEOUT" >&2 ||
    echo "$NODE_NAME: not every pod left in time; its pods go with the Node" >&2
fi

if [ "$ROLE" = controlplane ]; then
  members=$(via "$ENDPOINT" "$ENDPOINT" etcd members)
  printf '%s\n' "$members" >&2
  id=$(printf '%s\n' "$members" | awk -v n="$NODE_NAME" '$3 == n { print $2 }')
  if [ -n "$id" ]; then
    if via "$NODE_ADDRESS" "$NODE_ADDRESS" etcd leave >&2; then
      echo "$NODE_NAME left etcd" >&2
    else
      echo "$NODE_NAME does not answer: removing its etcd member $id from $ENDPOINT" >&2
      via "$ENDPOINT" "$ENDPOINT" etcd remove-member "$id" >&2
    fi
  fi
fi

kube delete node "$NODE_NAME" --ignore-not-found >&2
echo "$NODE_NAME removed"
