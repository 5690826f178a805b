/**
 * f32 ↔ f16 casts on the GPU: how fp16 mode converts an fp32 model's weights at prepare time and hands f16
 * activations to fp32 kernels (or back to the host) without a round trip. Two elements per thread, so each
 * f16 pair is one u32 (pack2x16float / unpack2x16float are core WGSL: no shader-f16 needed to convert).
 */
import { OpError } from "../../../errors.js";
import type { WebGpuContext } from "../context.js";
import type { CommandRecorder } from "../recorder.js";
import { packUniforms, type UniformFields, uniformStruct } from "../uniforms.js";
import { bindings, expectCapacity, type GpuTensor, LINEAR_MAIN, linearGrid, sizeOf } from "./common.js";

const FIELDS: UniformFields = [["count", "u32"]];

function source(toF16: boolean): string {
  const body = toF16
    ? `  let a = X[2u * i];
  let b = select(0.0, X[min(2u * i + 1u, u.count - 1u)], 2u * i + 1u < u.count);
  Y[i] = pack2x16float(vec2<f32>(a, b));`
    : `  let p = unpack2x16float(X[i]);
  Y[2u * i] = p.x;
  if (2u * i + 1u < u.count) { Y[2u * i + 1u] = p.y; }`;
  return `${uniformStruct(FIELDS)}${bindings([
    { name: "X", type: toF16 ? "f32" : "u32" },
    { name: "Y", type: toF16 ? "u32" : "f32", write: true },
  ])}${LINEAR_MAIN}
  if (i >= (u.count + 1u) / 2u) { return; }
${body}
}`;
}

function cast(ctx: WebGpuContext, rec: CommandRecorder, x: GpuTensor, out: GpuTensor, toF16: boolean): void {
  const op = toF16 ? "webgpu.Cast (f32→f16)" : "webgpu.Cast (f16→f32)";
  const n = sizeOf(x.dims);
  if (sizeOf(out.dims) !== n) throw new OpError(op, `output [${out.dims}] must hold [${x.dims}]`);
  // f16 buffers are read and written as whole u32 pairs: an odd count needs the padding half.
  const halves = n + (n & 1);
  expectCapacity(op, "input", x, toF16 ? n : halves, toF16 ? 4 : 2);
  expectCapacity(op, "output", out, toF16 ? halves : n, toF16 ? 2 : 4);
  const k = ctx.pipelines.get(`cast:${toF16 ? "f32-f16" : "f16-f32"}`, () => source(toF16));
  rec.dispatch(
    k,
    [x.buffer, out.buffer],
    packUniforms(FIELDS, { count: n }),
    linearGrid(Math.ceil(n / 2)),
    op,
  );
}

/** out (f16) = x (f32), rounded to nearest even. */
export function castF32ToF16(ctx: WebGpuContext, rec: CommandRecorder, x: GpuTensor, out: GpuTensor): void {
  cast(ctx, rec, x, out, true);
}

/** out (f32) = x (f16), exact. */
export function castF16ToF32(ctx: WebGpuContext, rec: CommandRecorder, x: GpuTensor, out: GpuTensor): void {
  cast(ctx, rec, x, out, false);
}
