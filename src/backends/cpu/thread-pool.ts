/**
 * A small, lazily started pool of worker threads running one worker script.
 *
 * Why not a library: we need three things together — workers that never keep the process alive while idle
 * (unref), a worker entry that works both from TypeScript run through tsx and from compiled dist/ JS, and
 * callers that may block on shared memory (Atomics.wait) instead of awaiting replies.
 */
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { defaultThreads } from "./defaults.js";

export interface WorkerRequest<P> {
  id: number;
  payload: P;
}

export interface WorkerReply {
  id: number;
  error?: string;
}

/**
 * The URL of a sibling module with the same extension as `moduleUrl`: `.ts` when the caller runs under tsx,
 * `.js` when it runs from dist/. Pass `import.meta.url` of the calling module.
 */
export function siblingModule(moduleUrl: string, baseName: string): URL {
  const ext = extname(fileURLToPath(moduleUrl)) || ".js";
  return new URL(`./${baseName}${ext}`, moduleUrl);
}

/**
 * What to hand `new Worker`. Compiled .js runs as is. A .ts script (we run under tsx) cannot: on Node 20 the
 * `--import tsx` hooks of the parent do not reach a worker's entry module, so a tiny eval'd bootstrap
 * registers tsx inside the worker first and then imports the script.
 */
function workerEntry(script: URL): { entry: string | URL; evaluate: boolean } {
  if (!script.pathname.endsWith(".ts")) return { entry: script, evaluate: false };
  const tsxApi = import.meta.resolve("tsx/esm/api");
  const source = `import(${JSON.stringify(tsxApi)}).then((m) => m.register()).then(() => import(${JSON.stringify(script.href)}))`;
  return { entry: source, evaluate: true };
}

/**
 * Node flags a worker accepts and that matter to it: module loaders (tsx's `--import`), resolution
 * conditions, source maps, warnings. Everything else is dropped: V8 and process-wide flags
 * (`--max-old-space-size`, `--expose-gc`, `--stack-size`, `--trace-gc`…) make `new Worker` throw
 * ERR_WORKER_INVALID_EXEC_ARGV, and entry flags (`-e CODE`, `--input-type`, `--test`) describe the parent.
 */
const WORKER_FLAGS_WITH_VALUE = new Set([
  "--import",
  "--require",
  "-r",
  "--loader",
  "--experimental-loader",
  "--conditions",
  "-C",
]);
const WORKER_FLAGS = new Set([
  "--enable-source-maps",
  "--no-warnings",
  "--no-deprecation",
  "--trace-warnings",
  "--trace-uncaught",
  "--experimental-vm-modules",
  "--experimental-strip-types",
  "--experimental-transform-types",
  "--no-experimental-strip-types",
]);

/** The parent's flags that a worker accepts (see WORKER_FLAGS): `--flag value` and `--flag=value` forms. */
export function workerExecArgv(argv: readonly string[] = process.execArgv): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf("=");
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (WORKER_FLAGS_WITH_VALUE.has(name)) {
      if (eq > 0) out.push(a);
      else if (i + 1 < argv.length) out.push(a, argv[++i]!);
    } else if (WORKER_FLAGS.has(name)) out.push(a);
    else if (eq < 0 && FLAGS_TAKING_A_VALUE.has(a)) i++; // a dropped flag's separate value is dropped too
  }
  return out;
}

/** Dropped flags whose value may follow as a separate argument (so it is not mistaken for a flag). */
const FLAGS_TAKING_A_VALUE = new Set([
  "-e",
  "--eval",
  "-p",
  "--print",
  "--input-type",
  "--max-old-space-size",
  "--stack-size",
  "--title",
  "--inspect-port",
  "--max-semi-space-size",
  "--test-reporter",
  "--test-name-pattern",
]);

interface Pending {
  resolve: () => void;
  reject: (err: Error) => void;
}

interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
}

/** Number of CPU threads the process may use by default (at least 1; MHAFUSE_THREADS, else every core). */
export const cpuThreads = defaultThreads;

export class ThreadPool<P> {
  private readonly slots: (Slot | undefined)[] = [];
  private nextId = 1;

  constructor(private readonly script: URL) {}

  /**
   * Sends `payload` to worker `index` (started on first use) and resolves when it replies. The worker is
   * ref'd while it owes a reply — so an awaiting process stays alive — and unref'd when idle.
   */
  post(index: number, payload: P): Promise<void> {
    const slot = this.slot(index);
    const id = this.nextId++;
    const done = new Promise<void>((resolve, reject) => slot.pending.set(id, { resolve, reject }));
    slot.worker.ref();
    slot.worker.postMessage({ id, payload } satisfies WorkerRequest<P>);
    return done;
  }

  /** Workers started and not terminated. */
  get liveWorkers(): number {
    return this.slots.filter((s) => s !== undefined).length;
  }

  /** Terminates every worker (tests, shutdown). Workers are restarted on the next post. */
  async close(): Promise<void> {
    const workers = this.slots.splice(0).filter((s): s is Slot => s !== undefined);
    // An idle worker is unref'd; ref it so that awaiting its termination keeps the process alive.
    for (const s of workers) s.worker.ref();
    await Promise.all(workers.map((s) => s.worker.terminate()));
  }

  private slot(index: number): Slot {
    const existing = this.slots[index];
    if (existing) return existing;
    // The parent's loader and source-map flags apply in workers too; the flags workers reject are dropped.
    const { entry, evaluate } = workerEntry(this.script);
    const worker = new Worker(entry, { eval: evaluate, execArgv: workerExecArgv() });
    worker.unref();
    const slot: Slot = { worker, pending: new Map() };
    this.slots[index] = slot;
    const fail = (err: Error) => {
      if (this.slots[index] === slot) this.slots[index] = undefined;
      for (const p of slot.pending.values()) p.reject(err);
      slot.pending.clear();
    };
    worker.on("message", (reply: WorkerReply) => {
      const p = slot.pending.get(reply.id);
      if (!p) return;
      slot.pending.delete(reply.id);
      // A closing pool has ref'd its workers until they exit; a late reply must not unref them again.
      if (slot.pending.size === 0 && this.slots[index] === slot) worker.unref();
      if (reply.error) p.reject(new Error(reply.error));
      else p.resolve();
    });
    worker.on("error", fail);
    worker.on("exit", (code) => fail(new Error(`worker thread exited with code ${code}`)));
    return slot;
  }
}
