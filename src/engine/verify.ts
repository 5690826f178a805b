import { type ErrorCode, MhafuseError } from "../errors.js";
import type { Graph } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import type { AttentionReport } from "../passes/index.js";
import { runGraph } from "./executor.js";

export interface BlockCheck {
  /** The block's id (its Softmax node) and the value compared. */
  id: string;
  output: string;
  path?: string;
  maxAbsDiff: number;
  ok: boolean;
}

export interface VerifyResult {
  ok: boolean;
  tolerance: number;
  blocks: BlockCheck[];
  /**
   * Every graph output compared value by value: `mismatches` counts elements where one side is NaN and the
   * other not, an infinity differs, or |fused − unfused| > tolerance · (1 + |unfused|); any makes `ok` false.
   */
  outputs: OutputCheck[];
}

export interface OutputCheck {
  name: string;
  maxAbsDiff: number;
  mismatches: number;
  /** Flat index of the first mismatching element (-1: none), with both values. */
  first: number;
  expected?: number;
  actual?: number;
  ok: boolean;
}

/** Compares every element of an output of the fused graph (`got`) with the unfused one (`want`). */
export function compareOutput(
  name: string,
  want: Tensor | undefined,
  got: Tensor | undefined,
  tolerance: number,
): OutputCheck {
  const bad = { name, maxAbsDiff: Number.POSITIVE_INFINITY, mismatches: 1, first: 0, ok: false };
  if (!want || !got || want.dims.length !== got.dims.length || want.dims.some((d, i) => d !== got.dims[i]))
    return bad;
  const x = want.toFloat64();
  const y = got.toFloat64();
  let worst = 0;
  let mismatches = 0;
  let first = -1;
  for (let i = 0; i < x.length; i++) {
    const w = x[i]!;
    const g = y[i]!;
    if (w === g || (Number.isNaN(w) && Number.isNaN(g))) continue;
    const d = Math.abs(w - g);
    // NaN-vs-number gives d = NaN, an infinity against anything else d = Infinity: both mismatch.
    if (!(d <= worst)) worst = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
    if (!(d <= tolerance * (1 + Math.abs(w))) || !Number.isFinite(w) || !Number.isFinite(g)) {
      if (mismatches++ === 0) first = i;
    }
  }
  const check: OutputCheck = { name, maxAbsDiff: worst, mismatches, first, ok: mismatches === 0 };
  if (first >= 0) {
    check.expected = x[first]!;
    check.actual = y[first]!;
  }
  return check;
}

/** A fused attention block computed numbers that differ from the unfused graph beyond the tolerance. */
export class FusionMismatchError extends MhafuseError {
  override name = "FusionMismatchError";
  static override readonly defaultCode: ErrorCode = "FUSION_MISMATCH";
  constructor(
    readonly result: VerifyResult,
    readonly failed: BlockCheck[],
  ) {
    super(
      `the fused graph differs from the unfused graph beyond ${result.tolerance}: ${[
        ...failed.map(
          (b) => `block '${b.id}' (${b.path ?? "fused"}, value '${b.output}') max |diff| ${b.maxAbsDiff}`,
        ),
        ...result.outputs
          .filter((o) => !o.ok)
          .map(
            (o) =>
              `output '${o.name}': ${o.mismatches} values differ, first at [${o.first}] (unfused ${o.expected}, fused ${o.actual})`,
          ),
      ].join("; ")}`,
    );
  }
}

/** max |a − b| over all elements; a shape mismatch or a NaN on one side only counts as Infinity. */
export function maxAbsDiff(a: Tensor, b: Tensor): number {
  if (a.dims.length !== b.dims.length || a.dims.some((d, i) => d !== b.dims[i]))
    return Number.POSITIVE_INFINITY;
  const x = a.toFloat64();
  const y = b.toFloat64();
  let worst = 0;
  for (let i = 0; i < x.length; i++) {
    const xi = x[i]!;
    const yi = y[i]!;
    if (Number.isNaN(xi) || Number.isNaN(yi)) {
      if (Number.isNaN(xi) !== Number.isNaN(yi)) return Number.POSITIVE_INFINITY;
      continue;
    }
    if (xi === yi) continue;
    const d = Math.abs(xi - yi);
    if (!(d <= worst)) worst = d;
  }
  return worst;
}

/**
 * float16 values are compared with at least this tolerance: a fused op computes in float32 and rounds once,
 * the unfused graph rounds after every op, so they differ by a few half ulps (ulp = 2^-9 ≈ 1.95e-3 for
 * magnitudes in [2, 4), what transformer hidden states reach); 1e-2 is about 5 such ulps.
 */
export const FLOAT16_TOLERANCE = 1e-2;

function toleranceFor(t: Tensor | undefined, tolerance: number): number {
  return t?.type === "float16" ? Math.max(tolerance, FLOAT16_TOLERANCE) : tolerance;
}

/**
 * Verify mode: runs the unfused graph beside the fused one on the same feeds and compares, per fused
 * attention block, the block's output value (which keeps its name across fusion). Throws
 * FusionMismatchError naming every block past the tolerance (default 1e-3 absolute; float16 values at least
 * FLOAT16_TOLERANCE).
 */
export function verifyFusion(
  original: Graph,
  fused: Graph,
  report: readonly AttentionReport[],
  feeds: Record<string, Tensor>,
  options: { tolerance?: number } = {},
): VerifyResult {
  return verifyFusionRun(original, fused, report, feeds, options).result;
}

/** verifyFusion, also handing back every value of the fused run (so a session need not run it again). */
export function verifyFusionRun(
  original: Graph,
  fused: Graph,
  report: readonly AttentionReport[],
  feeds: Record<string, Tensor>,
  options: { tolerance?: number } = {},
): { result: VerifyResult; fusedValues: Map<string, Tensor> } {
  const before = runGraph(original, feeds, { keepIntermediates: true });
  const after = runGraph(fused, feeds, { keepIntermediates: true });
  return { result: compareFusion(original, report, before, after, options.tolerance), fusedValues: after };
}

/**
 * Compares every fused block's output value (and the graph outputs) between an unfused and a fused run's
 * values; throws FusionMismatchError naming every block past the tolerance (default 1e-3 absolute).
 */
export function compareFusion(
  original: Graph,
  report: readonly AttentionReport[],
  before: ReadonlyMap<string, Tensor>,
  after: ReadonlyMap<string, Tensor>,
  tolerance = 1e-3,
): VerifyResult {
  const blocks: BlockCheck[] = [];
  for (const block of report) {
    if (!block.fused || !block.output) continue;
    const a = before.get(block.output);
    const b = after.get(block.output);
    const diff = a && b ? maxAbsDiff(a, b) : Number.POSITIVE_INFINITY;
    blocks.push({
      id: block.id,
      output: block.output,
      path: block.path,
      maxAbsDiff: diff,
      ok: diff <= toleranceFor(a, tolerance),
    });
  }
  const outputs = original.outputs.map((o) => {
    const want = before.get(o.name);
    return compareOutput(o.name, want, after.get(o.name), toleranceFor(want, tolerance));
  });
  const ok = blocks.every((b) => b.ok) && outputs.every((o) => o.ok);
  const result: VerifyResult = { ok, tolerance, blocks, outputs };
  const failed = blocks.filter((b) => !b.ok);
  if (!ok) throw new FusionMismatchError(result, failed);
  return result;
}
