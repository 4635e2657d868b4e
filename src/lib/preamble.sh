# The preamble of every script the program runs on the operator's machine (src/talos/*.sh,
# src/bootstrap/cni-cleanup.sh): the program puts this text in front of each script
# (talosplan.LoadScript), so what a script does before its own work is written once.
#
# setup TOOL...: stops unless every TOOL is on PATH; makes a private temporary directory, $work,
# removed when the script exits; writes TALOSCONFIG_DATA and KUBECONFIG_DATA (secrets), when set,
# to $work/talosconfig and $work/kubeconfig, readable by the owner only.
set -eu
setup() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "$tool is not on PATH: install it on the machine that runs pulumi up" >&2; exit 1; }
  done
  umask 077
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  if [ -n "${TALOSCONFIG_DATA:-}" ]; then printf '%s\n' "$TALOSCONFIG_DATA" >"$work/talosconfig"; fi
  if [ -n "${KUBECONFIG_DATA:-}" ]; then printf '%s\n' "$KUBECONFIG_DATA" >"$work/kubeconfig"; fi
}
