import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { fuzzCase, loadFuzzModels, newStats, runCase } from "./fuzz-cases.js";

// Mutated, truncated and spliced fixture models and feeds: a result or a coded error, never a raw exception,
// an INTERNAL error or a hang; reordered/renamed models give the original results. Fixed seed; bounded to
// about a minute (the run count adapts to the machine's speed, the cases do not). Long campaigns:
// `npm run fuzz -- --runs N`.
test("fuzz: mutated fixture models and feeds give results or coded errors", {
  timeout: 240_000,
}, async (t) => {
  const models = await loadFuzzModels();
  const stats = newStats();
  await fc.assert(
    fc.asyncProperty(fuzzCase, ([which, mm, fm]) => runCase(models, which, mm, fm, stats)),
    { seed: 20261128, numRuns: 2000, interruptAfterTimeLimit: 50_000, markInterruptAsFailure: false },
  );
  t.diagnostic(JSON.stringify(stats));
  assert.ok(stats.cases >= 30, `only ${stats.cases} cases ran`);
  assert.ok(stats.results > 0 && Object.keys(stats.codes).length > 1, JSON.stringify(stats));
});
