/**
 * com.microsoft ops of onnxruntime-optimized decoder exports (Llama, Phi, Qwen, Mistral): GroupQueryAttention,
 * RotaryEmbedding, SimplifiedLayerNormalization and SkipSimplifiedLayerNormalization (RMSNorm). Reference
 * semantics from onnxruntime's CPU kernels (contrib_ops/cpu/bert/group_query_attention.cc,
 * gqa_attention_base.h, rotary_embedding.cc, skip_layer_norm.cc), in float64.
 */
import { OpError } from "../errors.js";
import type { Node, ValueType } from "../ir/graph.js";
import { sizeOf, Tensor } from "../ir/tensor.js";
import { requireInput } from "./elementwise-util.js";
import { requireFloat, tensorFromFloat64 } from "./float-data.js";
import { attrFloat, attrInt, type OpContext, type OpDef, registerOps } from "./registry.js";
import { rotaryOps } from "./rotary.js";

const MS = "com.microsoft";

// ---- GroupQueryAttention ------------------------------------------------------------------------------

/** Rotates the first 2·half values of one head vector in place (pairs (j, j+half) or (2j, 2j+1)). */
function rotate(
  v: Float64Array,
  at: number,
  cos: Float64Array,
  sin: Float64Array,
  row: number,
  half: number,
  interleaved: boolean,
) {
  for (let j = 0; j < half; j++) {
    const i1 = at + (interleaved ? 2 * j : j);
    const i2 = at + (interleaved ? 2 * j + 1 : j + half);
    const [x1, x2] = [v[i1]!, v[i2]!];
    const [c, s] = [cos[row * half + j]!, sin[row * half + j]!];
    v[i1] = x1 * c - x2 * s;
    v[i2] = x1 * s + x2 * c;
  }
}

/** GroupQueryAttention's sizes from its inputs' dims (a device kernel runs the same checks). */
export interface GqaGeometry {
  B: number;
  S: number;
  /** query's last dim: N·H, or (N + 2·Nkv)·H when Q, K and V come packed in it. */
  D: number;
  N: number;
  Nkv: number;
  H: number;
  /** Past length of past_key / past_value (0 without). */
  P: number;
  packed: boolean;
}

export function gqaGeometry(
  node: Node,
  inputs: readonly (Pick<Tensor, "dims" | "rank"> | undefined)[],
  seqlensCount: number,
): GqaGeometry {
  const fail = (m: string): never => {
    throw new OpError(node, m);
  };
  const query = inputs[0]!;
  const [key, value, pastKey, pastValue] = [inputs[1], inputs[2], inputs[3], inputs[4]];
  if (inputs.slice(9).some((t) => t !== undefined))
    fail("position_ids, attention_bias and head_sink (inputs 9–11) are not supported yet");
  const N = attrInt(node, "num_heads");
  const Nkv = attrInt(node, "kv_num_heads");
  if (N <= 0 || Nkv <= 0 || N % Nkv !== 0)
    fail(`num_heads ${N} must be a positive multiple of kv_num_heads ${Nkv}`);
  if (query.rank !== 3) fail(`query must be [B, S, D], got [${query.dims}]`);
  const [B, S, D] = query.dims as [number, number, number];
  const packed = key === undefined;
  const H = D / (packed ? N + 2 * Nkv : N);
  if (!Number.isInteger(H)) fail(`query's last dim ${D} does not split into heads`);
  if (
    !packed &&
    (!value || key!.dims.join() !== `${B},${S},${Nkv * H}` || value.dims.join() !== key!.dims.join())
  )
    fail(`key and value must be [${B}, ${S}, ${Nkv * H}]`);
  if (seqlensCount !== B) fail(`seqlens_k must hold ${B} values, got ${seqlensCount}`);
  const P = pastKey ? pastKey.dims[2]! : 0;
  if (
    pastKey &&
    (pastKey.dims.join() !== `${B},${Nkv},${P},${H}` || pastValue?.dims.join() !== pastKey.dims.join())
  )
    fail(`past_key and past_value must be [${B}, ${Nkv}, P, ${H}]`);
  return { B, S, D, N, Nkv, H, P, packed };
}

/**
 * Per batch the past length (0 on the first prompt, S = total_sequence_length; else seqlens_k + 1 − S) and the
 * present cache length max(total, P), checked to fit: past + S within the present cache, past within P.
 */
