/**
 * Size limits, checked before the work or the allocation they guard (docs/errors.md, "Limits"). One place
 * for the numbers so the loader, the folding code and the session agree on them.
 */
import type { Dim } from "./ir/graph.js";

/** Largest model file read (protobuf itself cannot decode messages past 2 GiB). */
export const DEFAULT_MAX_MODEL_BYTES = 2 ** 31;

/**
 * Default memory cap of a session: the bytes of its initializers plus any one tensor whose size is known
 * before run time. Fixed (not derived from the machine) so that whether a model loads is reproducible.
 */
export const DEFAULT_MEMORY_LIMIT_BYTES = 16 * 2 ** 30;

/** Constants larger than this (elements per output) are not computed at load: the node stays for run time. */
export const FOLD_OUTPUT_ELEMENT_LIMIT = 1 << 16;

/** Elements of a shape when every dim is a known number; undefined when some dim is symbolic or unknown. */
export function staticElementCount(shape: readonly Dim[] | undefined): number | undefined {
  if (!shape) return undefined;
  let n = 1;
  for (const d of shape) {
    if (typeof d !== "number") return undefined;
    n *= d;
  }
  return n;
}

/**
 * Whether constant folding should compute a node, judged from its outputs' inferred types alone (so before
 * any work): no when some output's static size is past the cap. Outputs of unknown size are allowed: their
 * inputs are small constants already, and the type rules of the ops that grow tensors from small inputs
 * (Expand, Range, ConstantOfShape, Tile, Pad, Resize…) give static shapes when their inputs are constant.
 */
export function foldFits(
  outputs: readonly ({ shape?: readonly Dim[] } | undefined)[],
  limit = FOLD_OUTPUT_ELEMENT_LIMIT,
): boolean {
  for (const o of outputs) {
    const n = staticElementCount(o?.shape);
    if (n !== undefined && !(n <= limit)) return false;
  }
  return true;
}
