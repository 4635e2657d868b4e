# The preamble of every script the program runs on the operator's machine (src/talos/*.sh,
# src/bootstrap/cni-cleanup.sh): the program puts this text in front of each script
# (talosplan.LoadScript), so what a script does before its own work is written once.
#
# setup TOOL...: stops unless every TOOL is on PATH, and, with TALOSCTL_MINOR set (vX.Y), unless
# talosctl is of that minor release; makes a private temporary directory, $work (under $RUNNER_TEMP
# in a GitHub Actions job, which the runner empties after the job), removed when the script exits
# and when it is interrupted, terminated or hung up (a cancelled job, a Ctrl-C, pulumi's own
# cancellation), so no talosconfig, kubeconfig or machine config outlives it (and one a killed
# script left is removed by the next script); writes
# TALOSCONFIG_DATA and KUBECONFIG_DATA (secrets), when set, to $work/talosconfig and
# $work/kubeconfig, readable by the owner only. Secrets reach the script through its environment,
# never its command line.
set -eu
setup() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "$tool is not on PATH: install it on the machine that runs pulumi up" >&2; exit 1; }
  done
  case " $* " in *" talosctl "*) [ -z "${TALOSCTL_MINOR:-}" ] || need_talosctl "$TALOSCTL_MINOR" ;; esac
  umask 077
  root=${RUNNER_TEMP:-${TMPDIR:-/tmp}}
  # A script killed outright (SIGKILL runs no trap) leaves its directory: the next script removes
  # every one whose process is gone.
  for old in "$root"/homelab.*; do
    [ -d "$old" ] || continue
    pid=${old#"$root"/homelab.}
    pid=${pid%%.*}
    case $pid in '' | *[!0-9]*) continue ;; esac
    kill -0 "$pid" 2>/dev/null || rm -rf "$old" 2>/dev/null || true
  done
  work=$(mktemp -d "$root/homelab.$$.XXXXXX")
  trap 'rm -rf "$work"' EXIT
  # A signal removes the directory, then exits with the signal's status (128 + its number); the
  # EXIT trap then finds nothing left.
  trap 'rm -rf "$work"; exit 129' HUP
  trap 'rm -rf "$work"; exit 130' INT
  trap 'rm -rf "$work"; exit 143' TERM
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
    *) echo "talosctl ${client:-(its version unknown)} is on PATH, and the stack's Talos version needs talosctl $1.x: install it (mise run up installs the release .mise.toml pins) and run pulumi up again" >&2
       exit 1 ;;
  esac
}
