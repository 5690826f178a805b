/**
 * The replay plans of one prepared graph (./replay-plan.ts) and when to make one. Every node-by-node run
 * records (tape and capture: cheap, no GPU work); a recording becomes a plan the SECOND time an equal one is
 * seen — same feed dims, dtypes and fetches, same deciding host values — so a signature met once (a one-off
 * batch, each step of a decoding loop whose cache grows) reserves no buffers. At most MAX_PLANS plans live per
 * prepared graph, the least recently replayed released first; each holds the buffers of one whole run.
 *
 * `status` says what the last run did and, when it did not replay, why: the inspect-visible account of a
 * graph that never replays (a CPU fallback, a read-back in the middle of the run) or of feeds that differ
 * from every plan in a value that decides the recording (another padding mask).
 */
import type { Tensor } from "../../../ir/tensor.js";
import type { ReplayStatus } from "../../backend.js";
import { type ReplayCapture, type Snapshot, sameSnapshot } from "./replay-capture.js";
import type { ReplayPlan, ReplaySummary } from "./replay-plan.js";

/** Plans kept per prepared graph. */
const MAX_PLANS = 4;
/** Recordings remembered (their deciding values only) until a second equal one comes. */
const MAX_SEEN = 16;

/** `MHAFUSE_WEBGPU_REPLAY=0` turns replay off by default (the session option `replay` overrides it). */
export function replayDefault(): boolean {
  return process.env.MHAFUSE_WEBGPU_REPLAY !== "0";
}

function sameDeciding(a: ReadonlyMap<string, Snapshot>, b: ReadonlyMap<string, Snapshot>): boolean {
  if (a.size !== b.size) return false;
  for (const [name, s] of a) {
    const t = b.get(name);
    if (!t || !sameSnapshot(s, t)) return false;
  }
  return true;
}

export class ReplayPlans {
  /** Least recently replayed first. */
  readonly #plans: ReplayPlan[] = [];
  readonly #seen: { key: string; deciding: ReadonlyMap<string, Snapshot> }[] = [];
  #replayed = 0;
  /** Why the plans of the last run's key did not fit it. */
  #misfit: string | undefined;
  status: ReplayStatus;

  constructor(readonly enabled: boolean) {
    this.status = enabled
      ? { last: "recorded", plans: 0, replayed: 0 }
      : {
          last: "off",
          reason: "replay is turned off (replay: false or MHAFUSE_WEBGPU_REPLAY=0)",
          plans: 0,
          replayed: 0,
        };
  }

  get size(): number {
    return this.#plans.length;
  }

  /** The live plans, least recently replayed first. */
  describe(): ReplaySummary[] {
    return this.#plans.map((p) => p.describe());
  }

  #set(last: ReplayStatus["last"], reason?: string): void {
    this.status = {
      last,
      ...(reason ? { reason } : {}),
      plans: this.#plans.length,
      replayed: this.#replayed,
    };
  }

  /** A profiled or verify run: not replayed, not recorded. */
  bypass(reason: string): void {
    if (this.enabled) this.#set("bypassed", reason);
  }

  /** Replays the most recent plan of `key` that fits `feeds`: its outputs and plan; undefined when none fits. */
  async replay(
    key: string,
    feeds: Readonly<Record<string, Tensor>>,
  ): Promise<{ outputs: Record<string, Tensor>; plan: ReplayPlan } | undefined> {
    this.#misfit = undefined;
    for (let i = this.#plans.length - 1; i >= 0; i--) {
      const plan = this.#plans[i]!;
      if (plan.key !== key) continue;
      const result = await plan.run(feeds);
      if (typeof result === "string") {
        this.#misfit ??= result;
        continue;
      }
      this.#plans.splice(i, 1);
      this.#plans.push(plan);
      this.#replayed++;
      this.#set("replayed");
      return { outputs: result, plan };
    }
    return undefined;
  }

  /**
   * After a node-by-node run that recorded `capture` under `key` (its buffers back in the pool): keeps it as a
   * plan if an equal recording was seen before (`build` reserves its buffers), else remembers it.
   */
  consider(key: string, capture: ReplayCapture, build: () => ReplayPlan | string): void {
    if (capture.refused) {
      this.#set("refused", capture.refused);
      return;
    }
    const at = this.#seen.findIndex((s) => s.key === key && sameDeciding(s.deciding, capture.deciding));
    if (at < 0) {
      if (this.#seen.length >= MAX_SEEN) this.#seen.shift();
      this.#seen.push({ key, deciding: capture.deciding });
      this.#set("recorded", this.#misfit ?? "first run of this signature: the next equal one becomes a plan");
      return;
    }
    this.#seen.splice(at, 1);
    const plan = build();
    if (typeof plan === "string") {
      this.#set("refused", plan);
      return;
    }
    this.#plans.push(plan);
    while (this.#plans.length > MAX_PLANS) this.#plans.shift()!.release();
    this.#set("captured", this.#misfit);
  }

  /** Releases every plan's buffers and forgets what was seen. */
  release(): void {
    for (const p of this.#plans) p.release();
    this.#plans.length = 0;
    this.#seen.length = 0;
    this.status = { ...this.status, plans: 0 };
  }
}
