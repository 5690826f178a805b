/**
 * Elementwise kernels: binary Add/Sub/Mul/Div with numpy broadcasting (rank up to 6) and unary GELU (erf).
 * The rank and the op are baked into the WGSL; dims and broadcast strides are uniforms.
 */
import { OpError } from "../../../errors.js";
import type { WebGpuContext } from "../context.js";
import type { CommandRecorder } from "../recorder.js";
import { packUniforms, type UniformFields, uniformStruct } from "../uniforms.js";
import {
  bindings,
  bytesOf,
  ERF_WGSL,
  elemOf,
  expectCapacity,
  expectDims,
  f16Enable,
  type GpuTensor,
  LINEAR_MAIN,
  linearGrid,
  narrow,
  sizeOf,
  storageKey,
  widen,
} from "./common.js";

export type BinaryOp = "Add" | "Sub" | "Mul" | "Div";
const EXPR: Record<BinaryOp, string> = { Add: "x + y", Sub: "x - y", Mul: "x * y", Div: "x / y" };
const MAX_RANK = 6;

/** numpy broadcast of two shapes; throws OpError naming the op when they do not broadcast. */
export function broadcastShape(op: string, a: readonly number[], b: readonly number[]): number[] {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1;
    const y = b[b.length - r + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1)
      throw new OpError(op, `inputs of shape [${a}] and [${b}] do not broadcast (axis ${i}: ${x} vs ${y})`);
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** Element strides of `dims` read as `out`'s shape: 0 on broadcast axes. */
function broadcastStrides(dims: readonly number[], out: readonly number[]): number[] {
  const r = out.length;
  const strides = new Array<number>(r).fill(0);
  let s = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    const axis = r - dims.length + i;
    strides[axis] = dims[i] === 1 ? 0 : s;
    s *= dims[i]!;
  }
  return strides;
}

function binaryFields(rank: number): UniformFields {
  const f: [string, "u32"][] = [["total", "u32"]];
  for (let i = 0; i < rank; i++) f.push([`d${i}`, "u32"], [`sa${i}`, "u32"], [`sb${i}`, "u32"]);
  return f;
}

/** Storage of a, b and the output: each f32 or f16 (math in f32 either way). */
type Io = readonly [GpuTensor, GpuTensor, GpuTensor];

function binarySource(op: BinaryOp, rank: number, [ta, tb, to]: Io): string {
  // Walk the output index from the innermost axis, accumulating each input's offset.
  const walk: string[] = [];
  for (let i = rank - 1; i >= 0; i--)
    walk.push(`  { let c = r % u.d${i}; r = r / u.d${i}; oa += c * u.sa${i}; ob += c * u.sb${i}; }`);
  const decls = [
    { name: "a", type: elemOf(ta) },
    { name: "b", type: elemOf(tb) },
    { name: "o", type: elemOf(to), write: true },
  ] as const;
  return `${f16Enable(ta, tb, to)}${uniformStruct(binaryFields(rank))}${bindings(decls)}
${LINEAR_MAIN}
  if (i >= u.total) { return; }
  var r = i; var oa = 0u; var ob = 0u;
${walk.join("\n")}
  let x = ${widen(ta, "a[oa]")}; let y = ${widen(tb, "b[ob]")};
  o[i] = ${narrow(to, EXPR[op])};
}`;
}

/**
 * out = a ∘ b with broadcasting; `out.dims` must be the broadcast shape. Each tensor's storage (f32 or f16,
 * GpuTensor.f16) is its own: fp16 mode keeps residual sums in f32 while their operands are f16.
 */
export function binary(
  ctx: WebGpuContext,
  rec: CommandRecorder,
  op: BinaryOp,
  a: GpuTensor,
  b: GpuTensor,
  out: GpuTensor,
): void {
  const name = `webgpu.${op}`;
  const shape = broadcastShape(name, a.dims, b.dims);
  expectDims(name, "output", out.dims, shape);
  if (shape.length > MAX_RANK) throw new OpError(name, `rank ${shape.length} > ${MAX_RANK} is not supported`);
  expectCapacity(name, "input A", a, undefined, bytesOf(a));
  expectCapacity(name, "input B", b, undefined, bytesOf(b));
  expectCapacity(name, "output", out, undefined, bytesOf(out));
  // Rank >= 1 so the index walk has an axis; a scalar is [1].
  const dims = shape.length ? shape : [1];
  const rank = dims.length;
  const sa = broadcastStrides(a.dims, dims);
  const sb = broadcastStrides(b.dims, dims);
  const total = sizeOf(dims);
  const values: Record<string, number> = { total };
  dims.forEach((d, i) => {
    values[`d${i}`] = d;
    values[`sa${i}`] = sa[i]!;
    values[`sb${i}`] = sb[i]!;
  });
  const io: Io = [a, b, out];
  const k = ctx.pipelines.get(`binary:${op}:r${rank}:${storageKey(...io)}`, () => binarySource(op, rank, io));
  rec.dispatch(
    k,
    [a.buffer, b.buffer, out.buffer],
    packUniforms(binaryFields(rank), values),
    linearGrid(total),
    name,
  );
}

export type UnaryOp = "Gelu";
const UNARY_FIELDS: UniformFields = [["total", "u32"]];

/** out = GELU(x) = 0.5·x·(1 + erf(x/√2)), elementwise. */
export function unary(
  ctx: WebGpuContext,
  rec: CommandRecorder,
  op: UnaryOp,
  x: GpuTensor,
  out: GpuTensor,
): void {
  const name = `webgpu.${op}`;
  expectDims(name, "output", out.dims, x.dims);
  expectCapacity(name, "input", x);
  expectCapacity(name, "output", out);
  const total = sizeOf(x.dims);
  const k = ctx.pipelines.get(
    `unary:${op}`,
    () => `${uniformStruct(UNARY_FIELDS)}${bindings([{ name: "x" }, { name: "o", write: true }])}${ERF_WGSL}
${LINEAR_MAIN}
  if (i >= u.total) { return; }
  o[i] = gelu_f32(x[i]);
}`,
  );
  rec.dispatch(k, [x.buffer, out.buffer], packUniforms(UNARY_FIELDS, { total }), linearGrid(total), name);
}
