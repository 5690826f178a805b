/**
 * The pause before each timed run of an interleaved bench: wait until no thread of this process is running.
 * A thread pool keeps spinning after its run — onnxruntime-node's intra-op pool for about 35 ms on the 2-vCPU
 * box (one vCPU busy: `process.cpuUsage` read in 5 ms windows after a [1,128] run gave 4–8 ms of CPU per window
 * for 35 ms, then 0.1), the native pool for 300 µs — and a fixed 20 ms pause left onnxruntime's spin running
 * into the next engine's run: at [1,128] mhafuse native took 60–70 ms right after onnxruntime against 46–52 ms
 * right after itself (bench/cpu.ts, per-rep times), which made it look 15–20% slower at batch 1 than at batch 8.
 */
import { readFileSync } from "node:fs";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** CPU time of every thread of the process, in ms. */
function cpuMs(): number {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
}

/**
 * Sleeps at least `minMs`, then until a 5 ms window in which the whole process used under 0.5 ms of CPU
 * (every pool asleep), at most `maxMs` in all. Returns the time waited (ms).
 */
export async function settle(minMs = 20, maxMs = 500): Promise<number> {
  const start = performance.now();
  await sleep(minMs);
  while (performance.now() - start < maxMs) {
    const c0 = cpuMs();
    await sleep(5);
    if (cpuMs() - c0 < 0.5) break;
  }
  return performance.now() - start;
}

/** Busy CPU time of the whole box so far (ms; /proc/stat, 10 ms resolution), or undefined where unreadable. */
function boxBusyMs(): number | undefined {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!;
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal: everything but idle and iowait.
    const busy = f.slice(0, 8).reduce((s, x, i) => (i === 3 || i === 4 ? s : s + x), 0);
    return busy * 10;
  } catch {
    return undefined;
  }
}

/**
 * CPU time other processes took while a measurement ran: the box's busy time less this process's own. The
 * dev box is shared and other sessions' test runs come and go; an interleaved A/B pair taken while one ran
 * is no measurement of either side, so the A/B benches drop such pairs (and say how many). `busy()`: others
 * took over a tenth of a CPU over the window, plus 30 ms of slack for /proc/stat's 10 ms accounting ticks
 * (the quiet box read 0–15 ms over 210–280 ms windows of three [1,128] runs).
 */
export function foreignLoad(): { ms(): number; busy(): boolean } {
  const box0 = boxBusyMs();
  const own0 = cpuMs();
  const start = performance.now();
  const ms = () => {
    const box1 = boxBusyMs();
    if (box0 === undefined || box1 === undefined) return 0;
    return Math.max(0, box1 - box0 - (cpuMs() - own0));
  };
  return { ms, busy: () => ms() > 0.1 * (performance.now() - start) + 30 };
}
