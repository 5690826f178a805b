/**
 * Linear quantization (int8 / uint8): QuantizeLinear and DequantizeLinear (per tensor, or per `axis` from opset
 * 13), DynamicQuantizeLinear, MatMulInteger and QLinearMatMul (2-D). Rounding is half to even and results
 * saturate to the integer type's range, as the spec says.
 */
import { OpError } from "../errors.js";
import type { DType } from "../ir/dtype.js";
import type { Node } from "../ir/graph.js";
import { normalizeAxis } from "../ir/shape.js";
import { sizeOf, Tensor } from "../ir/tensor.js";
import { requireInput, roundHalfEven } from "./elementwise-util.js";
import { tensorFromFloat64 } from "./float-data.js";
import { attrInt, type OpDef, registerOps } from "./registry.js";

const RANGE: Partial<Record<DType, [number, number]>> = {
  uint8: [0, 255],
  int8: [-128, 127],
  int32: [-(2 ** 31), 2 ** 31 - 1],
};

function saturate(node: Node, v: number, type: DType): number {
  const r = RANGE[type];
  if (!r) throw new OpError(node, `quantized type ${type} is not supported (int8, uint8)`);
  return Math.min(r[1], Math.max(r[0], v));
}

/** Per-element index into a per-axis parameter (scale or zero point), or 0 for per-tensor parameters. */
function paramIndex(node: Node, x: Tensor, param: Tensor, opset: number): (i: number) => number {
  if (param.size === 1) return () => 0;
  if (attrInt(node, "block_size", 0) !== 0)
    throw new OpError(node, "blocked quantization (block_size) is not supported");
  if (opset < 13 || param.rank !== 1)
    throw new OpError(node, `scale / zero point must be scalars, got [${param.dims}]`);
  let axis: number;
  try {
    axis = normalizeAxis(attrInt(node, "axis", 1), x.rank);
  } catch (e) {
    throw new OpError(node, (e as Error).message);
  }
  if (param.size !== x.dims[axis])
    throw new OpError(node, `per-axis parameters need ${x.dims[axis]} values, got ${param.size}`);
  const inner = sizeOf(x.dims.slice(axis + 1));
  const size = x.dims[axis]!;
  return (i) => Math.floor(i / inner) % size;
}

const QuantizeLinear: OpDef = {
  opType: "QuantizeLinear",
  inferTypes: (ctx) => [{ dtype: ctx.inputs[2]?.dtype ?? "uint8", shape: ctx.inputs[0]?.shape }],
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    const scale = requireInput(node, inputs, 1);
    const zp = inputs[2];
    const type: DType = zp?.type ?? "uint8";
    const at = paramIndex(node, x, scale, ctx.opset);
    const s = scale.toFloat64();
    const z = zp ? zp.toFloat64() : new Float64Array(s.length);
    const v = x.toFloat64();
    const out = new Float64Array(v.length);
    const single = x.type === "float32" || x.type === "float16";
    for (let i = 0; i < v.length; i++) {
      const k = at(i);
      const q = single ? Math.fround(v[i]! / s[k]!) : v[i]! / s[k]!;
      out[i] = saturate(node, roundHalfEven(q) + z[zp && zp.size === 1 ? 0 : k]!, type);
    }
    return [tensorFromFloat64(type, out, x.dims)];
  },
};

const DequantizeLinear: OpDef = {
  opType: "DequantizeLinear",
  inferTypes: (ctx) => [{ dtype: ctx.inputs[1]?.dtype ?? "float32", shape: ctx.inputs[0]?.shape }],
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    const scale = requireInput(node, inputs, 1);
    const zp = inputs[2];
    const at = paramIndex(node, x, scale, ctx.opset);
    const s = scale.toFloat64();
    const z = zp ? zp.toFloat64() : new Float64Array(s.length);
    const v = x.toFloat64();
    const out = new Float64Array(v.length);
    for (let i = 0; i < v.length; i++) {
      const k = at(i);
      out[i] = (v[i]! - z[zp && zp.size === 1 ? 0 : k]!) * s[k]!;
    }
    return [tensorFromFloat64(scale.type, out, x.dims)];
  },
};

