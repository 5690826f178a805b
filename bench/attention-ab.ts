/**
 * A/B of two builds of the native addon in one process — for attention kernel changes: the packed-QKV op
 * (TensorRT layout, every length full) at BERT shapes through NativeKernels, both builds interleaved rep by rep
 * with a pause before each call (past the other build's pool spin), medians; and the max |diff| between the
 * builds' outputs. Build B from a copy of the repo with the change (`node scripts/build-native.mjs` there), then:
 *
 *   node --import tsx bench/attention-ab.ts --b /path/to/copy/native/build/mhafuse_native.node [--threads 2]
 *   [--shapes 1x128,8x128,1x512] [--reps 30] [--pause-ms 3]
 */
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { NativeKernels } from "../src/backends/cpu/native/kernels.js";
import { LOCAL_BUILD } from "../src/native/load.js";
import { benchArgs } from "./cli-args.js";

const { values } = benchArgs(import.meta.url, () =>
  parseArgs({
    options: {
      a: { type: "string", default: LOCAL_BUILD },
      b: { type: "string" },
      threads: { type: "string", default: "2" },
      shapes: { type: "string", default: "1x128,8x128,1x512" },
      reps: { type: "string", default: "30" },
      "pause-ms": { type: "string", default: "3" },
    },
  }),
);
if (!values.b) throw new Error("--b: the other build's mhafuse_native.node (see the header)");
const require = createRequire(import.meta.url);
const builds = {
  A: new NativeKernels(require(resolve(values.a!))),
  B: new NativeKernels(require(resolve(values.b))),
};
for (const k of Object.values(builds)) k.setThreads(Number(values.threads));
const pause = Number(values["pause-ms"]);
const median = (x: number[]) => [...x].sort((a, b) => a - b)[x.length >> 1]!;
console.log(
  `A ${values.a}\nB ${values.b}\n${values.threads} threads, median of ${values.reps}, ${pause} ms pauses`,
);
for (const spec of values.shapes!.split(",")) {
  const [B, S] = spec.split("x").map(Number) as [number, number];
  const [N, H] = [12, 64];
  const E = N * H;
  const qkv = new Float32Array(S * B * 3 * E).map((_, i) => Math.sin(i) * 2);
  const outs = { A: new Float32Array(S * B * E), B: new Float32Array(S * B * E) };
  const lengths = new Int32Array(B).fill(S);
  const times: Record<"A" | "B", number[]> = { A: [], B: [] };
  for (let r = -3; r < Number(values.reps); r++)
    for (const name of r % 2 ? (["A", "B"] as const) : (["B", "A"] as const)) {
      await new Promise((done) => setTimeout(done, pause));
      const t0 = performance.now();
      builds[name].packedQkvAttention({
        qkv,
        out: outs[name],
        numHeads: N,
        headSize: H,
        batch: B,
        seqLen: S,
        lengths,
      });
      if (r >= 0) times[name].push(performance.now() - t0);
    }
  let d = 0;
  for (let i = 0; i < outs.A.length; i++) d = Math.max(d, Math.abs(outs.A[i]! - outs.B[i]!));
  const flops = 4 * B * N * S * S * H;
  const row = (n: "A" | "B") =>
    `${median(times[n]).toFixed(3)} ms (${(flops / median(times[n]) / 1e6).toFixed(0)} GFLOP/s)`;
  console.log(`[${B},${N},${S},${H}] A ${row("A")}, B ${row("B")}; max |A - B| ${d}`);
}
