# The preamble of every script the program runs on the operator's machine (src/talos/*.sh,
# src/bootstrap/cni-cleanup.sh): the program puts this text in front of each script
# (talosplan.LoadScript), so what a script does before its own work is written once.
#
# setup TOOL...: stops unless every TOOL is on PATH, and, with TALOSCTL_MINOR set (vX.Y), unless
# talosctl is of that minor release; makes a private temporary directory, $work, removed when the
# script exits; writes TALOSCONFIG_DATA and KUBECONFIG_DATA (secrets), when set, to
# $work/talosconfig and $work/kubeconfig, readable by the owner only.
set -eu
setup() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "$tool is not on PATH: install it on the machine that runs pulumi up" >&2; exit 1; }
  done
  case " $* " in *" talosctl "*) [ -z "${TALOSCTL_MINOR:-}" ] || need_talosctl "$TALOSCTL_MINOR" ;; esac
  umask 077
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  if [ -n "${TALOSCONFIG_DATA:-}" ]; then printf '%s\n' "$TALOSCONFIG_DATA" >"$work/talosconfig"; fi
  if [ -n "${KUBECONFIG_DATA:-}" ]; then printf '%s\n' "$KUBECONFIG_DATA" >"$work/kubeconfig"; fi
}

# need_talosctl vX.Y: stops unless talosctl is of release vX.Y, the release the stack's Talos
# version needs: Talos asks for a talosctl of the release its nodes run ("Your talosctl version
# should match the version of Talos Linux": talosctl.md in the Talos docs), and an older one
# refuses newer nodes (compatibility with version ... is not supported: talosctl upgrade-k8s).
need_talosctl() {
  client=$(talosctl version --client 2>/dev/null | sed -n 's/^[[:space:]]*Tag:[[:space:]]*//p' | head -n 1)
  case "$client" in
    "$1" | "$1".*) ;;
    *) echo "talosctl ${client:-(its version unknown)} is on PATH, and the stack's Talos version needs talosctl $1.x: install it (mise install, after .mise.toml pins it) and run pulumi up again" >&2
       exit 1 ;;
  esac
}
