# Reset of one node back to maintenance mode, run as the delete command of config-reset-<node>,
# which exists only with homelab:cluster.resetOnDestroy: when the node leaves the stack file, or at
# `pulumi destroy`. STATE and EPHEMERAL are wiped, Talos stays installed, and the node reboots into
# maintenance mode, ready to be configured again; a control plane first leaves etcd (graceful),
# unless it is the last member. A node that does not answer is left as it is, with a message: the
# run goes on.
#
# Input (environment): NODE_NAME, NODE_ADDRESS, ROLE, TIMEOUT, TALOSCONFIG_DATA (secret).
setup talosctl
talos() { talosctl --talosconfig "$work/talosconfig" --endpoints "$NODE_ADDRESS" --nodes "$NODE_ADDRESS" "$@"; }
if ! talos version >/dev/null 2>&1; then
  echo "$NODE_NAME ($NODE_ADDRESS) does not answer: not reset; reset it by hand when it is back (talosctl reset)" >&2
  exit 0
fi
# A control plane drains and leaves etcd first (graceful), except the last member: etcd refuses to
# remove the member a quorum would need (its strict reconfiguration check; always for the last
# one), which fails a graceful reset, and the last control plane has no cluster left to leave.
graceful=false
if [ "$ROLE" = controlplane ]; then
  graceful=true
  if members=$(talos etcd members 2>/dev/null) && [ "$(printf '%s\n' "$members" | tail -n +2 | grep -c .)" -eq 1 ]; then
    echo "$NODE_NAME is etcd's last member: resetting it without leaving etcd" >&2
    graceful=false
  fi
fi
talos reset --graceful="$graceful" --reboot --system-labels-to-wipe STATE --system-labels-to-wipe EPHEMERAL \
  --wait --timeout "$TIMEOUT" >&2
echo "$NODE_NAME reset to maintenance mode"
