/**
 * LayerNorm, SkipLayerNorm and RMSNorm (SimplifiedLayerNormalization) over the last axis, and Softmax over the
 * last axis, statistics in float32 whatever the storage (each tensor f32 or f16: fp16 mode). LayerNorm is
 * two-pass (mean, then Σ(x - mean)²) for the accuracy of rows with a large mean.
 *
 * The norms run one row per group of RG lanes of a subgroup (8, 16 or 32: the device's smallest subgroup size,
 * at most 32), each lane keeping its share of the row in registers (read once; SkipLayerNorm's sum x + skip
 * (+ bias) computed once, in f32), reduced with subgroupShuffleXor — no barrier — where the device has
 * subgroups of at least 8 and rows are at most 32·RG wide (`normRowGroup`). Else, and always for Softmax and
 * ReduceMean, one workgroup of 256 per row reduced in workgroup memory (two reductions of 9 barriers each);
 * there SkipLayerNorm in f32 storage writes the sum into the output (or the optional sum output) and re-reads
 * it, in f16 storage recomputes it. On the H200 the 24 SkipLayerNorms of a BERT [32,128] run took 0.613 ms
 * (fp16) and 0.62–0.68 (fp32) per workgroup, 0.513 and 0.564 with row groups (bench/h200-gpu-bert-h2h-norms-1129d.log).
 * Rows of whole vec4s are read and written as vec4s: one SkipLayerNorm at [4096,768] 0.017 → 0.011 ms (f16) and
 * 0.016 → 0.014 (f32), at [128,768] 0.016 → 0.010 and 0.013 → 0.010 (`bench/gpu-kernels.ts --norms`,
 * bench/h200-norms-vec4-1129e.log).
 */
import { OpError } from "../../../errors.js";
import type { WebGpuContext } from "../context.js";
import type { CommandRecorder } from "../recorder.js";
import { packUniforms, type UniformFields, uniformStruct } from "../uniforms.js";
import {
  bindings,
  bytesOf,
  elemOf,
  expectCapacity,
  expectDims,
  f16Enable,
  type GpuTensor,
  narrow,
  type StorageDecl,
  sizeOf,
  storageKey,
  widen,
} from "./common.js";

const WG = 256;
const ROW_FIELDS: UniformFields = [
  ["rows", "u32"],
  ["width", "u32"],
  ["epsilon", "f32"],
];

/** Row grid: rows spread over x and y (65535 per dimension). */
function rowGrid(rows: number): [number, number] {
  if (rows <= 65535) return [rows, 1];
  const y = Math.ceil(rows / 65535);
  return [Math.ceil(rows / y), y];
}

/** WGSL: workgroup sum of `v` (every thread gets the result). */
const REDUCE = `
var<workgroup> red: array<f32, ${WG}>;
fn wg_sum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn wg_max(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
`;

const ROW_MAIN = `@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let row = wid.y * nwg.x + wid.x;
  // Uniform control flow: the whole workgroup leaves together, before any barrier.
  if (row >= u.rows) { return; }
  let base = row * u.width;
  let n = u.width;`;

/** The tensors of one norm dispatch; each one's storage (f32 or f16) is baked into the pipeline. */
interface NormIo {
  x: GpuTensor;
  skip?: GpuTensor;
  gamma: GpuTensor;
  beta?: GpuTensor;
  bias?: GpuTensor;
  out: GpuTensor;
  sum?: GpuTensor;
  /** RMSNorm (SimplifiedLayerNormalization): no mean is subtracted, one pass for Σx². */
  rms?: boolean;
}

const normKey = (io: NormIo) =>
  `${io.rms ? "rms:" : ""}${storageKey(io.x, io.skip, io.gamma, io.beta, io.bias, io.out, io.sum)}`;

/** The storage bindings of a norm dispatch, in the order the dispatchers bind them. */
function normDecls(io: NormIo, vec = false): StorageDecl[] {
  const el = (t: GpuTensor): StorageDecl["type"] => (vec ? (t.f16 ? "vec4<f16>" : "vec4<f32>") : elemOf(t));
  const decls: StorageDecl[] = [{ name: "x", type: el(io.x) }];
  if (io.skip) decls.push({ name: "skip", type: el(io.skip) });
  decls.push({ name: "gamma", type: el(io.gamma) });
  if (io.beta) decls.push({ name: "beta", type: el(io.beta) });
  if (io.bias) decls.push({ name: "bias", type: el(io.bias) });
  decls.push({ name: "o", type: el(io.out), write: true });
  if (io.sum) decls.push({ name: "sum_out", type: el(io.sum), write: true });
  return decls;
}

