/**
 * Throughput of the packed-QKV attention (mhafuse) next to onnxruntime-node's CPU provider running the same
 * problem as one com.microsoft MultiHeadAttention node (query, key, value [B, S, E]: onnxruntime's CPU provider
 * does not implement MHA's packed [B, S, N, 3, H] input). Run: node --import tsx bench/qkv.ts [--quick]
 *
 * GFLOP/s counts the two attention matmuls, 4·B·N·S²·H flops. Not a test: nothing here asserts timings.
 * The "JS kernel" column runs the same problem through the attention core on its plain-JS kernel (the fallback;
 * the other mhafuse columns use the WebAssembly SIMD kernel unless MHAFUSE_NO_WASM=1), in the same process.
 */
import * as ort from "onnxruntime-node";
import {
  type AttentionArgs,
  attentionCore,
  closeAttentionWorkers,
} from "../src/backends/cpu/attention-core.js";
import { qkvToContext } from "../src/engine/qkv.js";
import { GraphBuilder } from "../src/ir/builder.js";
import { Tensor } from "../src/ir/tensor.js";
import { modelFromGraph, saveModel } from "../src/onnx/index.js";
import { benchArgs } from "./cli-args.js";

// --help prints the usage above (this script reads its own arguments).
benchArgs(import.meta.url, () => undefined);

const quick = process.argv.includes("--quick");
const B = quick ? 2 : 8;
const N = 12;
const H = 64;
const E = N * H;

function randomData(n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.random() * 2 - 1;
  return a;
}

/** Median seconds per call over `reps` calls after one warm-up. */
async function time(fn: () => unknown, reps: number): Promise<number> {
  await fn();
  const t: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await fn();
    t.push((performance.now() - t0) / 1000);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)]!;
}

async function ortSession(S: number): Promise<ort.InferenceSession> {
  const b = new GraphBuilder({ opsets: { "com.microsoft": 1 } });
  const names = ["query", "key", "value"].map((n) => b.input(n, "float32", [B, S, E]));
  const out = b.op("MultiHeadAttention", names, { num_heads: N }, { domain: "com.microsoft" });
  b.output(out, "float32", [B, S, E]);
  const bytes = saveModel(modelFromGraph(b.build()));
  return ort.InferenceSession.create(bytes, { executionProviders: ["cpu"] });
}

/** The packed [S, B, 3E] problem as attention-core arguments (q, k, v at offsets 0, H, 2H of each head). */
function packedArgs(S: number, data: Float32Array): AttentionArgs {
  const layout = (offset: number) => ({
    offset,
    batchStride: 3 * E,
    headStride: 3 * H,
    seqStride: B * 3 * E,
  });
  return {
    batch: B,
    numHeads: N,
    kvNumHeads: N,
    seqQ: S,
    seqKV: S,
    headSize: H,
    vHeadSize: H,
    scale: 1 / Math.sqrt(H),
    q: data,
    qLayout: layout(0),
    k: data,
    kLayout: layout(H),
    v: data,
    vLayout: layout(2 * H),
    out: new Float32Array(S * B * E),
    outLayout: { offset: 0, batchStride: E, headStride: H, seqStride: B * E },
  };
}

const rows: string[] = [];
for (const S of [128, 512]) {
  const flops = 4 * B * N * S * S * H;
  const reps = S >= 512 ? 2 : 3;
  const data = randomData(S * B * 3 * E);
  const qkv = new Tensor("float32", data, [S, B, 3 * E, 1, 1]);
  const sync = await time(() => qkvToContext(qkv, { numHeads: N, parallel: { mode: "never" } }), reps);
  const par = await time(() => qkvToContext(qkv, { numHeads: N, parallel: { mode: "always" } }), reps);
  const args = packedArgs(S, data);
  const js = await time(() => attentionCore(args, "js"), S >= 512 ? 1 : 2);
  const session = await ortSession(S);
  const feed = Object.fromEntries(
    ["query", "key", "value"].map((n) => [n, new ort.Tensor("float32", randomData(B * S * E), [B, S, E])]),
  );
  const ortT = await time(() => session.run(feed), reps);
  const g = (t: number) => (flops / t / 1e9).toFixed(2);
  rows.push(
    `| ${S} | ${B} | ${g(js)} | ${g(sync)} | ${g(par)} | ${g(ortT)} | ${(ortT / sync).toFixed(2)} | ${(ortT / par).toFixed(2)} |`,
  );
  await session.release();
}
await closeAttentionWorkers();
console.log(`packed-QKV attention, N=${N}, H=${H}, float32, GFLOP/s (4·B·N·S²·H flops / median time)`);
console.log(
  "| S | B | JS kernel 1 thread | mhafuse 1 thread | mhafuse all cores | onnxruntime MHA (CPU) | mhafuse/ort (1 thr) | mhafuse/ort (all) |",
);
console.log("|---|---|---|---|---|---|---|---|");
for (const r of rows) console.log(r);
