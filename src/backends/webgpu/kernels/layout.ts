/**
 * Data-movement kernels the graph backend needs around the math kernels: Transpose (rank <= 6, the
 * permutation's rank baked in, dims and strides as uniforms) and Gather (rows of `outer × indices × inner`,
 * int32 indices already normalised on the host).
 */
import { OpError } from "../../../errors.js";
import { stridesOf } from "../../../ir/tensor.js";
import type { WebGpuContext } from "../context.js";
import type { CommandRecorder } from "../recorder.js";
import { packUniforms, type UniformFields, uniformStruct } from "../uniforms.js";
import {
  bindings,
  ERF_WGSL,
  elemOf,
  f16Enable,
  type GpuTensor,
  LINEAR_MAIN,
  linearGrid,
  narrow,
  sizeOf,
  storageKey,
  widen,
} from "./common.js";

const MAX_RANK = 6;

function transposeFields(rank: number): UniformFields {
  const f: [string, "u32"][] = [["total", "u32"]];
  for (let i = 0; i < rank; i++) f.push([`d${i}`, "u32"], [`s${i}`, "u32"]);
  return f;
}

/**
 * out[i0..] = x[permuted index]: out dims are x.dims[perm[k]]; each output axis reads input stride s_k.
 * Storage is x's (f32 or f16) on both sides: pure data movement, no rounding.
 */
export function transpose(
  ctx: WebGpuContext,
  rec: CommandRecorder,
  x: GpuTensor,
  perm: readonly number[],
  out: GpuTensor,
): void {
  const op = "webgpu.Transpose";
  if (!!x.f16 !== !!out.f16) throw new OpError(op, "input and output storage (f32/f16) must match");
  const rank = x.dims.length;
  if (rank > MAX_RANK) throw new OpError(op, `rank ${rank} > ${MAX_RANK} is not supported`);
  if (perm.length !== rank) throw new OpError(op, `perm [${perm}] does not match rank ${rank}`);
  const inStrides: number[] = new Array(rank);
  let s = 1;
  for (let i = rank - 1; i >= 0; i--) {
    inStrides[i] = s;
    s *= x.dims[i]!;
  }
  const total = sizeOf(x.dims);
  const r = Math.max(rank, 1);
  const values: Record<string, number> = { total };
  for (let k = 0; k < r; k++) {
    values[`d${k}`] = rank ? x.dims[perm[k]!]! : 1;
    values[`s${k}`] = rank ? inStrides[perm[k]!]! : 0;
  }
  const walk: string[] = [];
  for (let k = r - 1; k >= 0; k--)
    walk.push(`  { let c = r % u.d${k}; r = r / u.d${k}; src += c * u.s${k}; }`);
  const k = ctx.pipelines.get(
    `transpose:r${r}:${storageKey(x)}`,
    () => `${f16Enable(x)}${uniformStruct(transposeFields(r))}${bindings([
      { name: "x", type: elemOf(x) },
      { name: "o", type: elemOf(x), write: true },
    ])}
${LINEAR_MAIN}
  if (i >= u.total) { return; }
  var r = i; var src = 0u;
${walk.join("\n")}
  o[i] = x[src];
}`,
  );
  rec.dispatch(k, [x.buffer, out.buffer], packUniforms(transposeFields(r), values), linearGrid(total), op);
}

const GATHER_FIELDS: UniformFields = [
  ["total", "u32"],
  ["inner", "u32"],
  ["count", "u32"],
  ["axisDim", "u32"],
];

/**
 * Gather along an axis: data viewed as [outer, axisDim, inner], `indices` int32 (count values, in range);
 * out is [outer, count, inner], in data's storage (f32 or f16).
 */