function normSource(io: NormIo): string {
  const decls = normDecls(io);
  const xj = widen(io.x, "x[base + j]");
  // The value normalised at column j. SkipLayerNorm in f32 storage writes x + skip (+ bias) once and re-reads
  // it; where the row would be re-read from f16 storage the sum is recomputed instead, so the residual sum and
  // the statistics stay f32 (fp16 mode rounds only the normalised output).
  let first = "    acc += v;";
  let value = xj;
  if (io.skip) {
    const sum = `${xj} + ${widen(io.skip, "skip[base + j]")}${io.bias ? ` + ${widen(io.bias, "bias[j]")}` : ""}`;
    const dst = io.sum ?? io.out;
    const write = io.sum
      ? `\n    sum_out[base + j] = ${narrow(io.sum, "v")};`
      : dst.f16
        ? ""
        : "\n    o[base + j] = v;";
    first = `    let v = ${sum};${write}\n    acc += v;`;
    value = dst.f16 ? sum : io.sum ? "sum_out[base + j]" : "o[base + j]";
  } else first = `    let v = ${xj};\n    acc += v;`;
  // RMSNorm: the mean is 0 and Σx² is the one reduction.
  const meanPass = io.rms
    ? "  let mean = 0.0;"
    : `  var acc = 0.0;
  for (var j = lid; j < n; j += ${WG}u) {
${first}
  }
  let mean = wg_sum(acc, lid) / f32(n);`;
  return `${f16Enable(io.x, io.skip, io.gamma, io.beta, io.bias, io.out, io.sum)}${uniformStruct(ROW_FIELDS)}${bindings(decls)}${REDUCE}
${ROW_MAIN}
${meanPass}
  var sq = 0.0;
  for (var j = lid; j < n; j += ${WG}u) { let d = ${value} - mean; sq += d * d; }
  let inv = inverseSqrt(wg_sum(sq, lid) / f32(n) + u.epsilon);
  for (var j = lid; j < n; j += ${WG}u) {
    o[base + j] = ${narrow(io.out, `(${value} - mean) * inv * ${widen(io.gamma, "gamma[j]")}${io.beta ? ` + ${widen(io.beta, "beta[j]")}` : ""}`)};
  }
}`;
}

/** Values a lane of a row group keeps in registers, at most: wider rows take the workgroup-per-row kernel. */
const MAX_PER_LANE = 32;

/**
 * The row-group kernel's shape for rows of `width` on this device: RG lanes per row (see the header), each
 * keeping `per` of the row's values in registers; undefined where it does not apply (no subgroups of at least
 * 8, or rows wider than RG · MAX_PER_LANE) — the workgroup-per-row kernel runs then. `forced` (tests): 0 for the
 * workgroup kernel, or the lanes per row.
 */
function normRowGroup(
  ctx: WebGpuContext,
  width: number,
  forced?: number,
  scalarLoads = false,
): { rg: number; per: number; vec: boolean } | undefined {
  const f = ctx.gpu.features;
  // Row groups are RG consecutive invocations: only where subgroups are laid out in invocation order.
  const inOrder = f.subgroups && f.subgroupsInOrder;
  // A forced group must be a power of two within one subgroup: its shuffles would mix rows otherwise.
  if (forced !== undefined && forced > 0 && (forced & (forced - 1) || !inOrder || forced > f.subgroupMinSize))
    throw new OpError(
      "webgpu.LayerNormalization",
      `rowGroup ${forced}: lanes per row must be a power of two up to the subgroup size (${f.subgroupMinSize}), on subgroups laid out in invocation order (${inOrder})`,
    );
  const rg = forced ?? (inOrder && f.subgroupMinSize >= 8 ? Math.min(32, f.subgroupMinSize) : 0);
  if (rg <= 0) return undefined;
  // Rows of whole vec4s: each lane loads and stores vec4s (a quarter of the instructions), `per` of them.
  const per4 = Math.ceil(width / 4 / rg);
  if (!scalarLoads && width % 4 === 0 && 4 * per4 <= MAX_PER_LANE)
    return { rg, per: Math.max(per4, 1), vec: true };
  const per = Math.ceil(width / rg);
  return per <= MAX_PER_LANE ? { rg, per: Math.max(per, 1), vec: false } : undefined;
}

