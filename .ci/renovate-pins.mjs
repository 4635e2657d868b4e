// Checks that `renovate --platform=local --dry-run=extract` (its JSON log on stdin) found every pin
// the repository keeps: the clusters' Talos and Kubernetes versions, the Gateway API release, the
// three charts (in the stack files and as the program's defaults), the Go modules and go.mod's go
// line, the tools the mise tasks pin, and the GitHub Actions with the mise release they install.
// Exits 1 naming what is missing.
import { readFileSync } from "node:fs";

const want = [
  ["regex", "Pulumi.norns.yaml", ["siderolabs/talos", "kubernetes/kubernetes", "kubernetes-sigs/gateway-api", "cilium", "connect", "argo-cd"]],
  ["regex", "internal/stackconfig/config.go", ["kubernetes-sigs/gateway-api", "cilium", "connect", "argo-cd"]],
  ["gomod", "go.mod", ["go", "github.com/pulumi/pulumi/sdk/v3", "github.com/pulumi/pulumi-kubernetes/sdk/v4", "github.com/pulumiverse/pulumi-talos/sdk", "github.com/siderolabs/talos/pkg/machinery"]],
  ["regex", "Pulumi.example.yaml", ["siderolabs/talos", "kubernetes/kubernetes"]],
  ["mise", ".mise.toml", ["pulumi", "talosctl", "kubectl"]],
  ["github-actions", ".github/workflows/ci.yml", ["actions/checkout", "actions/setup-go"]],
  ["github-actions", ".github/workflows/preview.yml", ["actions/checkout", "actions/setup-go", "actions/upload-artifact", "actions/download-artifact"]],
  ["github-actions", ".github/workflows/stacks.yml", ["actions/checkout"]],
  ["github-actions", ".github/actions/tools/action.yml", ["actions/setup-go", "jdx/mise-action", "1password/install-cli-action", "jdx/mise"]],
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
