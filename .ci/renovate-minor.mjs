// Checks that .github/renovate.json never proposes a jump of more than one minor release of Talos,
// Kubernetes or Cilium: it runs Renovate's own release filter (the `filterVersions` step of its
// lookup, with the package rule's allowedVersions) on made-up release lists and fails naming any
// release past the next minor that would still be offered. Usage (Node 24, as .ci/run runs it):
//   node .ci/renovate-minor.mjs <renovate package dir>
import { readFileSync } from "node:fs";
import { join } from "node:path";

const dist = join(process.argv[2], "dist");
const { filterVersions } = await import(join(dist, "workers/repository/process/lookup/filter.js"));
const versioning = await import(join(dist, "modules/versioning/index.js"));

const config = JSON.parse(readFileSync(".github/renovate.json", "utf8"));
const ruleFor = (dep) => config.packageRules.find((r) => r.allowedVersions && r.matchDepNames?.includes(dep));

const cases = [
  ["siderolabs/talos", "semver-coerced", "v1.11.5", ["v1.11.6", "v1.12.0", "v1.12.6", "v1.13.0", "v1.13.9", "v1.14.0", "v2.0.0"], "v1.13.0"],
  ["kubernetes/kubernetes", "semver-coerced", "v1.34.1", ["v1.34.2", "v1.35.0", "v1.35.8", "v1.36.0", "v1.36.5"], "v1.36.0"],
  ["cilium", "helm", "1.18.3", ["1.18.4", "1.19.0", "1.19.2", "1.20.1", "2.0.0"], "1.20.0"],
];
const problems = [];
for (const [dep, scheme, current, releases, firstRefused] of cases) {
  const rule = ruleFor(dep);
  if (!rule) {
    problems.push(`${dep}: no package rule with allowedVersions`);
    continue;
  }
  const api = versioning.get(scheme);
  const offered = filterVersions(
    { ignoreUnstable: true, ignoreDeprecated: true, respectLatest: true, maxMajorIncrement: 500, depName: dep, allowedVersions: rule.allowedVersions, versioning: scheme },
    current, null, [{ version: current }, ...releases.map((version) => ({ version }))], api,
  ).map((r) => r.version);
  const tooFar = offered.filter((v) => api.equals(v, firstRefused) || api.isGreaterThan(v, firstRefused));
  if (tooFar.length > 0) problems.push(`${dep} ${current}: Renovate would offer ${tooFar.join(", ")}, past the next minor release`);
  if (offered.length === 0) problems.push(`${dep} ${current}: Renovate would offer nothing at all`);
  console.log(`${dep} ${current}: offered ${offered.join(", ")}`);
}
if (problems.length > 0) {
  console.error(problems.join("\n"));
  process.exit(1);
}