/**
 * The row-group kernel: WG / RG rows per workgroup, lane l of a row's group holding columns l, l + RG, … in
 * registers (read once; the sum x + skip + bias written once where asked), mean and variance reduced by
 * subgroupShuffleXor. Every lane runs every shuffle (uniform control flow): a group past the last row computes
 * on a copy of it and writes nothing. With `vec` every tensor is read and written as vec4s (rows of whole
 * vec4s): lane l holds vec4 columns l, l + RG, …, `per` of them.
 */
function normRowGroupSource(io: NormIo, rg: number, per: number, vec: boolean): string {
  const decls = normDecls(io, vec);
  const F = vec ? "vec4<f32>" : "f32";
  const wide = (t: GpuTensor | undefined, x: string) =>
    vec ? (t?.f16 ? `vec4<f32>(${x})` : x) : widen(t, x);
  const thin = (t: GpuTensor | undefined, x: string) =>
    vec ? (t?.f16 ? `vec4<f16>(${x})` : x) : narrow(t, x);
  // Sum of a value's components (a vec4 in `vec` mode), and of their squares.
  const total = (x: string) => (vec ? `dot(${x}, vec4<f32>(1.0))` : x);
  const squares = (x: string) => (vec ? `dot(${x}, ${x})` : `${x} * ${x}`);
  let v = wide(io.x, "x[base + j]");
  if (io.skip)
    v = `${v} + ${wide(io.skip, "skip[base + j]")}${io.bias ? ` + ${wide(io.bias, "bias[j]")}` : ""}`;
  const shuffles = [1, 2, 4, 8, 16]
    .filter((m) => m < rg)
    .map((m) => `  s = s + subgroupShuffleXor(s, ${m}u);`);
  const normed = `(vals[i] - mean) * inv * ${wide(io.gamma, "gamma[j]")}${io.beta ? ` + ${wide(io.beta, "beta[j]")}` : ""}`;
  return `${f16Enable(io.x, io.skip, io.gamma, io.beta, io.bias, io.out, io.sum)}enable subgroups;
${uniformStruct(ROW_FIELDS)}${bindings(decls)}
fn grp_sum(v: f32) -> f32 {
  var s = v;
${shuffles.join("\n")}
  return s;
}

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let lane = lid % ${rg}u;
  let rowAt = (wid.y * nwg.x + wid.x) * ${WG / rg}u + lid / ${rg}u;
  let live = rowAt < u.rows;
  let row = min(rowAt, u.rows - 1u);
  // Columns in elements (vec4s in vec mode) and the row's first one.
  let n = u.width${vec ? " / 4u" : ""};
  let base = row * n;
  var vals: array<${F}, ${per}>;
  var acc = 0.0;
  for (var i = 0u; i < ${per}u; i++) {
    let j = lane + i * ${rg}u;
    var v = ${F}(0.0);
    if (j < n) {
      v = ${v};${
        io.sum
          ? `
      if (live) { sum_out[base + j] = ${thin(io.sum, "v")}; }`
          : ""
      }
    }
    vals[i] = v;
    acc += ${total("v")};
  }
  let mean = ${io.rms ? "0.0" : "grp_sum(acc) / f32(u.width)"};
  var sq = 0.0;
  for (var i = 0u; i < ${per}u; i++) {
    if (lane + i * ${rg}u < n) { let d = vals[i] - mean; sq += ${squares("d")}; }
  }
  let inv = inverseSqrt(grp_sum(sq) / f32(u.width) + u.epsilon);
  for (var i = 0u; i < ${per}u; i++) {
    let j = lane + i * ${rg}u;
    if (live && j < n) { o[base + j] = ${thin(io.out, normed)}; }
  }
}`;
}

/** Records one norm dispatch: the row-group kernel where it applies (normRowGroup), else one workgroup per row. */
function recordNorm(
  ctx: WebGpuContext,
  rec: CommandRecorder,
  kind: string,
  io: NormIo,
  bufs: GPUBuffer[],
  shape: { rows: number; width: number; epsilon: number },
  tuning: NormTuning,
  op: string,
): void {
  const { rows, width } = shape;
  if (rows === 0) return;
  const g = normRowGroup(ctx, width, tuning.rowGroup, tuning.scalarLoads);
  const k = g
    ? ctx.pipelines.get(`${kind}:rg${g.rg}x${g.per}${g.vec ? "v4" : ""}:${normKey(io)}`, () =>
        normRowGroupSource(io, g.rg, g.per, g.vec),
      )
    : ctx.pipelines.get(`${kind}:${normKey(io)}`, () => normSource(io));
  const grid = rowGrid(g ? Math.ceil(rows / (WG / g.rg)) : rows);
  rec.dispatch(k, bufs, packUniforms(ROW_FIELDS, shape), grid, op);
}

