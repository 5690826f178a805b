/**
 * ConvTranspose (N spatial axes, groups, strides, dilations, pads / auto_pad, output_padding, output_shape),
 * as the gradient of Conv: every input pixel scatters its kernel into the output. Float64 reference.
 */
import { OpError } from "../errors.js";
import type { Dim } from "../ir/graph.js";
import { sizeOf } from "../ir/tensor.js";
import { requireInput } from "./elementwise-util.js";
import { requireFloat, tensorFromFloat64 } from "./float-data.js";
import { attrInt, attrInts, attrString, hasAttr, type OpDef, registerOps } from "./registry.js";

const ConvTranspose: OpDef = {
  opType: "ConvTranspose",
  inferTypes(ctx) {
    const x = ctx.inputs[0];
    return [{ dtype: x?.dtype ?? "float32", shape: x?.shape?.map((): Dim => null) }];
  },
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    const w = requireInput(node, inputs, 1);
    requireFloat(node, x, "X");
    const bias = inputs[2]?.toFloat64();
    const spatial = x.dims.slice(2);
    const n = spatial.length;
    const kernel = hasAttr(node, "kernel_shape") ? attrInts(node, "kernel_shape") : w.dims.slice(2);
    const group = attrInt(node, "group", 1);
    const [N, Cin] = x.dims as [number, number];
    if (w.dims[0] !== Cin) throw new OpError(node, `W has ${w.dims[0]} input channels, X has ${Cin}`);
    const Cog = w.dims[1]!;
    const Cout = Cog * group;
    const Cig = Cin / group;
    const strides = attrInts(node, "strides", new Array(n).fill(1));
    const dilations = attrInts(node, "dilations", new Array(n).fill(1));
    const outPad = attrInts(node, "output_padding", new Array(n).fill(0));
    const autoPad = attrString(node, "auto_pad", "NOTSET");
    const reach = kernel.map((k, i) => (k - 1) * dilations[i]! + 1);
    const full = spatial.map((d, i) => strides[i]! * (d - 1) + outPad[i]! + reach[i]!);
    let begin = new Array<number>(n).fill(0);
    let out: number[];
    if (hasAttr(node, "output_shape")) {
      const shape = attrInts(node, "output_shape");
      out = shape.slice(-n);
      const total = full.map((f, i) => f - out[i]!);
      begin = total.map((t) => (autoPad === "SAME_UPPER" ? Math.floor(t / 2) : t - Math.floor(t / 2)));
    } else if (autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
      out = spatial.map((d, i) => d * strides[i]!);
      const total = full.map((f, i) => f - out[i]!);
      begin = total.map((t) => (autoPad === "SAME_UPPER" ? Math.floor(t / 2) : t - Math.floor(t / 2)));
    } else {
      const pads = attrInts(node, "pads", new Array(2 * n).fill(0));
      begin = pads.slice(0, n);
      out = full.map((f, i) => f - pads[i]! - pads[i + n]!);
    }
    const xv = x.toFloat64();
    const wv = w.toFloat64();
    const outSize = sizeOf(out);
    const inSize = sizeOf(spatial);
    const kSize = sizeOf(kernel);
    const y = new Float64Array(N * Cout * outSize);
    const iAt = new Array<number>(n).fill(0);
    const kAt = new Array<number>(n).fill(0);
    for (let b = 0; b < N; b++)
      for (let ci = 0; ci < Cin; ci++) {
        const g = Math.floor(ci / Cig);
        iAt.fill(0);
        for (let p = 0; p < inSize; p++) {
          const val = xv[(b * Cin + ci) * inSize + p]!;
          kAt.fill(0);
          for (let k = 0; k < kSize; k++) {
            let o = 0;
            let inside = true;
            for (let a = 0; a < n; a++) {
              const pos = iAt[a]! * strides[a]! + kAt[a]! * dilations[a]! - begin[a]!;
              if (pos < 0 || pos >= out[a]!) inside = false;
              o = o * out[a]! + pos;
            }
            if (inside)
              for (let oc = 0; oc < Cog; oc++)
                y[(b * Cout + g * Cog + oc) * outSize + o] += val * wv[(ci * Cog + oc) * kSize + k]!;
            for (let a = n - 1; a >= 0; a--) {
              if (++kAt[a]! < kernel[a]!) break;
              kAt[a] = 0;
            }
          }
          for (let a = n - 1; a >= 0; a--) {
            if (++iAt[a]! < spatial[a]!) break;
            iAt[a] = 0;
          }
        }
      }
    if (bias)
      for (let b = 0; b < N; b++)
        for (let c = 0; c < Cout; c++)
          for (let p = 0; p < outSize; p++) y[(b * Cout + c) * outSize + p] += bias[c]!;
    return [tensorFromFloat64(x.type, y, [N, Cout, ...out])];
  },
};

registerOps([ConvTranspose]);
