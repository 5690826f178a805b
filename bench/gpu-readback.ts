/**
 * What reading results back costs on this adapter: a storage buffer of each size copied into a MAP_READ staging
 * buffer, `mapAsync`, then `getMappedRange().slice()` into JS memory — the path every run's outputs take
 * (graph/prepared-graph.ts, graph/replay-plan.ts). Times each step (median of the repeats) and the copy-out rate,
 * to tell apart the GPU copy, the map round trip and the host copy from mapped memory; also reading the mapped
 * bytes only (every 16th float) and copying them into an array already touched, to separate the mapped memory's
 * read speed from the cost of a fresh destination; and, each on its own fresh mapping, the runtime's copy into a
 * prefaulted buffer by JS or by the native addon's copyBytes on its thread pool.
 *
 *   node --import tsx bench/gpu-readback.ts [--sizes 0.5,4,12.6,50] [--reps 15]
 */
import { parseArgs } from "node:util";
import { createWebGpuDevice } from "../src/backends/webgpu/device.js";
import { prefaultedBuffer } from "../src/backends/webgpu/readback.js";
import { loadNativeQuietly } from "../src/native/load.js";
import { benchArgs } from "./cli-args.js";
import { median } from "./gpu-timing.js";

const { values } = benchArgs(import.meta.url, () =>
  parseArgs({
    options: { sizes: { type: "string", default: "0.5,4,12.6,50" }, reps: { type: "string", default: "15" } },
  }),
);
const native = loadNativeQuietly();
const dev = await createWebGpuDevice();
const device = dev.device;
const STORAGE = 0x80;
const COPY_SRC = 0x04;
const COPY_DST = 0x08;
const MAP_READ = 0x01;
console.log(`adapter: ${JSON.stringify(dev.adapterInfo)}`);
console.log(
  "| MB | submit + copy + map | getMappedRange | .slice() | slice GB/s | read only (sum) | .set() into a reused array | whole |",
);
console.log("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
const rows: string[] = [];
for (const mb of values.sizes!.split(",").map(Number)) {
  const bytes = Math.ceil((mb * 1e6) / 4) * 4;
  const src = device.createBuffer({ size: bytes, usage: STORAGE | COPY_SRC | COPY_DST });
  device.queue.writeBuffer(src, 0, new Float32Array(bytes / 4).fill(1.5));
  const staging = device.createBuffer({ size: bytes, usage: MAP_READ | COPY_DST });
  const reused = new Float32Array(bytes / 4);
  const t = {
    map: [] as number[],
    range: [] as number[],
    slice: [] as number[],
    read: [] as number[],
    set: [] as number[],
    whole: [] as number[],
  };
  // Each way of taking the bytes on its own freshly written and mapped staging buffer, the ways interleaved:
  // the first read of mapped memory may warm caches for the next.
  const ways: Record<string, (range: ArrayBuffer) => ArrayBuffer | Float32Array> = {
    "JS .set() into a fresh prefaulted buffer (runs today)": (range) => {
      const d = prefaultedBuffer(bytes);
      const t0 = performance.now();
      new Uint8Array(d).set(new Uint8Array(range));
      fresh.set.push(performance.now() - t0);
      return d;
    },
    ...(native?.copyBytes
      ? {
          [`native copyBytes into a fresh prefaulted buffer (${native.info().threads} threads)`]: (range) => {
            const d = prefaultedBuffer(bytes);
            const t0 = performance.now();
            native.copyBytes!(d, 0, range, 0, bytes);
            fresh.native.push(performance.now() - t0);
            return d;
          },
          "native copyBytes into a reused array": (range) => {
            const t0 = performance.now();
            native.copyBytes!(reused, 0, range, 0, bytes);
            fresh.nativeReused.push(performance.now() - t0);
            return reused;
          },
        }
      : {}),
  };
  const fresh = { set: [] as number[], native: [] as number[], nativeReused: [] as number[] };
  for (let r = -2; r < Number(values.reps); r++) {
    const t0 = performance.now();
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(src, 0, staging, 0, bytes);
    device.queue.submit([enc.finish()]);
    await staging.mapAsync(MAP_READ, 0, bytes);
    const t1 = performance.now();
    const range = staging.getMappedRange(0, bytes);
    const t2 = performance.now();
    const out = range.slice(0);
    const t3 = performance.now();
    // The other ways to take the bytes: reading them only, and copying them into memory already touched.
    const view = new Float32Array(range);
    let sum = 0;
    for (let i = 0; i < view.length; i += 16) sum += view[i]!;
    const t4 = performance.now();
    reused.set(view);
    const t5 = performance.now();
    staging.unmap();
    if (new Float32Array(out)[bytes / 4 - 1] !== 1.5 || !(sum > 0))
      throw new Error("readback returned wrong data");
    if (r >= 0) {
      t.map.push(t1 - t0);
      t.range.push(t2 - t1);
      t.slice.push(t3 - t2);
      t.read.push(t4 - t3);
      t.set.push(t5 - t4);
      t.whole.push(t3 - t0);
    }
    for (const take of Object.values(ways)) {
      const enc2 = device.createCommandEncoder();
      enc2.copyBufferToBuffer(src, 0, staging, 0, bytes);
      device.queue.submit([enc2.finish()]);
      await staging.mapAsync(MAP_READ, 0, bytes);
      const got = take(staging.getMappedRange(0, bytes));
      staging.unmap();
      const f = got instanceof Float32Array ? got : new Float32Array(got);
      if (f[0] !== 1.5 || f[bytes / 4 - 1] !== 1.5) throw new Error("a copy returned wrong data");
    }
    if (r < 0) for (const a of Object.values(fresh)) a.length = 0;
  }
  const ms = (x: number[]) => median(x).toFixed(3);
  console.log(
    `| ${mb} | ${ms(t.map)} | ${ms(t.range)} | ${ms(t.slice)} | ${(bytes / 1e6 / median(t.slice)).toFixed(1)} | ${ms(t.read)} | ${ms(t.set)} | ${ms(t.whole)} |`,
  );
  const names = Object.keys(ways);
  const series = [fresh.set, fresh.native, fresh.nativeReused];
  names.forEach((name, i) => {
    rows.push(`| ${mb} | ${name} | ${ms(series[i]!)} | ${(bytes / 1e6 / median(series[i]!)).toFixed(1)} |`);
  });
  src.destroy();
  staging.destroy();
}
console.log("\nEach way on its own freshly mapped buffer (median ms, GB/s):\n");
console.log("| MB | copy out of the mapped range | ms | GB/s |\n| ---: | --- | ---: | ---: |");
for (const r of rows) console.log(r);
dev.dispose();
process.exit(0);
