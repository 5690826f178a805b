// `npm run conformance [-- --json] [-- NAME_SUBSTRING]`: runs ONNX's backend node tests (libonnx-testdata) and
// prints every test that does not pass, with its reason, then a summary by outcome and reason.
import { NODE_TEST_DIR, nodeTestNames, type Outcome, refusalClass, runNodeTest } from "../test/onnx-node-suite.js";

const args = process.argv.slice(2);
const json = args.includes("--json");
const filter = args.find((a) => !a.startsWith("--")) ?? "";
const names = nodeTestNames().filter((n) => n.includes(filter));
if (names.length === 0) {
  console.error(`no ONNX node tests under ${NODE_TEST_DIR} (apt-get install libonnx-testdata)`);
  process.exit(2);
}
const results: { name: string; outcome: Outcome }[] = [];
for (const name of names) results.push({ name, outcome: await runNodeTest(name) });
if (json) {
  console.log(JSON.stringify(results, null, 1));
} else {
  const counts = new Map<string, number>();
  const reasons = new Map<string, number>();
  for (const { name, outcome } of results) {
    counts.set(outcome.kind, (counts.get(outcome.kind) ?? 0) + 1);
    if (outcome.kind === "pass") continue;
    console.log(`${outcome.kind.padEnd(8)} ${name}: ${outcome.detail.split("\n")[0]}`);
    const r = outcome.kind === "refused" ? refusalClass(outcome.detail) : outcome.kind;
    reasons.set(r, (reasons.get(r) ?? 0) + 1);
  }
  console.log(`\n${[...counts].map(([k, v]) => `${k} ${v}`).join(", ")} of ${results.length}`);
  for (const [r, n] of [...reasons].sort((a, b) => b[1] - a[1])) console.log(`${String(n).padStart(4)}  ${r}`);
}
