/**
 * GEMM slice size of async runs (NATIVE_SLICE_FLOPS) against whole-model time: one session, the sizes
 * interleaved rep by rep, wall and CPU time medians, 4-layer BERT-base width at [1,128] and [8,128].
 *
 *   SIZES=3e8,1e9,2e9,4e9 REPS=7 node --import tsx bench/slice-size.ts
 */
import { setNativeSliceFlops } from "../src/backends/cpu/native-compute.js";
import { InferenceSession } from "../src/engine/session.js";
import { bertInputs, buildBertGraph } from "../src/models/bert.js";

const graph = buildBertGraph({ layers: 4, hidden: 768, heads: 12, ffn: 3072, vocab: 1000 });
const s = InferenceSession.fromGraph(graph, { intraOpNumThreads: 2 });
const sizes = (process.env.SIZES ?? "3e8,1e9,2e9,4e9").split(",").map(Number);
for (const B of [1, 8]) {
  const feeds = bertInputs(Array(B).fill(128), 128, 1000);
  await s.run(feeds);
  const t: Record<number, number[]> = {},
    c: Record<number, number[]> = {};
  for (const z of sizes) {
    t[z] = [];
    c[z] = [];
  }
  for (let r = 0; r < Number(process.env.REPS ?? 7); r++)
    for (const z of sizes) {
      setNativeSliceFlops(z);
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      await s.run(feeds);
      t[z]!.push(performance.now() - t0);
      const cc = process.cpuUsage(c0);
      c[z]!.push((cc.user + cc.system) / 1000);
    }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
  console.log(
    `[${B},128]`,
    sizes
      .map((z) => `${z.toExponential(0)}: wall ${med(t[z]!).toFixed(1)} cpu ${med(c[z]!).toFixed(1)}`)
      .join(" | "),
  );
}
await s.release();
