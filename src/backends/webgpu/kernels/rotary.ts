/**
 * Rotary position embedding from cos/sin caches, as GroupQueryAttention's do_rotary applies it: each head
 * vector of a strided [B, S, heads, H] view is written to a dense [B, S, heads, H] output with its first
 * 2·half values rotated at position pos[b] + s (pos: int32 per batch) — pairs (j, j + half), or (2j, 2j + 1)
 * when interleaved — and the rest copied. Interleaving is baked into the WGSL; sizes are uniforms.
 */
import type { WebGpuContext } from "../context.js";
import type { CommandRecorder } from "../recorder.js";
import { packUniforms, type UniformFields, uniformStruct } from "../uniforms.js";
import { bindings, LINEAR_MAIN, linearGrid } from "./common.js";

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
];

export interface RotaryArgs {
  x: GPUBuffer;
  /** Where head n of token (b, s) starts in x: offset + b·batchStride + s·seqStride + n·headStride. */
  layout: { offset: number; batchStride: number; seqStride: number; headStride: number };
  B: number;
  S: number;
  heads: number;
  H: number;
  /** cos and sin caches [positions, half]. */
  cos: GPUBuffer;
  sin: GPUBuffer;
  half: number;
  /** int32 [B]: position of token 0 of each sequence. */
  positions: GPUBuffer;
  interleaved: boolean;
  /** Dense [B, S, heads, H]. */
  out: GPUBuffer;
}

export function rotary(ctx: WebGpuContext, rec: CommandRecorder, a: RotaryArgs): void {
  const total = a.B * a.S * a.heads * a.H;
  const pair = a.interleaved
    ? `let j = h / 2u; let odd = (h % 2u) == 1u; let x1 = x[src + 2u * j]; let x2 = x[src + 2u * j + 1u];`
    : `let odd = h >= u.half; let j = select(h, h - u.half, odd); let x1 = x[src + j]; let x2 = x[src + j + u.half];`;
  const k = ctx.pipelines.get(
    `rotary:i${+a.interleaved}`,
    () => `${uniformStruct(FIELDS)}${bindings([
      { name: "x" },
      { name: "cosc" },
      { name: "sinc" },
      { name: "pos", type: "i32" },
      { name: "o", write: true },
    ])}
${LINEAR_MAIN}
  if (i >= u.total) { return; }
  let h = i % u.H;
  var t = i / u.H;
  let n = t % u.heads; t = t / u.heads;
  let s = t % u.S; let b = t / u.S;
  let src = u.offset + b * u.batchStride + s * u.seqStride + n * u.headStride;
  if (h >= 2u * u.half) { o[i] = x[src + h]; return; }
  ${pair}
  let p = u32(pos[b]) + s;
  let c = cosc[p * u.half + j];
  let sn = sinc[p * u.half + j];
  o[i] = select(x1 * c - x2 * sn, x1 * sn + x2 * c, odd);
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
    }),
    linearGrid(total),
    "webgpu.Rotary",
  );
}
