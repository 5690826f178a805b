import { OpError } from "../errors.js";
import type { Node } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import { allocFloat, floatData, floatTensor, requireFloat } from "./float-data.js";
import { attrInt, type OpDef, registerOps } from "./registry.js";

/**
 * ONNX RotaryEmbedding (opset 23).
 *
 * X is [batch, num_heads, seq, head_size] or [batch, seq, num_heads·head_size] (num_heads attribute then
 * required). The first rotary_embedding_dim (default head_size) values of every head are rotated as
 * rotary_dim/2 pairs; the rest pass through. Pairs are (j, j + rotary_dim/2) by default, or (2j, 2j+1) when
 * interleaved=1:
 *   x1' = x1·cos − x2·sin,   x2' = x1·sin + x2·cos
 * cos/sin come from cos_cache/sin_cache: [max_pos, ≥ rotary_dim/2] indexed by position_ids [batch, seq],
 * or, without position_ids, [batch, seq, ≥ rotary_dim/2] already gathered.
 */
const RotaryEmbedding: OpDef = {
  opType: "RotaryEmbedding",
  inferTypes(ctx) {
    const x = ctx.inputs[0];
    return [x ? { ...x } : { dtype: "float32" }];
  },
  run(ctx, [x, cosCache, sinCache, positionIds]) {
    const node = ctx.node;
    if (!x || !cosCache || !sinCache)
      throw new OpError(node, "RotaryEmbedding needs X, cos_cache and sin_cache");
    requireFloat(node, x, "X");
    if (cosCache.type !== x.type || sinCache.type !== x.type)
      throw new OpError(node, "cache types must match X");
    const { interleaved, numHeads, batch, seq, bStride, sStride, hStride, half } = rotaryGeometry(node, x);
    const cacheRow = cacheRowLookup(node, cosCache, sinCache, positionIds, batch, seq, half);

    const src = floatData(x);
    const cos = floatData(cosCache);
    const sin = floatData(sinCache);
    const out = allocFloat(x.type, x.size);
    out.set(src); // the non-rotated tail of every head passes through
    for (let b = 0; b < batch; b++) {
      for (let s = 0; s < seq; s++) {
        const c0 = cacheRow(b, s);
        for (let h = 0; h < numHeads; h++) {
          const base = b * bStride + s * sStride + h * hStride;
          for (let j = 0; j < half; j++) {
            const i1 = base + (interleaved ? 2 * j : j);
            const i2 = base + (interleaved ? 2 * j + 1 : j + half);
            const x1 = src[i1]!;
            const x2 = src[i2]!;
            const c = cos[c0 + j]!;
            const sn = sin[c0 + j]!;
            out[i1] = x1 * c - x2 * sn;
            out[i2] = x1 * sn + x2 * c;
          }
        }
      }
    }
    return [floatTensor(x.type, out, x.dims)];
  },
};

/** RotaryEmbedding's sizes and X's element addressing from dims alone (the webgpu kernel runs the same checks). */
export interface RotaryGeometry {
  batch: number;
  seq: number;
  numHeads: number;
  headSize: number;
  /** Element (b, s, h, d) of X (and of the output, same dims) lives at b·bStride + s·sStride + h·hStride + d. */
  bStride: number;
  sStride: number;
  hStride: number;
  /** rotary_embedding_dim / 2: the pairs rotated in every head. */
  half: number;
  interleaved: boolean;
}

export function rotaryGeometry(node: Node, x: Pick<Tensor, "dims" | "rank">): RotaryGeometry {
  const interleaved = attrInt(node, "interleaved", 0) !== 0;
  let numHeads = attrInt(node, "num_heads", 0);
  // Element (b, s, h, d) of X lives at b·bStride + s·sStride + h·hStride + d, in either layout.
  let batch: number, seq: number, headSize: number, bStride: number, sStride: number, hStride: number;
  if (x.rank === 4) {
    [batch, numHeads, seq, headSize] = x.dims as [number, number, number, number];
    [bStride, hStride, sStride] = [numHeads * seq * headSize, seq * headSize, headSize];
  } else if (x.rank === 3) {
    const hidden = x.dims[2]!;
    if (numHeads <= 0 || hidden % numHeads !== 0) {
      throw new OpError(node, `3-D input [${x.dims}] needs a num_heads attribute that divides ${hidden}`);
    }
    [batch, seq] = [x.dims[0]!, x.dims[1]!];
    headSize = hidden / numHeads;
    [bStride, sStride, hStride] = [seq * hidden, hidden, headSize];
  } else {
    throw new OpError(node, `X must be 3-D or 4-D, got [${x.dims}]`);
  }
  const rotaryDim = attrInt(node, "rotary_embedding_dim", 0) || headSize;
  if (rotaryDim % 2 !== 0 || rotaryDim > headSize) {
    throw new OpError(node, `rotary_embedding_dim ${rotaryDim} must be even and ≤ head size ${headSize}`);
  }
  return { batch, seq, numHeads, headSize, bStride, sStride, hStride, half: rotaryDim / 2, interleaved };
}

/** Validates the caches and returns (b, s) → offset of that token's cos/sin row in the caches. */
export function cacheRowLookup(
  node: Node,
  cosCache: Pick<Tensor, "dims" | "rank">,
  sinCache: Pick<Tensor, "dims" | "rank">,
  positionIds: Tensor | undefined,
  batch: number,
  seq: number,
  half: number,
): (b: number, s: number) => number {
  if (cosCache.dims.join() !== sinCache.dims.join()) {
    throw new OpError(node, `cos_cache [${cosCache.dims}] and sin_cache [${sinCache.dims}] differ`);
  }
  const width = cosCache.dims[cosCache.rank - 1]!;
  if (width < half) throw new OpError(node, `cache rows hold ${width} values, rotary_dim/2 is ${half}`);
  if (positionIds) {
    if (cosCache.rank !== 2)
      throw new OpError(node, `with position_ids the caches must be 2-D, got [${cosCache.dims}]`);
    const ok =
      positionIds.rank === 2 && positionIds.dims[1] === seq && [1, batch].includes(positionIds.dims[0]!);
    if (!ok) throw new OpError(node, `position_ids [${positionIds.dims}] must be [${batch}, ${seq}]`);
    const ids = positionIds.toNumbers();
    const maxPos = cosCache.dims[0]!;
    const perBatch = positionIds.dims[0] === 1 ? 0 : seq;
    return (b, s) => {
      const p = ids[b * perBatch + s]!;
      if (p < 0 || p >= maxPos)
        throw new OpError(node, `position id ${p} is outside the cache (${maxPos} rows)`);
      return p * width;
    };
  }
  const ok = cosCache.rank === 3 && cosCache.dims[0] === batch && cosCache.dims[1] === seq;
  if (!ok)
    throw new OpError(
      node,
      `without position_ids the caches must be [${batch}, ${seq}, *], got [${cosCache.dims}]`,
    );
  return (b, s) => (b * seq + s) * width;
}

export const rotaryOps: readonly OpDef[] = [RotaryEmbedding];
registerOps(rotaryOps);
