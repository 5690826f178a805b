/**
 * Data-movement kernels the graph backend needs around the math kernels: Transpose (rank <= 6, the
 * permutation's rank baked in, dims and strides as uniforms) and Gather (rows of `outer × indices × inner`,
 * int32 indices already normalised on the host).
 */
import { OpError } from "../../../errors.js";
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
): void {
  const inner = sizeOf(data.dims.slice(axis + 1));
  const axisDim = data.dims[axis]!;
  const total = sizeOf(out.dims);
  if (!!data.f16 !== !!out.f16)
    throw new OpError("webgpu.Gather", "data and output storage (f32/f16) must match");
  const k = ctx.pipelines.get(
    `gather:${storageKey(data)}`,
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
  o[i] = x[(b * u.axisDim + u32(idx[n])) * u.inner + j];
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
