/**
 * Rotary position embedding from cos/sin caches, as GroupQueryAttention's do_rotary and com.microsoft
 * RotaryEmbedding apply it: each head vector of a strided [B, S, heads, H] view is written to the output
 * (dense [B, S, heads, H] unless `outLayout` says otherwise) with its first 2·half values rotated — pairs
 * (j, j + half), or (2j, 2j + 1) when interleaved — and the rest copied. Token (b, s) reads cache row
 * pos[b·posBatch + s·posSeq] + s·addSeq: an int32 offset per sequence (GroupQueryAttention, the default) or
 * one row index per token (RotaryEmbedding's position_ids). Interleaving is baked into the WGSL; sizes and
 * strides are uniforms.
 */
import type { WebGpuContext } from "../context.js";
import type { CommandRecorder } from "../recorder.js";
import { packUniforms, type UniformFields, uniformStruct } from "../uniforms.js";
import { bindings, elemOf, f16Enable, LINEAR_MAIN, linearGrid, storageKey } from "./common.js";

const FIELDS: UniformFields = [
  ["total", "u32"],
  ["S", "u32"],
  ["heads", "u32"],
  ["H", "u32"],
  ["half", "u32"],
  ["offset", "u32"],
  ["batchStride", "u32"],
  ["seqStride", "u32"],
  ["headStride", "u32"],
  ["cacheStride", "u32"],
  ["posBatch", "u32"],
  ["posSeq", "u32"],
  ["addSeq", "u32"],
  ["oBatch", "u32"],
  ["oSeq", "u32"],
  ["oHead", "u32"],
];

export interface RotaryArgs {
  x: GPUBuffer;
  /** Where head n of token (b, s) starts in x: offset + b·batchStride + s·seqStride + n·headStride. */
  layout: { offset: number; batchStride: number; seqStride: number; headStride: number };
  B: number;
  S: number;
  heads: number;
  H: number;
  /** cos and sin caches [positions, ≥ half] (row stride `cacheStride`, default half). */
  cos: GPUBuffer;
  sin: GPUBuffer;
  half: number;
  cacheStride?: number;
  /**
   * int32: by default [B], the position of token 0 of each sequence (token s reads row pos[b] + s); with
   * `perToken`, one cache row per token at pos[b·batchStride + s] (batchStride 0: rows shared by the batch).
   */
  positions: GPUBuffer;
  perToken?: { batchStride: number };
  interleaved: boolean;
  /** Where element (b, s, n, h) of the output goes (offset 0); default dense [B, S, heads, H]. */
  outLayout?: { batchStride: number; seqStride: number; headStride: number };
  out: GPUBuffer;
  /** x and out stored as f16 (fp16 mode); the caches stay f32, the rotation is computed in f32. */
  f16?: boolean;
}

export function rotary(ctx: WebGpuContext, rec: CommandRecorder, a: RotaryArgs): void {
  const total = a.B * a.S * a.heads * a.H;
  const pair = a.interleaved
    ? `let j = h / 2u; let odd = (h % 2u) == 1u; let x1 = f32(x[src + 2u * j]); let x2 = f32(x[src + 2u * j + 1u]);`
    : `let odd = h >= u.half; let j = select(h, h - u.half, odd); let x1 = f32(x[src + j]); let x2 = f32(x[src + j + u.half]);`;
  const half = { f16: a.f16 };
  const el = elemOf(half);
  const k = ctx.pipelines.get(
    `rotary:i${+a.interleaved}:${storageKey(half)}`,
    () => `${f16Enable(half)}${uniformStruct(FIELDS)}${bindings([
      { name: "x", type: el },
      { name: "cosc" },
      { name: "sinc" },
      { name: "pos", type: "i32" },
      { name: "o", type: el, write: true },
    ])}
${LINEAR_MAIN}
  if (i >= u.total) { return; }
  let h = i % u.H;
  var t = i / u.H;
  let n = t % u.heads; t = t / u.heads;
  let s = t % u.S; let b = t / u.S;
  let src = u.offset + b * u.batchStride + s * u.seqStride + n * u.headStride;
  let dst = b * u.oBatch + s * u.oSeq + n * u.oHead + h;
  if (h >= 2u * u.half) { o[dst] = x[src + h]; return; }
  ${pair}
  let p = u32(pos[b * u.posBatch + s * u.posSeq]) + s * u.addSeq;
  let c = cosc[p * u.cacheStride + j];
  let sn = sinc[p * u.cacheStride + j];
  o[dst] = ${el}(select(x1 * c - x2 * sn, x1 * sn + x2 * c, odd));
}`,
  );
  rec.dispatch(
    k,
    [a.x, a.cos, a.sin, a.positions, a.out],
    packUniforms(FIELDS, {
      total,
      S: a.S,
      heads: a.heads,
      H: a.H,
      half: a.half,
      ...a.layout,
      cacheStride: a.cacheStride ?? a.half,
      posBatch: a.perToken ? a.perToken.batchStride : 1,
      posSeq: a.perToken ? 1 : 0,
      addSeq: a.perToken ? 0 : 1,
      oBatch: a.outLayout ? a.outLayout.batchStride : a.S * a.heads * a.H,
      oSeq: a.outLayout ? a.outLayout.seqStride : a.heads * a.H,
      oHead: a.outLayout ? a.outLayout.headStride : a.H,
    }),
    linearGrid(total),
    "webgpu.Rotary",
  );
}
