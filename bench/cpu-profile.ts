/**
 * Where the time of one fused BERT-base-width run goes, per op type, on the CPU backend's kernels (native,
 * or the fallback with --kernels wasm): the synchronous run with a clock read between nodes.
 *
 *   node --import tsx bench/cpu-profile.ts [--layers 4 --batch 1 --seq 128 --kernels native --reps 5 --keep-padding]
 *   [--padded]   lengths uniform in 16..seq, seeded as bench/cpu.ts's "pad" shapes (padding removed unless kept)
 */
import { parseArgs } from "node:util";
import { CpuBackend } from "../src/backends/cpu/backend.js";
import type { CpuKernels } from "../src/backends/cpu/defaults.js";
import { runGraph } from "../src/engine/executor.js";
import { bertInputs, buildBertGraph } from "../src/models/bert.js";
import { seededRandom } from "../src/models/random.js";
import { optimizeGraph } from "../src/passes/index.js";
import { removePadding } from "../src/passes/remove-padding.js";
import { benchArgs } from "./cli-args.js";

const { values } = benchArgs(import.meta.url, () =>
  parseArgs({
    options: {
      layers: { type: "string", default: "4" },
      batch: { type: "string", default: "1" },
      seq: { type: "string", default: "128" },
      kernels: { type: "string", default: "native" },
      reps: { type: "string", default: "5" },
      "keep-padding": { type: "boolean", default: false },
      padded: { type: "boolean", default: false },
    },
  }),
);
const graph = buildBertGraph({
  layers: Number(values.layers),
  hidden: 768,
  heads: 12,
  ffn: 3072,
  vocab: 1000,
});
const { graph: optimized } = optimizeGraph(graph, { level: "all" });
const seq = Number(values.seq);
const batch = Number(values.batch);
// bench/cpu.ts's padded lengths (shapeOf): uniform in 16..seq from seed 9.
const rand = seededRandom(9);
const lengths = values.padded
  ? Array.from({ length: batch }, () => 16 + Math.floor(rand() * (seq - 16 + 1)))
  : Array(batch).fill(seq);
const feeds = bertInputs(lengths, seq, 1000);
if (values.padded) console.log(`lengths ${lengths.join(",")}`);
// As a session runs it: padding removed for this signature (unless --keep-padding).
const removal = values["keep-padding"]
  ? undefined
  : removePadding(optimized, Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, t.dims])));
const fused = removal && !("skipped" in removal) ? removal.graph : optimized;
const backend = new CpuBackend({ cpuKernels: values.kernels as CpuKernels });
const compute = backend.compute();
runGraph(fused, feeds, { compute }); // warm-up: packed weights, JIT
const byType = new Map<string, number>();
let total = 0;
// The linear layers' flops (output rows × columns × the weight's K, twice), for their rate in the model.
const GEMM_OPS = new Set(["Gemm", "FusedGemm", "MatMul"]);
let gemmFlops = 0;
let gemmMs = 0;
for (let r = 0; r < Number(values.reps); r++) {
  const t0 = performance.now();
  let last = t0;
  runGraph(fused, feeds, {
    compute,
    onNode(node, outputs) {
      const now = performance.now();
      const key = node.domain ? `${node.domain}.${node.opType}` : node.opType;
      byType.set(key, (byType.get(key) ?? 0) + now - last);
      const w = fused.initializers.get(node.inputs[1] ?? "");
      const y = outputs[0];
      if (GEMM_OPS.has(node.opType) && w?.rank === 2 && y) {
        const transB = node.attrs.transB?.type === "int" && node.attrs.transB.value !== 0;
        gemmFlops += 2 * y.size * (transB ? w.dims[1]! : w.dims[0]!);
        gemmMs += now - last;
      }
      last = now;
    },
  });
  total += performance.now() - t0;
}
const reps = Number(values.reps);
console.log(`${values.kernels} kernels, ${(total / reps).toFixed(1)} ms per run`);
console.log(
  `linear layers (Gemm, FusedGemm, MatMul with a weight): ${(gemmFlops / gemmMs / 1e6).toFixed(0)} GFLOP/s`,
);
for (const [op, ms] of [...byType].sort((a, b) => b[1] - a[1]))
  console.log(
    `${op.padEnd(40)} ${(ms / reps).toFixed(2).padStart(8)} ms ${((100 * ms) / total).toFixed(1).padStart(5)}%`,
  );
await backend.dispose();