export function gather(
  ctx: WebGpuContext,
  rec: CommandRecorder,
  data: GpuTensor,
  axis: number,
  indices: GPUBuffer,
  count: number,
  out: GpuTensor,
  /** A negative index writes zeros (RestorePadding's padded rows) instead of reading a row. */
  zeroNegative = false,
): void {
  const inner = sizeOf(data.dims.slice(axis + 1));
  const axisDim = data.dims[axis]!;
  const total = sizeOf(out.dims);
  if (!!data.f16 !== !!out.f16)
    throw new OpError("webgpu.Gather", "data and output storage (f32/f16) must match");
  const read = "x[(b * u.axisDim + u32(max(idx[n], 0))) * u.inner + j]";
  const k = ctx.pipelines.get(
    `gather:${storageKey(data)}${zeroNegative ? ":zero-negative" : ""}`,
    () => `${f16Enable(data)}${uniformStruct(GATHER_FIELDS)}${bindings([
      { name: "x", type: elemOf(data) },
      { name: "idx", type: "i32" },
      { name: "o", type: elemOf(data), write: true },
    ])}
${LINEAR_MAIN}
  if (i >= u.total) { return; }
  let j = i % u.inner;
  let t = i / u.inner;
  let n = t % u.count;
  let b = t / u.count;
  ${
    // A branch, not select(): select evaluates the read too, and with Dawn's robustness off a padded row's read
    // of an empty tensor (every token padded) would leave its buffer.
    zeroNegative
      ? `if (idx[n] >= 0) { o[i] = ${read}; } else { o[i] = ${elemOf(data)}(0); }`
      : `o[i] = ${read};`
  }
}`,
  );
  rec.dispatch(
    k,
    [data.buffer, indices, out.buffer],
    packUniforms(GATHER_FIELDS, { total, inner, count, axisDim }),
    linearGrid(total),
    "webgpu.Gather",
  );
}

/** Elementwise maps over float32, by name: the WGSL expression of `x`. */
export const UNARY_MAPS = {
  Erf: "erf_f32(x)",
  Gelu: "gelu_f32(x)",
  Tanh: "tanh(clamp(x, -15.0, 15.0))",
  Relu: "max(x, 0.0)",
  Sigmoid: "1.0 / (1.0 + exp(-x))",
  Sqrt: "sqrt(x)",
  Exp: "exp(x)",
  Neg: "-x",
  Abs: "abs(x)",
  Reciprocal: "1.0 / x",
  Cos: "cos(x)",
  Sin: "sin(x)",
  // Pow by the exponent 2 (RMSNorm): exact, where pow() is exp2(y·log2 x) and NaN for negative x.
  Square: "x * x",
} as const;
export type UnaryMap = keyof typeof UNARY_MAPS;

const MAP_FIELDS: UniformFields = [["total", "u32"]];

/** out = f(x) elementwise, f one of UNARY_MAPS (one pipeline per map and storage pair); math in f32. */
export function unaryMap(
  ctx: WebGpuContext,
  rec: CommandRecorder,
  map: UnaryMap,
  x: GpuTensor,
  out: GpuTensor,
): void {
  const total = sizeOf(x.dims);
  const k = ctx.pipelines.get(
    `map:${map}:${storageKey(x, out)}`,
    () => `${f16Enable(x, out)}${uniformStruct(MAP_FIELDS)}${bindings([
      { name: "xs", type: elemOf(x) },
      { name: "o", type: elemOf(out), write: true },
    ])}${ERF_WGSL}
${LINEAR_MAIN}
  if (i >= u.total) { return; }
  let x = ${widen(x, "xs[i]")};
  o[i] = ${narrow(out, UNARY_MAPS[map])};
}`,
  );
  rec.dispatch(
    k,
    [x.buffer, out.buffer],
    packUniforms(MAP_FIELDS, { total }),
    linearGrid(total),
    `webgpu.${map}`,
  );
}

function copyFields(rank: number): UniformFields {
  const f: [string, "u32" | "i32"][] = [
    ["total", "u32"],
    ["srcOff", "i32"],
    ["dstOff", "i32"],
  ];
  for (let i = 0; i < rank; i++) f.push([`d${i}`, "u32"], [`ss${i}`, "i32"], [`ds${i}`, "i32"]);
  return f;
}

/** One strided view of a tensor: element offset and per-axis element strides (negative: a reversed axis). */
export interface StridedView {
  offset: number;
  strides: readonly number[];
}

