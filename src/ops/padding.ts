/**
 * Padding removal ops (mhafuse domain), placed by the remove-padding pass (src/passes/remove-padding.ts) around
 * the token-wise part of an encoder so it runs on the valid tokens alone — what TensorRT's var-seqlen BERT and
 * onnxruntime's RemovePadding / PackedAttention / RestorePadding make users do by hand:
 *
 *   RemovePadding(x [B, S, ...], mask [B, S])    → [1, T, ...]  the rows whose mask is non-zero, batch-major
 *   RestorePadding(y [1, T, ...], mask [B, S])   → [B, S, ...]  those rows back in place, zeros elsewhere
 *   CuSeqlensFromMask(mask [B, S])               → int32 [B + 1] cumulative valid-token counts (var-seqlen)
 *
 * A valid token is a non-zero mask value anywhere in its row (right padding, left padding and holes alike): the
 * tokens of sequence b stay in order, so the packed attention over them equals the masked attention at every
 * valid position. Unlike onnxruntime's RemovePadding (lengths, right padding only) the mask is the input.
 */

import { OpError } from "../errors.js";
import { allocate } from "../ir/dtype.js";
import type { Dim, Node } from "../ir/graph.js";
import { sizeOf, Tensor } from "../ir/tensor.js";
import { type OpDef, registerOps, type TypeContext } from "./registry.js";

export const PADDING_DOMAIN = "mhafuse";

function checkMask(node: Node, mask: Tensor | undefined): [number, number] {
  if (!mask) throw new OpError(node, "input 1 (mask [B, S]) is required");
  if (mask.rank !== 2) throw new OpError(node, `mask must be 2-D [batch, seq], got dims [${mask.dims}]`);
  return mask.dims as [number, number];
}

/** Flat indices b·S + s of the valid tokens, in batch-major order. */
export function validTokens(mask: Tensor): Int32Array {
  let count = 0;
  for (let i = 0; i < mask.size; i++) if (mask.getNumber(i) !== 0) count++;
  const out = new Int32Array(count);
  let k = 0;
  for (let i = 0; i < mask.size; i++) if (mask.getNumber(i) !== 0) out[k++] = i;
  return out;
}

/** Cumulative valid-token counts per sequence: [0, n0, n0 + n1, …]. */
export function cuSeqlensFromMask(mask: Tensor): Int32Array {
  const [batch, seq] = mask.dims as [number, number];
  const cu = new Int32Array(batch + 1);
  for (let b = 0; b < batch; b++) {
    let n = 0;
    for (let s = 0; s < seq; s++) if (mask.getNumber(b * seq + s) !== 0) n++;
    cu[b + 1] = cu[b]! + n;
  }
  return cu;
}

function rowTensor(like: Tensor, rows: number, rowDims: readonly number[], lead: number[]): Tensor {
  return new Tensor(like.type, allocate(like.type, rows * sizeOf(rowDims)), [...lead, ...rowDims]);
}

export function removePaddingRows(x: Tensor, mask: Tensor, node: Node): Tensor {
  const [B, S] = checkMask(node, mask);
  if (x.rank < 2 || x.dims[0] !== B || x.dims[1] !== S)
    throw new OpError(node, `input 0 must be [B, S, ...] = [${B}, ${S}, ...] like the mask, got [${x.dims}]`);
  const rowDims = x.dims.slice(2);
  const width = sizeOf(rowDims);
  const tokens = validTokens(mask);
  const out = rowTensor(x, tokens.length, rowDims, [1, tokens.length]);
  const src = x.data as ArrayLike<number> & { subarray(a: number, b: number): ArrayLike<number> };
  const dst = out.data as unknown as { set(a: ArrayLike<number>, o: number): void };
  for (let k = 0; k < tokens.length; k++)
    dst.set(src.subarray(tokens[k]! * width, (tokens[k]! + 1) * width), k * width);
  return out;
}

export function restorePaddingRows(y: Tensor, mask: Tensor, node: Node): Tensor {
  const [B, S] = checkMask(node, mask);
  const tokens = validTokens(mask);
  if (y.rank < 2 || y.dims[0] !== 1 || y.dims[1] !== tokens.length)
    throw new OpError(
      node,
      `input 0 must be [1, T, ...] with T = ${tokens.length} valid tokens in the mask, got [${y.dims}]`,
    );
  const rowDims = y.dims.slice(2);
  const width = sizeOf(rowDims);
  const out = rowTensor(y, B * S, rowDims, [B, S]); // fresh, so padded rows are zeros
  const src = y.data as ArrayLike<number> & { subarray(a: number, b: number): ArrayLike<number> };
  const dst = out.data as unknown as { set(a: ArrayLike<number>, o: number): void };
  for (let k = 0; k < tokens.length; k++)
    dst.set(src.subarray(k * width, (k + 1) * width), tokens[k]! * width);
  return out;
}

function maskShape(ctx: TypeContext): Dim[] | undefined {
  const shape = ctx.inputs[1]?.shape;
  if (shape && shape.length !== 2)
    throw new OpError(ctx.node, `mask must be 2-D [batch, seq], got rank ${shape.length}`);
  return shape;
}

const removePadding: OpDef = {
  opType: "RemovePadding",
  domain: PADDING_DOMAIN,
  inferTypes(ctx) {
    maskShape(ctx);
    const x = ctx.inputs[0];
    if (!x) throw new OpError(ctx.node, "input 0 is required");
    return [{ dtype: x.dtype, shape: x.shape ? [1, null, ...x.shape.slice(2)] : undefined }];
  },
  run(ctx, [x, mask]) {
    if (!x) throw new OpError(ctx.node, "input 0 is required");
    return [removePaddingRows(x, mask!, ctx.node)];
  },
};

const restorePadding: OpDef = {
  opType: "RestorePadding",
  domain: PADDING_DOMAIN,
  inferTypes(ctx) {
    const m = maskShape(ctx);
    const y = ctx.inputs[0];
    if (!y) throw new OpError(ctx.node, "input 0 is required");
    return [
      { dtype: y.dtype, shape: y.shape ? [m?.[0] ?? null, m?.[1] ?? null, ...y.shape.slice(2)] : undefined },
    ];
  },
  run(ctx, [y, mask]) {
    if (!y) throw new OpError(ctx.node, "input 0 is required");
    return [restorePaddingRows(y, mask!, ctx.node)];
  },
};

const cuSeqlens: OpDef = {
  opType: "CuSeqlensFromMask",
  domain: PADDING_DOMAIN,
  inferTypes(ctx) {
    const shape = ctx.inputs[0]?.shape;
    if (shape && shape.length !== 2)
      throw new OpError(ctx.node, `mask must be 2-D [batch, seq], got rank ${shape.length}`);
    const b = shape?.[0];
    return [{ dtype: "int32", shape: [typeof b === "number" ? b + 1 : null] }];
  },
  run(ctx, [mask]) {
    const [B] = checkMask(ctx.node, mask);
    return [new Tensor("int32", cuSeqlensFromMask(mask!), [B + 1])];
  },
};

registerOps([removePadding, restorePadding, cuSeqlens]);