export function gqaPastLengths(
  node: Node,
  g: GqaGeometry,
  seqlensK: readonly number[],
  total: number,
): { pastLens: number[]; present: number } {
  const present = Math.max(total, g.P);
  const pastLens = seqlensK.map((k, b) => {
    const past = g.S === total ? 0 : k + 1 - g.S;
    // The past rows are read from past_key/past_value: no more of them than the P positions those hold.
    if (past < 0 || past + g.S > present || past > g.P)
      throw new OpError(
        node,
        `seqlens_k[${b}] = ${k} does not fit S = ${g.S} and the cache (past ${past}, past_key holds ${g.P})`,
      );
    return past;
  });
  return { pastLens, present };
}

const GroupQueryAttention: OpDef = {
  opType: "GroupQueryAttention",
  domain: MS,
  inferTypes(ctx) {
    const q = ctx.inputs[0];
    const N = attrInt(ctx.node, "num_heads");
    const Nkv = attrInt(ctx.node, "kv_num_heads");
    const dtype = q?.dtype ?? "float32";
    const packed = !ctx.node.inputs[1];
    const D = q?.shape?.[2];
    const H = typeof D === "number" ? D / (packed ? N + 2 * Nkv : N) : null;
    const out: ValueType = {
      dtype,
      shape: q?.shape ? [q.shape[0]!, q.shape[1]!, typeof H === "number" ? N * H : null] : undefined,
    };
    const present: ValueType = { dtype, shape: q?.shape ? [q.shape[0]!, Nkv, null, H] : undefined };
    return [out, present, present];
  },
  run(ctx, inputs) {
    const node = ctx.node;
    const fail = (m: string): never => {
      throw new OpError(node, m);
    };
    const query = requireInput(node, inputs, 0);
    requireFloat(node, query, "query");
    const [key, value, pastKey, pastValue] = [inputs[1], inputs[2], inputs[3], inputs[4]];
    const seqlensK = requireInput(node, inputs, 5).toNumbers();
    const total = requireInput(node, inputs, 6).getNumber(0);
    const [cosCache, sinCache] = [inputs[7], inputs[8]];
    const g = gqaGeometry(node, inputs, seqlensK.length);
    const { B, S, D, N, Nkv, H, P, packed } = g;
    // Past lengths checked up front (the webgpu kernels share the rule), before any rotation or copy.
    const { pastLens, present } = gqaPastLengths(node, g, seqlensK, total);
    const scaleAttr = attrFloat(node, "scale", 0);
    const scale = scaleAttr === 0 ? 1 / Math.sqrt(H) : scaleAttr;
    const softcap = attrFloat(node, "softcap", 0);
    const window = attrInt(node, "local_window_size", -1);
    const smooth = attrInt(node, "smooth_softmax", 0) !== 0;
    const doRotary = attrInt(node, "do_rotary", 0) !== 0;
    const interleaved = attrInt(node, "rotary_interleaved", 0) !== 0;

    // Head vectors: q [B, N, S, H]; new k / v [B, Nkv, S, H].
    const qv = query.toFloat64();
    const kv = key?.toFloat64();
    const vv = value?.toFloat64();
    const q = new Float64Array(B * N * S * H);
    const kNew = new Float64Array(B * Nkv * S * H);
    const vNew = new Float64Array(B * Nkv * S * H);
    for (let b = 0; b < B; b++)
      for (let s = 0; s < S; s++)
        for (let h = 0; h < H; h++) {
          for (let n = 0; n < N; n++) q[((b * N + n) * S + s) * H + h] = qv[(b * S + s) * D + n * H + h]!;
          for (let n = 0; n < Nkv; n++) {
            const at = ((b * Nkv + n) * S + s) * H + h;
            kNew[at] = packed
              ? qv[(b * S + s) * D + (N + n) * H + h]!
              : kv![(b * S + s) * Nkv * H + n * H + h]!;
            vNew[at] = packed
              ? qv[(b * S + s) * D + (N + Nkv + n) * H + h]!
              : vv![(b * S + s) * Nkv * H + n * H + h]!;
          }
        }
    const pastLen = (b: number) => pastLens[b]!;
    if (doRotary) {
      if (!cosCache || !sinCache) fail("do_rotary=1 needs cos_cache and sin_cache");
      const half = cosCache!.dims[1]!;
      const cos = cosCache!.toFloat64();
      const sin = sinCache!.toFloat64();
      for (let b = 0; b < B; b++)
        for (let s = 0; s < S; s++) {
          const pos = pastLen(b) + s;
          if (pos < 0 || pos >= cosCache!.dims[0]!) fail(`position ${pos} is outside the rotary cache`);
          for (let n = 0; n < N; n++) rotate(q, ((b * N + n) * S + s) * H, cos, sin, pos, half, interleaved);
          for (let n = 0; n < Nkv; n++)
            rotate(kNew, ((b * Nkv + n) * S + s) * H, cos, sin, pos, half, interleaved);
        }
    }
    // present = past (its first past_len rows) then the new rows; the rest of the buffer is zero.
    const presentK = new Float64Array(B * Nkv * present * H);
    const presentV = new Float64Array(B * Nkv * present * H);
    const pk = pastKey?.toFloat64();
    const pv = pastValue?.toFloat64();
    for (let b = 0; b < B; b++) {
      const past = pastLen(b);
      for (let n = 0; n < Nkv; n++) {
        const dst = (b * Nkv + n) * present * H;
        if (pk) {
          presentK.set(pk.subarray((b * Nkv + n) * P * H, (b * Nkv + n) * P * H + past * H), dst);
          presentV.set(pv!.subarray((b * Nkv + n) * P * H, (b * Nkv + n) * P * H + past * H), dst);
        }
        presentK.set(kNew.subarray((b * Nkv + n) * S * H, (b * Nkv + n + 1) * S * H), dst + past * H);
        presentV.set(vNew.subarray((b * Nkv + n) * S * H, (b * Nkv + n + 1) * S * H), dst + past * H);
      }
    }
    const out = new Float64Array(B * S * N * H);
    const scores = new Float64Array(present);
    for (let b = 0; b < B; b++)
      for (let n = 0; n < N; n++) {
        const kvBase = (b * Nkv + Math.floor(n / (N / Nkv))) * present * H;
        for (let s = 0; s < S; s++) {
          const causal = pastLen(b) + s + 1;
          // local_window_size = w: the last w keys, the token's own included (onnxruntime 1.30's CPU kernel).
          const first = window > 0 && causal > window ? causal - window : 0;
          const qBase = ((b * N + n) * S + s) * H;
          let max = smooth ? 0 : Number.NEGATIVE_INFINITY;
          for (let j = first; j < causal; j++) {
            let d = 0;
            for (let h = 0; h < H; h++) d += q[qBase + h]! * presentK[kvBase + j * H + h]!;
            d *= scale;
            if (softcap > 0) d = softcap * Math.tanh(d / softcap);
            scores[j] = d;
            max = Math.max(max, d);
          }
          let sum = smooth ? Math.exp(-max) : 0;
          for (let j = first; j < causal; j++) {
            scores[j] = Math.exp(scores[j]! - max);
            sum += scores[j]!;
          }
          for (let h = 0; h < H; h++) {
            let acc = 0;
            for (let j = first; j < causal; j++) acc += scores[j]! * presentV[kvBase + j * H + h]!;
            out[(b * S + s) * N * H + n * H + h] = acc / sum;
          }
        }
      }
    const dims = [B, Nkv, present, H];
    return [
      tensorFromFloat64(query.type, out, [B, S, N * H]),
      tensorFromFloat64(query.type, presentK, dims),
      tensorFromFloat64(query.type, presentV, dims),
    ];
  },
};