/**
 * dst[dst.offset + Σ c_k·dst.strides_k] = src[src.offset + Σ c_k·src.strides_k] over every index c of `dims`
 * (rank <= 6 baked in; dims, offsets and strides uniforms). Slice (steps as source strides) and Concat (each
 * input into its window of the output) are this one kernel. `f16`: both buffers hold f16 elements (offsets
 * and strides still count elements); else 4-byte words (f32 or i32), copied bit for bit.
 */
export function stridedCopy(
  ctx: WebGpuContext,
  rec: CommandRecorder,
  dims: readonly number[],
  src: GPUBuffer,
  from: StridedView,
  dst: GPUBuffer,
  to: StridedView,
  label = "webgpu.Copy",
  f16 = false,
): void {
  const rank = dims.length;
  if (rank > MAX_RANK) throw new OpError(label, `rank ${rank} > ${MAX_RANK} is not supported`);
  const total = sizeOf(dims);
  if (total === 0) return;
  const r = Math.max(rank, 1);
  const values: Record<string, number> = { total, srcOff: from.offset, dstOff: to.offset };
  for (let k = 0; k < r; k++) {
    values[`d${k}`] = rank ? dims[k]! : 1;
    values[`ss${k}`] = rank ? from.strides[k]! : 0;
    values[`ds${k}`] = rank ? to.strides[k]! : 0;
  }
  const walk: string[] = [];
  for (let k = r - 1; k >= 0; k--)
    walk.push(`  { let c = i32(r % u.d${k}); r = r / u.d${k}; s += c * u.ss${k}; d += c * u.ds${k}; }`);
  const half = { f16 };
  const k = ctx.pipelines.get(
    `copy:r${r}:${storageKey(half)}`,
    () => `${f16Enable(half)}${uniformStruct(copyFields(r))}${bindings([
      { name: "x", type: elemOf(half) },
      { name: "o", type: elemOf(half), write: true },
    ])}
${LINEAR_MAIN}
  if (i >= u.total) { return; }
  var r = i; var s = u.srcOff; var d = u.dstOff;
${walk.join("\n")}
  o[d] = x[s];
}`,
  );
  rec.dispatch(k, [src, dst], packUniforms(copyFields(r), values), linearGrid(total), label);
}

/** Row-major element strides of `dims` (the IR's one definition). */
export const contiguousStrides = stridesOf;

const POW_FIELDS: UniformFields = [
  ["total", "u32"],
  ["y", "f32"],
  ["nan", "f32"],
];

/**
 * out = x^y for one scalar exponent y (a uniform): ONNX Pow on a float base — a negative base gives a real
 * result only for an integral y (its sign from y's parity), NaN otherwise; x^0 = 1, NaN included. Math in
 * f32; x and out each f32 or f16.
 */
export function powScalar(
  ctx: WebGpuContext,
  rec: CommandRecorder,
  x: GpuTensor,
  y: number,
  out: GpuTensor,
): void {
  const total = sizeOf(x.dims);
  const k = ctx.pipelines.get(
    `pow-scalar:${storageKey(x, out)}`,
    () => `${f16Enable(x, out)}${uniformStruct(POW_FIELDS)}${bindings([
      { name: "xs", type: elemOf(x) },
      { name: "o", type: elemOf(out), write: true },
    ])}
${LINEAR_MAIN}
  if (i >= u.total) { return; }
  let x = ${widen(x, "xs[i]")};
  let y = u.y;
  let m = pow(abs(x), y);
  var r = m;
  if (x < 0.0) {
    // A non-integral y: no real root. NaN comes from a uniform (WGSL constant expressions cannot hold NaN).
    if (fract(y) != 0.0) { r = u.nan; }
    else if (fract(y * 0.5) != 0.0) { r = -m; }
  }
  o[i] = ${narrow(out, "select(r, 1.0, y == 0.0)")};
}`,
  );
  rec.dispatch(
    k,
    [x.buffer, out.buffer],
    packUniforms(POW_FIELDS, { total, y, nan: Number.NaN }),
    linearGrid(total),
    "webgpu.Pow",
  );
}
