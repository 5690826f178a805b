/**
 * Dynamic batching, as Triton's dynamic batcher: requests to one model that arrive within `maxDelayMs` of each
 * other, and whose inputs agree on every dim but the first, are concatenated along dim 0 (up to `maxBatch`
 * rows), run as one batch, and the outputs split back by rows. Requests that cannot join (other shapes, too
 * many rows, outputs without a batch dim) run on their own. Results are identical to unbatched runs: every
 * op of a batch-major model treats rows independently.
 */
import { sizeOf, Tensor } from "../ir/tensor.js";

export type RunFn = (feeds: Record<string, Tensor>) => Promise<Record<string, Tensor>>;

export interface BatcherOptions {
  maxBatch: number;
  maxDelayMs: number;
  /** Called once per executed batch with its request count and rows (metrics). */
  onBatch?: (requests: number, rows: number) => void;
}

interface Pending {
  feeds: Record<string, Tensor>;
  rows: number;
  key: string;
  resolve: (out: Record<string, Tensor>) => void;
  reject: (e: unknown) => void;
}

/** What must agree for two requests to share a batch: names, dtypes and every dim after the first. */
function batchKey(feeds: Record<string, Tensor>): string {
  return Object.entries(feeds)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, t]) => `${k}:${t.type}:${t.dims.slice(1).join("x")}`)
    .join("|");
}

function rowsOf(feeds: Record<string, Tensor>): number | undefined {
  const counts = new Set(Object.values(feeds).map((t) => (t.rank > 0 ? t.dims[0] : -1)));
  return counts.size === 1 && !counts.has(-1) ? [...counts][0] : undefined;
}

function concatRows(parts: Tensor[]): Tensor {
  const first = parts[0]!;
  const rows = parts.reduce((n, t) => n + t.dims[0]!, 0);
  const dims = [rows, ...first.dims.slice(1)];
  const data = new (first.data.constructor as new (n: number) => Tensor["data"])(sizeOf(dims));
  let at = 0;
  for (const p of parts) {
    (data as Float32Array).set(p.data as Float32Array, at);
    at += p.size;
  }
  return new Tensor(first.type, data, dims);
}

function sliceRows(t: Tensor, start: number, rows: number): Tensor {
  const per = sizeOf(t.dims.slice(1));
  return new Tensor(t.type, t.data.slice(start * per, (start + rows) * per) as Tensor["data"], [
    rows,
    ...t.dims.slice(1),
  ]);
}

export class DynamicBatcher {
  private queue: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly run: RunFn,
    private readonly opts: BatcherOptions,
  ) {}

  submit(feeds: Record<string, Tensor>): Promise<Record<string, Tensor>> {
    const rows = rowsOf(feeds);
    if (rows === undefined || rows >= this.opts.maxBatch || this.opts.maxBatch <= 1) {
      this.opts.onBatch?.(1, rows ?? 1);
      return this.run(feeds);
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ feeds, rows, key: batchKey(feeds), resolve, reject });
      const queued = this.queue.filter((p) => p.key === this.queue[0]!.key).reduce((n, p) => n + p.rows, 0);
      if (queued >= this.opts.maxBatch) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.opts.maxDelayMs);
    });
  }

  /** Runs what is queued: the first request's group, as many as fit; the rest waits for the next flush. */
  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.queue.length === 0) return;
    const key = this.queue[0]!.key;
    const batch: Pending[] = [];
    let rows = 0;
    this.queue = this.queue.filter((p) => {
      if (p.key !== key || rows + p.rows > this.opts.maxBatch) return true;
      batch.push(p);
      rows += p.rows;
      return false;
    });
    if (this.queue.length > 0) this.timer = setTimeout(() => this.flush(), 0);
    void this.execute(batch, rows);
  }

  private async execute(batch: Pending[], rows: number): Promise<void> {
    this.opts.onBatch?.(batch.length, rows);
    try {
      if (batch.length === 1) {
        batch[0]!.resolve(await this.run(batch[0]!.feeds));
        return;
      }
      const names = Object.keys(batch[0]!.feeds);
      const feeds = Object.fromEntries(names.map((n) => [n, concatRows(batch.map((p) => p.feeds[n]!))]));
      const out = await this.run(feeds);
      if (Object.values(out).some((t) => t.dims[0] !== rows)) {
        // An output without a batch dim: these requests cannot share a run after all.
        for (const p of batch) this.run(p.feeds).then(p.resolve, p.reject);
        return;
      }
      let start = 0;
      for (const p of batch) {
        p.resolve(Object.fromEntries(Object.entries(out).map(([k, t]) => [k, sliceRows(t, start, p.rows)])));
        start += p.rows;
      }
    } catch (e) {
      for (const p of batch) p.reject(e);
    }
  }

  /** Runs everything still queued (graceful shutdown). */
  drain(): void {
    while (this.queue.length > 0) this.flush();
  }
}