const DynamicQuantizeLinear: OpDef = {
  opType: "DynamicQuantizeLinear",
  inferTypes: (ctx) => [
    { dtype: "uint8", shape: ctx.inputs[0]?.shape },
    { dtype: "float32", shape: [] },
    { dtype: "uint8", shape: [] },
  ],
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    const v = x.toFloat64();
    // The range always includes 0 so that 0 is exactly representable.
    let lo = 0;
    let hi = 0;
    for (const a of v) {
      lo = Math.min(lo, a);
      hi = Math.max(hi, a);
    }
    const scale = Math.fround((hi - lo) / 255);
    // Divisions in float32, as the spec's reference computes them (it decides which way halves round).
    const zp =
      scale === 0 ? 0 : saturate(node, roundHalfEven(Math.fround(0 - Math.fround(lo / scale))), "uint8");
    const out = new Float64Array(v.length);
    for (let i = 0; i < v.length; i++)
      out[i] = scale === 0 ? zp : saturate(node, roundHalfEven(Math.fround(v[i]! / scale)) + zp, "uint8");
    return [
      tensorFromFloat64("uint8", out, x.dims),
      new Tensor("float32", Float32Array.of(scale), []),
      new Tensor("uint8", Uint8Array.of(zp), []),
    ];
  },
};

/**
 * (A - a_zero) · (B - b_zero) for A [..., M, K], B [..., K, N] with equal leading (batch) dims or a 2-D B;
 * zero points per tensor, per row of A, per column of B. Returns the values and the output dims.
 */
function integerMatmul(node: Node, a: Tensor, b: Tensor, aZero?: Tensor, bZero?: Tensor) {
  const [M, K] = a.dims.slice(-2) as [number, number];
  const N = b.dims[b.rank - 1]!;
  const batchA = a.dims.slice(0, -2);
  const batchB = b.dims.slice(0, -2);
  if (a.rank < 2 || b.rank < 2 || b.dims[b.rank - 2] !== K || (b.rank > 2 && batchA.join() !== batchB.join()))
    throw new OpError(
      node,
      `A [${a.dims}] · B [${b.dims}]: need [..., M, K] · [..., K, N] with equal batch dims`,
    );
  const batches = sizeOf(batchA);
  const av = a.toFloat64();
  const bv = b.toFloat64();
  const az = aZero?.toFloat64() ?? Float64Array.of(0);
  const bz = bZero?.toFloat64() ?? Float64Array.of(0);
  const out = new Float64Array(batches * M * N);
  for (let t = 0; t < batches; t++) {
    const ao = t * M * K;
    const bo = b.rank > 2 ? t * K * N : 0;
    for (let m = 0; m < M; m++)
      for (let n = 0; n < N; n++) {
        let acc = 0;
        for (let k = 0; k < K; k++)
          acc +=
            (av[ao + m * K + k]! - az[az.length === 1 ? 0 : m]!) *
            (bv[bo + k * N + n]! - bz[bz.length === 1 ? 0 : n]!);
        out[(t * M + m) * N + n] = acc;
      }
  }
  return { values: out, dims: [...batchA, M, N] };
}

const MatMulInteger: OpDef = {
  opType: "MatMulInteger",
  inferTypes: () => [{ dtype: "int32" }],
  run(ctx, inputs) {
    const node = ctx.node;
    const a = requireInput(node, inputs, 0);
    const b = requireInput(node, inputs, 1);
    const r = integerMatmul(node, a, b, inputs[2], inputs[3]);
    return [tensorFromFloat64("int32", r.values, r.dims)];
  },
};

const QLinearMatMul: OpDef = {
  opType: "QLinearMatMul",
  inferTypes: (ctx) => [{ dtype: ctx.inputs[7]?.dtype ?? "uint8" }],
  run(ctx, inputs) {
    const node = ctx.node;
    const [a, aScale, aZero, b, bScale, bZero, yScale, yZero] = [0, 1, 2, 3, 4, 5, 6, 7].map((i) =>
      requireInput(node, inputs, i),
    );
    const { values: acc, dims } = integerMatmul(node, a!, b!, aZero, bZero);
    const k = aScale!.getNumber(0) * bScale!.getNumber(0);
    if (aScale!.size !== 1 || bScale!.size !== 1 || yScale!.size !== 1)
      throw new OpError(node, "only per-tensor scales are supported");
    const ys = yScale!.getNumber(0);
    const yz = yZero!.getNumber(0);
    const out = acc.map((v) => saturate(node, roundHalfEven((v * k) / ys) + yz, yZero!.type));
    return [tensorFromFloat64(yZero!.type, out, dims)];
  },
};

export const quantizeOps: readonly OpDef[] = [
  QuantizeLinear,
  DequantizeLinear,
  DynamicQuantizeLinear,
  MatMulInteger,
  QLinearMatMul,
];
registerOps(quantizeOps);