// ---- RotaryEmbedding (com.microsoft) -------------------------------------------------------------------

/** Input order (input, position_ids, cos_cache, sin_cache); position_ids may be [1]: an offset for every token. */
const onnxRotary = rotaryOps[0]!;
const MsRotaryEmbedding: OpDef = {
  opType: "RotaryEmbedding",
  domain: MS,
  inferTypes: (ctx) => [ctx.inputs[0] ? { ...ctx.inputs[0] } : { dtype: "float32" }],
  run(ctx: OpContext, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    checkMsRotaryAttrs(node);
    const positions = msRotaryPositions(x, requireInput(node, inputs, 1));
    return onnxRotary.run(ctx, [x, requireInput(node, inputs, 2), requireInput(node, inputs, 3), positions]);
  },
};

/** The attributes the reference (and the webgpu kernel) do not cover. */
export function checkMsRotaryAttrs(node: Node): void {
  if (attrInt(node, "is_packed_batching", 0) !== 0)
    throw new OpError(node, "is_packed_batching=1 is not supported");
  if (attrFloat(node, "scale", 1) !== 1) throw new OpError(node, "scale != 1 is not supported");
}

/** position_ids as ONNX RotaryEmbedding reads them: a one-element offset becomes offset + s for every token. */
export function msRotaryPositions(x: Pick<Tensor, "dims" | "rank">, positions: Tensor): Tensor {
  if (positions.size !== 1) return positions;
  const [B, S] = x.rank === 4 ? [x.dims[0]!, x.dims[2]!] : [x.dims[0]!, x.dims[1]!];
  const offset = positions.getNumber(0);
  return new Tensor(
    "int64",
    Array.from({ length: B * S }, (_, i) => offset + (i % S)),
    [B, S],
  );
}

