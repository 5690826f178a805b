/**
 * Slice and Concat on the device, both as strided copies (../kernels/layout.ts `stridedCopy`): the ops' own
 * contracts resolve the geometry (clamped starts and steps, the concat axis) from dims and host inputs, the
 * data never leaves the GPU. Decoders slice and concatenate rotary halves and fused projections per layer.
 * fp16 mode: Slice copies in its input's storage, Concat in its output's (`outF16`), f32 inputs cast first.
 */
import type { Tensor } from "../../../ir/tensor.js";
import { concatAxis, sliceGeometry } from "../../../ops/concat-split.js";
import { contiguousStrides, stridedCopy } from "../kernels/layout.js";
import type { GpuKernelDef } from "./kernel-context.js";
import type { RunValue } from "./values.js";

const MAX_RANK = 6;
const f32 = (v: RunValue | undefined) => v !== undefined && v.type === "float32";

export const sliceDef: GpuKernelDef = {
  opType: "Slice",
  types: ["float32"],
  hostInputs: [1, 2, 3, 4],
  accepts: (_n, _o, [x]) =>
    !f32(x) ? "not float32" : x!.dims.length > MAX_RANK ? "rank above 6" : undefined,
  run(k, inputs) {
    const X = k.device(inputs[0]!);
    const ax = sliceGeometry(k, X.dims, inputs as (Tensor | undefined)[]);
    const inStrides = contiguousStrides(X.dims);
    const outDims = ax.map((a) => a.length);
    // A pure copy: the output keeps the input's storage (f16 in fp16 mode: no rounding).
    const out = k.alloc(outDims, "float32", X.f16);
    stridedCopy(
      k.gpu,
      k.rec,
      outDims,
      X.buffer,
      {
        offset: ax.reduce((s, a, i) => s + a.start * inStrides[i]!, 0),
        strides: ax.map((a, i) => a.step * inStrides[i]!),
      },
      out.buffer,
      { offset: 0, strides: contiguousStrides(outDims) },
      "webgpu.Slice",
      X.f16,
    );
    return [out];
  },
};

/** Concat of float32 inputs (host ones uploaded): each input copied into its window of the output. */
export const concatDef: GpuKernelDef = {
  opType: "Concat",
  types: ["float32"],
  accepts(node, opset, inputs) {
    if (!inputs.every(f32)) return "a non-float32 input";
    const first = inputs[0]!;
    if (first.dims.length > MAX_RANK) return "rank above 6";
    const axis = concatAxis({ node, opset }, first.dims.length);
    // Mismatched shapes: declined, so the CPU reference throws the contract's error.
    if (
      inputs.some(
        (x) =>
          x!.dims.length !== first.dims.length || x!.dims.some((d, a) => a !== axis && d !== first.dims[a]),
      )
    )
      return "input shapes differ off the concat axis";
    return undefined;
  },
  run(k, inputs) {
    // fp16 mode: every input in the output's storage (an f32 one cast to f16 first), then plain copies.
    const f16 = k.outF16(0);
    const xs = inputs.map((v) => k.device(v!, f16 ? "f16" : "f32"));
    const first = xs[0]!;
    const axis = concatAxis(k, first.dims.length);
    const outDims = [...first.dims];
    outDims[axis] = xs.reduce((s, x) => s + x.dims[axis]!, 0);
    const out = k.alloc(outDims, "float32", f16);
    const outStrides = contiguousStrides(outDims);
    let at = 0;
    for (const x of xs) {
      stridedCopy(
        k.gpu,
        k.rec,
        x.dims,
        x.buffer,
        { offset: 0, strides: contiguousStrides(x.dims) },
        out.buffer,
        { offset: at * outStrides[axis]!, strides: outStrides },
        "webgpu.Concat",
        f16,
      );
      at += x.dims[axis]!;
    }
    return [out];
  },
};
