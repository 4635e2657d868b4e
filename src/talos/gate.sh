# Rollout gate of one node, run by `pulumi up` (never by a preview) as the create and update
# command of the node's gate (config-gate-<node>), once the node's new config is staged. The gates
# run one after another in roll order (control planes first), so at most one node is down at once.
#
# 1. Decide what the node needs, asking the node where it can tell:
#    - an upgrade, when the node does not run the installer image the config names (its Talos
#      version or Image Factory schematic), or the kernel arguments changed: `talosctl upgrade`
#      installs the image and reboots into the staged config; never a plain reboot as well. A node
#      already on the image is not upgraded, so a resumed run carries on where it stopped.
#    - a reboot, when a setting Talos cannot apply live changed (REBOOT_SETTINGS, compared with the
#      last run's), or when Talos refuses to apply the staged config live (a dry run in mode
#      no-reboot). On its first run a gate reboots a node installed with the bring-up config (the
#      CNI handover: FIRST_RUN=reboot), and otherwise asks Talos (FIRST_RUN=check).
#    - nothing otherwise: the config goes live after the gates, on every node in parallel.
# 2. Wait until the node is back and the cluster healthy: Talos's health checks, asked of a
#    control plane, for the nodes Kubernetes lists (a node being removed is no longer expected);
#    the Kubernetes node Ready; once Cilium runs, the node's Cilium agent Ready.
# 3. Print what the node now runs; Pulumi keeps it as this resource's output for the next run.
#
# Input (environment): NODE_NAME, NODE_ADDRESS, HEALTH_ENDPOINT, IMAGE, TALOS_VERSION, TALOSCTL_MINOR,
# SCHEMATIC, KERNEL_ARGS, REBOOT_SETTINGS, ROLL_MARK, CONTRACT, FIRST_RUN, UPGRADE_TIMEOUT,
# REBOOT_TIMEOUT, TIMEOUT (health), CHECK_CILIUM, TALOSCONFIG_DATA and KUBECONFIG_DATA (secrets,
# written to a private temporary directory that is removed on exit). A change of CONTRACT makes
# the gate run: the staged config then differs in settings Talos applies only at a boot, and Talos
# itself says so (step 1's dry run).
setup talosctl kubectl
talos() { talosctl --talosconfig "$work/talosconfig" --endpoints "$NODE_ADDRESS" --nodes "$NODE_ADDRESS" "$@"; }
# via_control_plane: talosctl for the node through a control plane. talosctl 1.13 drains the node
# itself before an upgrade, with the kubeconfig its endpoint serves, and only a control plane
# serves one (cmd/talosctl/pkg/talos/kubeclient/kubeclient.go; v1alpha1_server.go:131-140).
via_control_plane() { talosctl --talosconfig "$work/talosconfig" --endpoints "$HEALTH_ENDPOINT" --nodes "$NODE_ADDRESS" "$@"; }
kube() { kubectl --kubeconfig "$work/kubeconfig" "$@"; }
# seconds turns a Go duration (30m, 1h30m, 90s) into whole seconds.
seconds() {
  printf '%s\n' "$1" | awk '{
    v = $0; s = 0
    while (match(v, /^[0-9]+(\.[0-9]+)?(ms|h|m|s)/)) {
      n = substr(v, 1, RLENGTH); v = substr(v, RLENGTH + 1); u = n
      sub(/^[0-9.]+/, "", u); sub(/[a-z]+$/, "", n)
      s += n * (u == "h" ? 3600 : u == "m" ? 60 : u == "s" ? 1 : 0.001)
    }
    printf "%d\n", s
  }'
}
# newer A B: version A is newer than version B.
newer() { [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -n 1)" = "$1" ]; }
mark() { printf '%s' "$1" | sha256sum | cut -c1-16; }
# config ID FILE: writes the node's MachineConfig resource ID ("v1alpha1", the config in effect;
# "persistent", the one it boots next) to FILE. Fails (status 1) when the node has no such
# resource: Talos creates "persistent" only when a config is applied, never when a boot loads it
# from disk (acquire.go:200-206 in Talos v1.11.5), so after a reboot nothing is staged. Any other
# error stops the gate.
config() {
  if talos get machineconfig "$1" -o jsonpath='{.spec}' >"$2" 2>"$work/get.err"; then return 0; fi
  if grep -q NotFound "$work/get.err"; then return 1; fi
  cat "$work/get.err" >&2
  exit 1
}
# kernel_args FILE: machine.install.extraKernelArgs of a machine config, as Talos encodes it (block
# style, one item per line), as a JSON list.
kernel_args() {
  awk '
    function indent(s) { match(s, /^ */); return RLENGTH }
    /^---/ { if (state) exit; next }
    { ind = indent($0); line = substr($0, ind + 1) }
    line == "" || line ~ /^#/ { next }
    ind == 0 { if (state) exit; if (line ~ /^machine:/) state = 1; next }
    state == 3 && ind >= ki && line ~ /^- / {
      v = substr(line, 3)
      if (v ~ /^\047.*\047$/) { v = substr(v, 2, length(v) - 2); gsub(/\047\047/, "\047", v) }
      else if (v ~ /^".*"$/) v = substr(v, 2, length(v) - 2)
      e = ""
      for (i = 1; i <= length(v); i++) { c = substr(v, i, 1); if (c == "\\" || c == "\"") e = e "\\"; e = e c }
      out = out (n++ ? "," : "") "\"" e "\""
      next
    }
    state == 3 { state = 2 }
    state == 2 && ind <= mi { state = 1 }
    state == 1 && !mi { mi = ind }
    state == 1 && ind == mi && line ~ /^install:/ { state = 2; next }
    state == 2 && line ~ /^extraKernelArgs:/ { state = 3; ki = ind; next }
    END { print "[" out "]" }
  ' "$1"
}

# What the node ran after the last run of this gate (none on the first run).
previous="${PULUMI_COMMAND_STDOUT:-}"
last_roll=$(printf '%s\n' "$previous" | sed -n 's/^roll //p')
last_args=$(printf '%s\n' "$previous" | sed -n 's/^kernel-args //p')
last_contract=$(printf '%s\n' "$previous" | sed -n 's/^contract //p')
if [ -z "$previous" ]; then
  last_args=$(mark "$KERNEL_ARGS")
  [ "$FIRST_RUN" = reboot ] && last_roll=handover
fi
args_mark=$(mark "$KERNEL_ARGS")

# 1. Decide.
action=none
# Kernel arguments in the machine config reach only a GRUB boot entry. A node booted from a UKI
# (systemd-boot: every UEFI install since Talos 1.10, secure boot or not) ignores them, so their
# change would cost an upgrade and change nothing: stop before the node goes down.
if [ -n "$last_args" ] && [ "$last_args" != "$args_mark" ] && \
   [ "$(talos get securitystate -o jsonpath='{.spec.bootedWithUKI}')" = true ]; then
  echo "$NODE_NAME boots a UKI under systemd-boot, which ignores machine.install.extraKernelArgs; nothing was done to it." >&2
  echo "Move the kernel arguments to src/talos/schematic.yaml under customization.extraKernelArgs, where they reach the nodes as an upgrade." >&2
  exit 1
fi
running_version=$(talos version --short | sed -n 's/^[[:space:]]*Tag:[[:space:]]*//p' | tail -n 1)
# Image Factory images carry their schematic ID as an extension named "schematic"
# (siderolabs/image-factory v0.7.0 internal/artifacts/schematic.go:64-80).
running_schematic=$(talos get extensions | awk '$6 == "schematic" { print $7 }')
if [ "$running_version" != "$TALOS_VERSION" ] || [ "$running_schematic" != "$SCHEMATIC" ] || \
   { [ -n "$last_args" ] && [ "$last_args" != "$args_mark" ]; }; then
  if newer "$running_version" "$TALOS_VERSION"; then
    echo "$NODE_NAME runs Talos $running_version, newer than $TALOS_VERSION: refusing to downgrade it" >&2
    exit 1
  fi
  action=upgrade
elif [ -n "$last_roll" ] && [ "$last_roll" != "$ROLL_MARK" ]; then
  action=reboot
elif config persistent "$work/staged.yaml"; then
  if ! out=$(talos apply-config --dry-run --mode no-reboot --file "$work/staged.yaml" 2>&1); then
    case "$out" in
      *"can't be applied in immediate mode"*) action=reboot ;;
      *) printf '%s\n' "$out" >&2; exit 1 ;;
    esac
  fi