// ---- SimplifiedLayerNormalization / SkipSimplifiedLayerNormalization ------------------------------------

/** y = x / sqrt(mean(x²) + ε) · gamma over the last `norm` values of each row; also 1/rms per row. */
function rmsNorm(x: Float64Array, gamma: Float64Array, norm: number, eps: number) {
  const rows = x.length / norm;
  const y = new Float64Array(x.length);
  const inv = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let sq = 0;
    for (let i = 0; i < norm; i++) sq += x[r * norm + i]! ** 2;
    inv[r] = 1 / Math.sqrt(sq / norm + eps);
    for (let i = 0; i < norm; i++) y[r * norm + i] = x[r * norm + i]! * inv[r]! * gamma[i]!;
  }
  return { y, inv };
}

function normAxisOf(node: Node, rank: number): number {
  const axis = attrInt(node, "axis", -1);
  return axis < 0 ? axis + rank : axis;
}

const SimplifiedLayerNormalization: OpDef = {
  opType: "SimplifiedLayerNormalization",
  inferTypes: (ctx) => [ctx.inputs[0] ? { ...ctx.inputs[0] } : { dtype: "float32" }, { dtype: "float32" }],
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    requireFloat(node, x, "X");
    const axis = normAxisOf(node, x.rank);
    const norm = sizeOf(x.dims.slice(axis));
    const gamma = requireInput(node, inputs, 1);
    if (gamma.size !== norm)
      throw new OpError(node, `scale has ${gamma.size} values, the normalised axes ${norm}`);
    const { y, inv } = rmsNorm(x.toFloat64(), gamma.toFloat64(), norm, attrFloat(node, "epsilon", 1e-5));
    const statDims = [...x.dims.slice(0, axis), ...x.dims.slice(axis).map(() => 1)];
    return [tensorFromFloat64(x.type, y, x.dims), tensorFromFloat64("float32", inv, statDims)];
  },
};

const SkipSimplifiedLayerNormalization: OpDef = {
  opType: "SkipSimplifiedLayerNormalization",
  domain: MS,
  inferTypes: (ctx) => {
    const x = ctx.inputs[0] ? { ...ctx.inputs[0] } : { dtype: "float32" as const };
    return [x, { dtype: "float32" }, { dtype: "float32" }, x];
  },
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    requireFloat(node, x, "input");
    const skip = requireInput(node, inputs, 1);
    const gamma = requireInput(node, inputs, 2);
    const bias = inputs[3];
    const Hd = x.dims[x.rank - 1]!;
    const xs = x.toFloat64();
    const sk = skip.toFloat64();
    const bs = bias?.toFloat64();
    const sum = new Float64Array(xs.length);
    for (let i = 0; i < xs.length; i++) sum[i] = xs[i]! + sk[i % sk.length]! + (bs ? bs[i % Hd]! : 0);
    const { y, inv } = rmsNorm(sum, gamma.toFloat64(), Hd, attrFloat(node, "epsilon", 1e-5));
    const statDims = [...x.dims.slice(0, -1), 1];
    return [
      tensorFromFloat64(x.type, y, x.dims),
      tensorFromFloat64("float32", new Float64Array(inv.length), statDims),
      tensorFromFloat64("float32", inv, statDims),
      tensorFromFloat64(x.type, sum, x.dims),
    ];
  },
};

export const contribDecoderOps: readonly OpDef[] = [
  GroupQueryAttention,
  MsRotaryEmbedding,
  SimplifiedLayerNormalization,
  { ...SimplifiedLayerNormalization, domain: MS },
  SkipSimplifiedLayerNormalization,
];
registerOps(contribDecoderOps);
