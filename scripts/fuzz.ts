/**
 * Long fuzz campaigns over the fixture models (the property of test/fuzz-cases.ts):
 *   npm run fuzz -- --runs 100000 [--seed S] [--models distilbert_eager,bert_sdpa]
 * Prints progress every 1,000 cases and a summary (cases, results, matches, error codes) at the end;
 * a failing case is printed with fast-check's seed and path so it can be replayed.
 */
import fc from "fast-check";
import { FUZZ_MODELS, fuzzCase, loadFuzzModels, newStats, runCase } from "../test/fuzz-cases.js";

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const runs = Number(arg("runs") ?? 1000);
const seed = Number(arg("seed") ?? Date.now() % 2 ** 31);
const names = arg("models")?.split(",") ?? [...FUZZ_MODELS];
const models = await loadFuzzModels(names);
const stats = newStats();
const started = performance.now();
console.log(`fuzz: ${runs} cases, seed ${seed}, models ${names.join(", ")}`);
await fc.assert(
  fc.asyncProperty(fuzzCase, async ([which, mm, fm]) => {
    await runCase(models, which, mm, fm, stats);
    if (stats.cases % 1000 === 0) {
      const s = ((performance.now() - started) / 1000).toFixed(0);
      console.log(`${stats.cases} cases, ${s} s: ${JSON.stringify(stats)}`);
    }
  }),
  { seed, numRuns: runs },
);
console.log(`done in ${((performance.now() - started) / 1000).toFixed(0)} s: ${JSON.stringify(stats)}`);
