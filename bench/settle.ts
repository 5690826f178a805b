/**
 * The pause before each timed run of an interleaved bench: wait until no thread of this process is running.
 * A thread pool keeps spinning after its run — onnxruntime-node's intra-op pool for about 35 ms on the 2-vCPU
 * box (one vCPU busy: `process.cpuUsage` read in 5 ms windows after a [1,128] run gave 4–8 ms of CPU per window
 * for 35 ms, then 0.1), the native pool for 300 µs — and a fixed 20 ms pause left onnxruntime's spin running
 * into the next engine's run: at [1,128] mhafuse native took 60–70 ms right after onnxruntime against 46–52 ms
 * right after itself (bench/cpu.ts, per-rep times), which made it look 15–20% slower at batch 1 than at batch 8.
 */
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