/** Kernel choices the norms' callers may force (tests, benchmarks). */
export interface NormTuning {
  /** Force the lanes per row: 0 the workgroup-per-row kernel; default `normRowGroup`. */
  rowGroup?: number;
  /** Row-group kernel with scalar loads where rows are whole vec4s; default vec4. */
  scalarLoads?: boolean;
}

export interface LayerNormArgs extends NormTuning {
  x: GpuTensor;
  gamma: GpuTensor;
  beta?: GpuTensor;
  out: GpuTensor;
  epsilon: number;
  /** ONNX axis (default -1): rows are the product of dims before it, normalised width the product after. */
  axis?: number;
}

function normShape(op: string, dims: readonly number[], axis = -1): { rows: number; width: number } {
  const a = axis < 0 ? axis + dims.length : axis;
  if (a < 0 || a >= dims.length)
    throw new OpError(op, `axis ${axis} is out of range for rank ${dims.length}`);
  return { rows: sizeOf(dims.slice(0, a)), width: sizeOf(dims.slice(a)) };
}

/** LayerNormalization: out = (x - mean) / sqrt(var + epsilon) · gamma + beta over the dims from `axis` on. */
export function layerNorm(ctx: WebGpuContext, rec: CommandRecorder, args: LayerNormArgs): void {
  const op = "webgpu.LayerNormalization";
  const { rows, width } = normShape(op, args.x.dims, args.axis);
  expectCapacity(op, "input X", args.x, undefined, bytesOf(args.x));
  expectCapacity(op, "input Scale", args.gamma, width, bytesOf(args.gamma));
  if (args.beta) expectCapacity(op, "input B", args.beta, width, bytesOf(args.beta));
  expectDims(op, "output", args.out.dims, args.x.dims);
  const io: NormIo = { x: args.x, gamma: args.gamma, beta: args.beta, out: args.out };
  const bufs = [args.x.buffer, args.gamma.buffer];
  if (args.beta) bufs.push(args.beta.buffer);
  bufs.push(args.out.buffer);
  recordNorm(ctx, rec, "layernorm", io, bufs, { rows, width, epsilon: args.epsilon }, args, op);
}

/**
 * SimplifiedLayerNormalization (RMSNorm): out = x / sqrt(mean(x²) + epsilon) · gamma over the dims from
 * `axis` on, statistics in f32 whatever the storage.
 */
export function rmsNorm(ctx: WebGpuContext, rec: CommandRecorder, args: Omit<LayerNormArgs, "beta">): void {
  const op = "webgpu.SimplifiedLayerNormalization";
  const { rows, width } = normShape(op, args.x.dims, args.axis);
  expectCapacity(op, "input X", args.x, undefined, bytesOf(args.x));
  expectCapacity(op, "input scale", args.gamma, width, bytesOf(args.gamma));
  expectDims(op, "output", args.out.dims, args.x.dims);
  const io: NormIo = { x: args.x, gamma: args.gamma, out: args.out, rms: true };
  const bufs = [args.x.buffer, args.gamma.buffer, args.out.buffer];
  recordNorm(ctx, rec, "rmsnorm", io, bufs, { rows, width, epsilon: args.epsilon }, args, op);
}

export interface SkipLayerNormArgs extends NormTuning {
  x: GpuTensor;
  skip: GpuTensor;
  gamma: GpuTensor;
  beta?: GpuTensor;
  bias?: GpuTensor;
  out: GpuTensor;
  /** Optional output 3 of com.microsoft.SkipLayerNormalization: x + skip + bias. */
  sum?: GpuTensor;
  epsilon: number;
}

