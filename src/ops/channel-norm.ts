/**
 * Normalizations over the channel axis of [N, C, spatial…] (inference forms): BatchNormalization with running
 * statistics, InstanceNormalization, LRN across channels, and MeanVarianceNormalization over `axes`. Float64
 * reference arithmetic, the spec's formulas and defaults.
 */
import { OpError } from "../errors.js";
import { sizeOf } from "../ir/tensor.js";
import { requireInput } from "./elementwise-util.js";
import { requireFloat, tensorFromFloat64 } from "./float-data.js";
import { attrFloat, attrInt, attrInts, type OpDef, registerOps } from "./registry.js";

const sameType: OpDef["inferTypes"] = (ctx) => [ctx.inputs[0] ? { ...ctx.inputs[0] } : { dtype: "float32" }];

const BatchNormalization: OpDef = {
  opType: "BatchNormalization",
  inferTypes: sameType,
  run(ctx, inputs) {
    const node = ctx.node;
    const [x, scale, bias, mean, variance] = [0, 1, 2, 3, 4].map((i) => requireInput(node, inputs, i));
    requireFloat(node, x!, "X");
    if (attrInt(node, "training_mode", 0) !== 0)
      throw new OpError(
        node,
        "training_mode=1 is not supported (inference only: running statistics are used)",
      );
    if (node.outputs.filter(Boolean).length > 1)
      throw new OpError(node, "only output Y is supported (the training outputs need training_mode=1)");
    const eps = attrFloat(node, "epsilon", 1e-5);
    const [N, C] = [x!.dims[0] ?? 1, x!.dims[1] ?? 1];
    const inner = sizeOf(x!.dims.slice(2));
    const [v, s, b, m, va] = [x!, scale!, bias!, mean!, variance!].map((t) => t.toFloat64());
    const out = new Float64Array(v!.length);
    for (let n = 0; n < N; n++)
      for (let c = 0; c < C; c++) {
        const k = s![c]! / Math.sqrt(va![c]! + eps);
        for (let i = 0, p = (n * C + c) * inner; i < inner; i++, p++) out[p] = (v![p]! - m![c]!) * k + b![c]!;
      }
    return [tensorFromFloat64(x!.type, out, x!.dims)];
  },
};

const InstanceNormalization: OpDef = {
  opType: "InstanceNormalization",
  inferTypes: sameType,
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    requireFloat(node, x, "input");
    const s = requireInput(node, inputs, 1).toFloat64();
    const b = requireInput(node, inputs, 2).toFloat64();
    const eps = attrFloat(node, "epsilon", 1e-5);
    const [N, C] = [x.dims[0]!, x.dims[1]!];
    const inner = sizeOf(x.dims.slice(2));
    const v = x.toFloat64();
    const out = new Float64Array(v.length);
    for (let n = 0; n < N; n++)
      for (let c = 0; c < C; c++) {
        const base = (n * C + c) * inner;
        let mean = 0;
        for (let i = 0; i < inner; i++) mean += v[base + i]!;
        mean /= inner;
        let vari = 0;
        for (let i = 0; i < inner; i++) vari += (v[base + i]! - mean) ** 2;
        vari /= inner;
        const k = s[c]! / Math.sqrt(vari + eps);
        for (let i = 0; i < inner; i++) out[base + i] = (v[base + i]! - mean) * k + b[c]!;
      }
    return [tensorFromFloat64(x.type, out, x.dims)];
  },
};

const LRN: OpDef = {
  opType: "LRN",
  inferTypes: sameType,
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    requireFloat(node, x, "X");
    const size = attrInt(node, "size");
    const alpha = attrFloat(node, "alpha", 0.0001);
    const beta = attrFloat(node, "beta", 0.75);
    const bias = attrFloat(node, "bias", 1);
    const [N, C] = [x.dims[0]!, x.dims[1]!];
    const inner = sizeOf(x.dims.slice(2));
    const v = x.toFloat64();
    const out = new Float64Array(v.length);
    const lo = Math.floor((size - 1) / 2);
    const hi = Math.ceil((size - 1) / 2);
    for (let n = 0; n < N; n++)
      for (let c = 0; c < C; c++)
        for (let i = 0; i < inner; i++) {
          let sq = 0;
          for (let j = Math.max(0, c - lo); j <= Math.min(C - 1, c + hi); j++)
            sq += v[(n * C + j) * inner + i]! ** 2;
          const p = (n * C + c) * inner + i;
          out[p] = v[p]! / (bias + (alpha / size) * sq) ** beta;
        }
    return [tensorFromFloat64(x.type, out, x.dims)];
  },
};

const MeanVarianceNormalization: OpDef = {
  opType: "MeanVarianceNormalization",
  inferTypes: sameType,
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    requireFloat(node, x, "X");
    const axes = attrInts(node, "axes", [0, 2, 3]).map((a) => (a < 0 ? a + x.rank : a));
    const v = x.toFloat64();
    // Group elements by their coordinates on the kept axes; normalise each group (population variance).
    const kept = x.dims.map((d, i) => (axes.includes(i) ? 1 : d));
    const groups = sizeOf(kept);
    const sum = new Float64Array(groups);
    const sq = new Float64Array(groups);
    const group = new Int32Array(v.length);
    const at = new Array<number>(x.rank).fill(0);
    for (let i = 0; i < v.length; i++) {
      let g = 0;
      for (let d = 0; d < x.rank; d++) g = g * kept[d]! + (axes.includes(d) ? 0 : at[d]!);
      group[i] = g;
      sum[g] = sum[g]! + v[i]!;
      sq[g] = sq[g]! + v[i]! * v[i]!;
      for (let d = x.rank - 1; d >= 0; d--) {
        if (++at[d]! < x.dims[d]!) break;
        at[d] = 0;
      }
    }
    const count = v.length / Math.max(groups, 1);
    const out = new Float64Array(v.length);
    for (let i = 0; i < v.length; i++) {
      const g = group[i]!;
      const mean = sum[g]! / count;
      const std = Math.sqrt(Math.max(sq[g]! / count - mean * mean, 0));
      out[i] = (v[i]! - mean) / (std + 1e-9);
    }
    return [tensorFromFloat64(x.type, out, x.dims)];
  },
};

export const channelNormOps: readonly OpDef[] = [
  BatchNormalization,
  InstanceNormalization,
  LRN,
  MeanVarianceNormalization,
];
registerOps(channelNormOps);