fi # else nothing is staged: the node rebooted since the last apply and runs what its disk holds

case $action in
  upgrade)
    # Talos writes the new boot entry with the kernel arguments of the config in effect, not of
    # the staged one (internal/pkg/install/install.go:267-279). When they differ, put the staged
    # arguments in effect first: a try-mode patch of machine.install alone, which Talos applies
    # live, never writes to disk (the staged config stays what the node boots) and ends with the
    # upgrade's reboot.
    if config persistent "$work/staged.yaml" && config v1alpha1 "$work/active.yaml"; then
      staged_args=$(kernel_args "$work/staged.yaml")
      if [ "$staged_args" != "$(kernel_args "$work/active.yaml")" ]; then
        if grep -q '^---' "$work/active.yaml"; then
          # configpatcher/json6902.go:27 in Talos v1.11.5
          echo "$NODE_NAME: Talos refuses JSON patches on a multi-document machine config, so the new kernel arguments cannot be put in effect before the upgrade; nothing was done to the node. Move them to src/talos/schematic.yaml (customization.extraKernelArgs)." >&2
          exit 1
        fi
        echo "$NODE_NAME: kernel arguments for the new boot entry: $staged_args" >&2
        # Twice the upgrade's timeout: the try must outlast the image pull and the drain, which
        # come before the installer reads the config in effect.
        talos patch machineconfig --mode try --timeout "$(( $(seconds "$UPGRADE_TIMEOUT") * 2 ))s" \
          --patch "[{\"op\": \"add\", \"path\": \"/machine/install/extraKernelArgs\", \"value\": $staged_args}]" >&2
      fi
    fi
    # talosctl 1.13 upgrades 1.13 nodes through LifecycleService, which writes the boot entry
    # without the config's kernel arguments; --legacy keeps Talos's own upgrade sequence, which
    # takes them (upgrading-talos.mdx, "extraKernelArgs", in the Talos 1.13 docs).
    legacy=""
    if [ "$last_args" != "$args_mark" ] && ! newer v1.13 "$TALOSCTL_MINOR"; then legacy=--legacy; fi
    echo "$NODE_NAME: upgrading from Talos $running_version (schematic $running_schematic) to $IMAGE" >&2
    via_control_plane upgrade --image "$IMAGE" $legacy --wait --timeout "$UPGRADE_TIMEOUT" >&2 ;;
  reboot)
    echo "$NODE_NAME: rebooting into the staged config; settings that need the reboot:" >&2
    printf '%s\n' "$REBOOT_SETTINGS" >&2
    if [ -n "$last_contract" ] && [ "$CONTRACT" != "$last_contract" ]; then
      echo "and the machine-config contract: $last_contract -> $CONTRACT" >&2
    fi
    talos reboot --wait --timeout "$REBOOT_TIMEOUT" >&2 ;;
esac

# 2. Wait for health. Talos runs the check on the node it is sent to, and a worker can neither
# reach the other nodes nor serve the kubeconfig: ask a control plane (HEALTH_ENDPOINT).
ips() { kube get nodes -l "$1" -o jsonpath='{range .items[*]}{.status.addresses[?(@.type=="InternalIP")].address}{","}{end}' | sed 's/,$//'; }
controlplanes=$(ips node-role.kubernetes.io/control-plane)
workers=$(ips '!node-role.kubernetes.io/control-plane')
talosctl --talosconfig "$work/talosconfig" --endpoints "$HEALTH_ENDPOINT" --nodes "$HEALTH_ENDPOINT" \
  health --wait-timeout "$TIMEOUT" --control-plane-nodes "$controlplanes" ${workers:+--worker-nodes "$workers"} >&2
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

# 3. Record.
echo "$NODE_NAME: $action" >&2
printf 'roll %s\nkernel-args %s\nimage %s\ncontract %s\n' "$ROLL_MARK" "$args_mark" "$IMAGE" "$CONTRACT"