/** com.microsoft.SkipLayerNormalization: LayerNorm(x + skip + bias) over the last axis. */
export function skipLayerNorm(ctx: WebGpuContext, rec: CommandRecorder, args: SkipLayerNormArgs): void {
  const op = "com.microsoft.SkipLayerNormalization (webgpu)";
  const { rows, width } = normShape(op, args.x.dims);
  expectDims(op, "input skip", args.skip.dims, args.x.dims);
  expectDims(op, "output", args.out.dims, args.x.dims);
  if (args.sum) expectDims(op, "output sum", args.sum.dims, args.x.dims);
  expectCapacity(op, "input gamma", args.gamma, width, bytesOf(args.gamma));
  if (args.beta) expectCapacity(op, "input beta", args.beta, width, bytesOf(args.beta));
  if (args.bias) expectCapacity(op, "input bias", args.bias, width, bytesOf(args.bias));
  const { rowGroup: _, scalarLoads: __, ...io }: NormIo & NormTuning = args;
  const bufs = [args.x.buffer, args.skip.buffer, args.gamma.buffer];
  if (args.beta) bufs.push(args.beta.buffer);
  if (args.bias) bufs.push(args.bias.buffer);
  bufs.push(args.out.buffer);
  if (args.sum) bufs.push(args.sum.buffer);
  recordNorm(ctx, rec, "skiplayernorm", io, bufs, { rows, width, epsilon: args.epsilon }, args, op);
}

/** Softmax over the last axis (opset 13 semantics; earlier opsets' 2-D coercion is the caller's reshape). */
export function softmax(ctx: WebGpuContext, rec: CommandRecorder, x: GpuTensor, out: GpuTensor): void {
  const op = "webgpu.Softmax";
  const { rows, width } = normShape(op, x.dims);
  expectDims(op, "output", out.dims, x.dims);
  expectCapacity(op, "input", x, undefined, bytesOf(x));
  const xj = widen(x, "x[base + j]");
  const k = ctx.pipelines.get(
    `softmax:${storageKey(x, out)}`,
    () => `${f16Enable(x, out)}${uniformStruct(ROW_FIELDS)}${bindings([
      { name: "x", type: elemOf(x) },
      { name: "o", type: elemOf(out), write: true },
    ])}${REDUCE}
${ROW_MAIN}
  var m = -3.4028234663852886e38;
  for (var j = lid; j < n; j += ${WG}u) { m = max(m, ${xj}); }
  m = wg_max(m, lid);
  var s = 0.0;
  for (var j = lid; j < n; j += ${WG}u) { s += exp(${xj} - m); }
  let inv = 1.0 / wg_sum(s, lid);
  for (var j = lid; j < n; j += ${WG}u) { o[base + j] = ${narrow(out, `exp(${xj} - m) * inv`)}; }
}`,
  );
  rec.dispatch(
    k,
    [x.buffer, out.buffer],
    packUniforms(ROW_FIELDS, { rows, width, epsilon: 0 }),
    rowGrid(rows),
    op,
  );
}

/**
 * Mean over the trailing `width` elements of each row (ReduceMean over trailing axes, RMSNorm's mean of
 * squares): out[row] = Σ x[row·width + j] / width, summed in f32 in workgroup memory like the norms (x and
 * out each f32 or f16).
 */
export function rowMean(
  ctx: WebGpuContext,
  rec: CommandRecorder,
  x: GpuTensor,
  rows: number,
  width: number,
  out: GpuTensor,
): void {
  const op = "webgpu.ReduceMean";
  expectCapacity(op, "input", x, rows * width, bytesOf(x));
  expectCapacity(op, "output", out, rows, bytesOf(out));
  if (rows === 0) return;
  const k = ctx.pipelines.get(
    `rowmean:${storageKey(x, out)}`,
    () => `${f16Enable(x, out)}${uniformStruct(ROW_FIELDS)}${bindings([
      { name: "x", type: elemOf(x) },
      { name: "o", type: elemOf(out), write: true },
    ])}${REDUCE}
${ROW_MAIN}
  var s = 0.0;
  for (var j = lid; j < n; j += ${WG}u) { s += ${widen(x, "x[base + j]")}; }
  // An empty row is 0 / 0 = NaN, as the reference's mean of nothing.
  let total = wg_sum(s, lid) / f32(n);
  if (lid == 0u) { o[row] = ${narrow(out, "total")}; }
}`,
  );
  rec.dispatch(
    k,
    [x.buffer, out.buffer],
    packUniforms(ROW_FIELDS, { rows, width, epsilon: 0 }),
    rowGrid(rows),
    op,
  );
}
