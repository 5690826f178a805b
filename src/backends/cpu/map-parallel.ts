/**
 * Elementwise float32 maps (GELU…) split into chunks over the CPU pool while the caller awaits: on a
 * BERT-base FFN activation (3M elements, ~25 ms on one thread) the calling thread would otherwise hold its
 * event loop for the whole op. Each chunk runs the same array function as the synchronous op, so results
 * are bit-identical.
 */
import { geluErfFloat32Array, geluTanhFloat32Array } from "../../ops/elementwise-util.js";
import { type CpuTask, cpuPool } from "./pool.js";
import { awaitSharedJob, newControl } from "./shared-job.js";
import type { ThreadPool } from "./thread-pool.js";

/** The maps a job may name (functions cannot cross to a worker; their names can). */
const MAPS = {
  "gelu-erf": geluErfFloat32Array,
  "gelu-tanh": geluTanhFloat32Array,
} as const satisfies Record<string, (x: Float32Array, y: Float32Array) => void>;

export type MapName = keyof typeof MAPS;

export interface MapJob {
  map: MapName;
  /** Shared memory: workers read x and write y in place. */
  x: Float32Array;
  y: Float32Array;
  chunk: number;
  control: Int32Array;
}

/** Elements per unit: enough to amortise claiming, small enough that a slow thread hands work over. */
const CHUNK = 1 << 16;

export function mapUnits(job: Pick<MapJob, "x" | "chunk">): number {
  return Math.ceil(job.x.length / job.chunk);
}

export function runMapUnit(job: MapJob, unit: number): void {
  const start = unit * job.chunk;
  const end = Math.min(job.x.length, start + job.chunk);
  MAPS[job.map](job.x.subarray(start, end), job.y.subarray(start, end));
}

const shared = (a: Float32Array) => a.buffer instanceof SharedArrayBuffer;

/** y = map(x) on `threads` workers; x and y are copied through shared memory when they are not in it. */
export async function mapAsync(
  map: MapName,
  x: Float32Array,
  y: Float32Array,
  threads: number,
  pool: ThreadPool<CpuTask> = cpuPool,
): Promise<void> {
  const xs = shared(x) ? x : copyToShared(x);
  const ys = shared(y) ? y : new Float32Array(new SharedArrayBuffer(y.byteLength));
  const job: MapJob = { map, x: xs, y: ys, chunk: CHUNK, control: newControl() };
  const post = (i: number) => pool.post(i, { kind: "map", job });
  await awaitSharedJob(post, job.control, mapUnits(job), threads, (u) => runMapUnit(job, u), "map");
  if (ys !== y) y.set(ys);
}

function copyToShared(a: Float32Array): Float32Array {
  const c = new Float32Array(new SharedArrayBuffer(a.byteLength));
  c.set(a);
  return c;
}
