/**
 * GPU timing shared by the GPU benches: one kernel's GPU time from timestamp queries (median over the
 * repeats, each dispatch its own pass) beside its wall time (one submit of all repeats until the queue is
 * idle, divided by the repeats), and a per-kernel profile table of one profiled whole-model run.
 */
import type { WebGpuContext } from "../src/backends/webgpu/context.js";
import type { CommandRecorder, KernelTiming } from "../src/backends/webgpu/recorder.js";

/** Dawn quantizes timestamps (to 2^16 ns on the H200) unless told not to: per-kernel times need the raw counter. */
export const RAW_TIMESTAMPS = "disable-dawn-features=timestamp_quantization";

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

/**
 * An idle GPU clocks down: a kernel timed right after the host spent a while compiling it would run during the
 * ramp (on the H200 a 4096³ GEMM measured 2–4× slower first than later in the same process, and a tile sweep's
 * rows disagreed with their own wall times). Every timeKernel keeps its kernel busy this long before timing,
 * the first of a process longer.
 */
const WARM_MS = 100;
/** Rounds of timing per kernel (see timeKernel). */
const TIMING_ROUNDS = 2;
const FIRST_WARM_MS = 300;
let warmed = false;

/**
 * Compiles and warms (two recordings), then times `reps` recordings, twice: GPU ms (the lower of two medians;
 * NaN without timestamps), wall ms (the lower of two means).
 */
export async function timeKernel(
  ctx: WebGpuContext,
  reps: number,
  record: (rec: CommandRecorder) => void,
): Promise<{ gpuMs: number; wallMs: number }> {
  const warm = ctx.recorder();
  record(warm);
  record(warm);
  await warm.submit();
  await warm.done();
  const warmMs = warmed ? WARM_MS : FIRST_WARM_MS;
  for (const t0 = performance.now(); performance.now() - t0 < warmMs; ) {
    const busy = ctx.recorder();
    for (let r = 0; r < 8; r++) record(busy);
    await busy.submit();
    await busy.done();
  }
  warmed = true;
  // Two rounds of each measure, the better one kept: on the H200 a round now and then ran 2–3× slow in one column
  // while the other column of the same row did not (bench/h200-tc-tiles-auto-1129e.log, 4096³: GPU 2.406 ms,
  // wall 0.838; the same kernel's next row 0.839 / 0.833) — a transient of the machine, not of the kernel.
  let gpuMs = Number.NaN;
  let wallMs = Number.POSITIVE_INFINITY;
  for (let round = 0; round < TIMING_ROUNDS; round++) {
    if (ctx.gpu.features.timestampQuery) {
      const rec = ctx.recorder({ profile: true });
      for (let r = 0; r < reps; r++) record(rec);
      await rec.submit();
      const ms = median(rec.timings.map((t) => t.ns)) / 1e6;
      gpuMs = Number.isNaN(gpuMs) ? ms : Math.min(gpuMs, ms);
    }
    const rec = ctx.recorder();
    for (let r = 0; r < reps; r++) record(rec);
    const t0 = performance.now();
    await rec.submit();
    await rec.done();
    wallMs = Math.min(wallMs, (performance.now() - t0) / reps);
  }
  return { gpuMs, wallMs };
}

/** Lines of a profile: kernels grouped by label (total GPU ms, share, dispatches), then the top dispatches. */
export function profileTable(timings: readonly KernelTiming[], top = 12): string[] {
  const total = timings.reduce((s, t) => s + t.ns, 0);
  const byLabel = new Map<string, { ns: number; n: number }>();
  for (const t of timings) {
    const e = byLabel.get(t.label) ?? { ns: 0, n: 0 };
    e.ns += t.ns;
    e.n++;
    byLabel.set(t.label, e);
  }
  const pct = (ns: number) => `${((100 * ns) / Math.max(total, 1)).toFixed(1).padStart(5)}%`;
  const ms = (ns: number) => (ns / 1e6).toFixed(3).padStart(8);
  const lines = [`GPU time of ${timings.length} dispatches: ${ms(total)} ms`, "by kernel:"];
  for (const [label, e] of [...byLabel].sort((a, b) => b[1].ns - a[1].ns).slice(0, top))
    lines.push(`  ${label.padEnd(44)} ${ms(e.ns)} ms ${pct(e.ns)}  ${String(e.n).padStart(4)} dispatches`);
  lines.push(`top ${top} dispatches:`);
  for (const t of [...timings].sort((a, b) => b.ns - a.ns).slice(0, top))
    lines.push(`  ${t.label.padEnd(44)} ${ms(t.ns)} ms ${pct(t.ns)}  ${t.node ?? ""}`);
  return lines;
}
