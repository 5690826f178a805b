/**
 * The order engines run in, rep by rep. A plain rotation keeps every engine's predecessor fixed (in a cyclic
 * shift of [a, b, c, d], b always runs right after a), so a predecessor that leaves threads spinning after its run
 * (onnxruntime's pool does) taxes the same engine every rep: on the 2-vCPU box it made the engine that followed
 * onnxruntime 8–10% slower than the same graph in the next column. A balanced Latin square (Williams design)
 * puts every engine right after every other one equally often over n reps (2n for odd n).
 */
export function runOrder(n: number, rep: number): number[] {
  const row = rep % (n % 2 === 0 ? n : 2 * n);
  const base: number[] = [];
  for (let i = 0, lo = 0, hi = 0; i < n; i++) {
    // 0, 1, n-1, 2, n-2, …: the first row of the design; row r adds r to every entry.
    const v = i === 0 ? 0 : i % 2 === 1 ? ++lo : n - ++hi;
    base.push(v);
  }
  const order = base.map((v) => (v + row) % n);
  // Odd n: the second n rows are the first n reversed, which balances the pairs.
  return n % 2 === 1 && row >= n ? order.reverse() : order;
}
