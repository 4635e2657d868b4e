// Checks that `renovate --platform=local --dry-run=extract` (its JSON log on stdin) found every pin
// the repository keeps: the clusters' Talos and Kubernetes versions, the Gateway API release, the
// three charts (in the stack files and as the program's defaults), the Go modules, the mise tools
// and the GitHub Actions. Exits 1 naming what is missing.
import { readFileSync } from "node:fs";

const want = [
  ["regex", "Pulumi.norns.yaml", ["siderolabs/talos", "kubernetes/kubernetes", "kubernetes-sigs/gateway-api", "cilium", "connect", "argo-cd"]],
  ["regex", "internal/stackconfig/config.go", ["kubernetes-sigs/gateway-api", "cilium", "connect", "argo-cd"]],
  ["gomod", "go.mod", ["github.com/pulumi/pulumi/sdk/v3", "github.com/pulumi/pulumi-kubernetes/sdk/v4", "github.com/pulumiverse/pulumi-talos/sdk", "github.com/siderolabs/talos/pkg/machinery"]],
  ["mise", ".mise.toml", ["go", "pulumi", "talosctl", "kubectl"]],
  ["github-actions", ".github/workflows/ci.yml", ["actions/checkout", "jdx/mise-action"]],
  ["github-actions", ".github/actions/pulumi-setup/action.yml", ["jdx/mise-action", "1password/install-cli-action"]],
];

const found = new Set();
for (const line of readFileSync(0, "utf8").split("\n")) {
  let e;
  try { e = JSON.parse(line); } catch { continue; }
  if (!e.packageFiles) continue;
  for (const [manager, files] of Object.entries(e.packageFiles)) {
    for (const f of files) {
      for (const d of f.deps ?? []) found.add(`${manager} ${f.packageFile} ${d.depName}`);
    }
  }
}
const missing = [];
for (const [manager, file, deps] of want) {
  for (const dep of deps) if (!found.has(`${manager} ${file} ${dep}`)) missing.push(`${dep} (${manager}, ${file})`);
}
if (missing.length) {
  console.error(`renovate does not find these pins:\n  ${missing.join("\n  ")}`);
  process.exit(1);
}
console.log(`renovate finds every pin (${found.size} dependencies in all)`);
