/**
 * GELU (erf) on the native kernel against the reference's float32 loop (the JS path the native op used to take
 * for negative inputs): 128 × 3072 elements (one BERT-base FFN activation at [1,128]), mixed signs, all positive
 * (the vector fast path) and all in the cancelling range (-2.8, 0); medians of 15.
 *
 *   node --import tsx bench/gelu.ts
 */
import { nativeKernels } from "../src/backends/cpu/native/index.js";
import { geluErfFloat32Array } from "../src/ops/elementwise-util.js";

const nk = nativeKernels();
if (!nk) throw new Error("the native addon did not load (npm run build:native)");
const n = 128 * 3072;
const mixed = new Float32Array(n);
const positive = new Float32Array(n);
const cancelling = new Float32Array(n);
for (let i = 0; i < n; i++) {
  mixed[i] = Math.sin(i) * 3;
  positive[i] = Math.abs(mixed[i]!);
  cancelling[i] = -Math.abs(Math.sin(i)) * 2.8;
}
const y = new Float32Array(n);
const cases: [string, () => void][] = [
  ["native, mixed signs", () => nk.gelu(mixed, y)],
  ["native, positive", () => nk.gelu(positive, y)],
  ["native, -2.8 < x < 0", () => nk.gelu(cancelling, y)],
  ["reference float32 loop (JS), mixed signs", () => geluErfFloat32Array(mixed, y)],
];
for (const [name, run] of cases) {
  run();
  const times: number[] = [];
  for (let r = 0; r < 15; r++) {
    const t0 = performance.now();
    run();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const ms = times[7]!;
  console.log(`${name.padEnd(44)} ${ms.toFixed(3)} ms  ${((ms * 1e6) / n).toFixed(2)} ns/element`);
}
