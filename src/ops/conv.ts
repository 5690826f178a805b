import { OpError } from "../errors.js";
import type { Dim, Node } from "../ir/graph.js";
import { sizeOf, stridesOf } from "../ir/tensor.js";
import { computeOf } from "./compute.js";
import { allocFloat, type FloatArray, float32Data, floatTensor, requireFloat } from "./float-data.js";
import { naiveMatmul } from "./matmul.js";
import { attrInt, attrInts, attrString, hasAttr, type OpDef, registerOps } from "./registry.js";

/** Per spatial axis: where the window starts (negative = padding) and how it moves. */
export interface ConvGeometry {
  kernel: number[];
  strides: number[];
  dilations: number[];
  padBegin: number[];
  padEnd: number[];
  out: number[];
}

/**
 * Resolves strides/dilations/pads/auto_pad into explicit per-axis padding and output sizes, per the ONNX
 * Conv spec: SAME_* pads so that out = ceil(in / stride), the odd pixel going to the end (UPPER) or the
 * beginning (LOWER); VALID pads nothing.
 */
export function convGeometry(node: Node, input: readonly number[], kernel: readonly number[]): ConvGeometry {
  const n = kernel.length;
  const strides = attrInts(node, "strides", new Array(n).fill(1));
  const dilations = attrInts(node, "dilations", new Array(n).fill(1));
  const autoPad = attrString(node, "auto_pad", "NOTSET");
  if (strides.length !== n || dilations.length !== n) {
    throw new OpError(node, `strides/dilations need ${n} values for a ${n}-D convolution`);
  }
  const padBegin = new Array<number>(n).fill(0);
  const padEnd = new Array<number>(n).fill(0);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const reach = dilations[i]! * (kernel[i]! - 1) + 1;
    if (autoPad === "SAME_UPPER" || autoPad === "SAME_LOWER") {
      out[i] = Math.ceil(input[i]! / strides[i]!);
      const total = Math.max(0, (out[i]! - 1) * strides[i]! + reach - input[i]!);
      const small = Math.floor(total / 2);
      padBegin[i] = autoPad === "SAME_UPPER" ? small : total - small;
      padEnd[i] = total - padBegin[i]!;
    } else if (autoPad === "VALID" || autoPad === "NOTSET") {
      if (autoPad === "NOTSET" && hasAttr(node, "pads")) {
        const pads = attrInts(node, "pads");
        if (pads.length !== 2 * n) throw new OpError(node, `pads needs ${2 * n} values, got ${pads.length}`);
        padBegin[i] = pads[i]!;
        padEnd[i] = pads[i + n]!;
      }
      out[i] = Math.floor((input[i]! + padBegin[i]! + padEnd[i]! - reach) / strides[i]!) + 1;
    } else {
      throw new OpError(node, `unknown auto_pad '${autoPad}'`);
    }
    if (out[i]! <= 0)
      throw new OpError(node, `kernel does not fit: output size ${out[i]} on spatial axis ${i}`);
  }
  return { kernel: [...kernel], strides, dilations, padBegin, padEnd, out };
}

/**
 * Unfolds one image's channel group into the im2col matrix: row (c, kernel offset), column output position,
 * value the input pixel under that tap (0 in padding). N-d: the spatial axes are walked with an odometer.
 */
function im2col(
  x: FloatArray,
  xOffset: number,
  channels: number,
  spatial: readonly number[],
  g: ConvGeometry,
  col: FloatArray,
): void {
  const n = spatial.length;
  const kSize = sizeOf(g.kernel);
  const outSize = sizeOf(g.out);
  const imageSize = sizeOf(spatial);
  const spatialStrides = stridesOf(spatial);
  const kIdx = new Array<number>(n).fill(0);
  const oIdx = new Array<number>(n).fill(0);
  const last = n - 1;
  for (let c = 0; c < channels; c++) {
    const plane = xOffset + c * imageSize;
    kIdx.fill(0);
    for (let k = 0; k < kSize; k++) {
      const row = (c * kSize + k) * outSize;
      oIdx.fill(0);
      // Iterate output rows (all axes but the last), then a tight loop along the last axis.
      for (let o = 0; o < outSize; o += g.out[last]!) {
        let base = plane;
        let inside = true;
        for (let d = 0; d < last; d++) {
          const pos = oIdx[d]! * g.strides[d]! - g.padBegin[d]! + kIdx[d]! * g.dilations[d]!;
          if (pos < 0 || pos >= spatial[d]!) inside = false;
          base += pos * spatialStrides[d]!;
        }
        const width = g.out[last]!;
        const stride = g.strides[last]!;
        const start = kIdx[last]! * g.dilations[last]! - g.padBegin[last]!;
        const limit = spatial[last]!;
        for (let w = 0; w < width; w++) {
          const pos = start + w * stride;
          col[row + o + w] = inside && pos >= 0 && pos < limit ? x[base + pos]! : 0;
        }
        for (let d = last - 1; d >= 0; d--) {
          if (++oIdx[d]! < g.out[d]!) break;
          oIdx[d] = 0;
        }
      }
      for (let d = last; d >= 0; d--) {
        if (++kIdx[d]! < g.kernel[d]!) break;
        kIdx[d] = 0;
      }
    }
  }
}

function convShape(node: Node, x: readonly Dim[], w: readonly Dim[]): Dim[] | undefined {
  if (x.length < 3 || w.length !== x.length) return undefined;
  const spatial = x.slice(2);
  const kernel = w.slice(2);
  if (!spatial.every((d) => typeof d === "number") || !kernel.every((d) => typeof d === "number")) {
    return [x[0]!, w[0]!, ...spatial.map(() => null)];
  }
  const g = convGeometry(node, spatial as number[], attrInts(node, "kernel_shape", kernel as number[]));
  return [x[0]!, w[0]!, ...g.out];
}

const Conv: OpDef = {
  opType: "Conv",
  inferTypes(ctx) {
    const [x, w] = ctx.inputs;
    const dtype = x?.dtype ?? "float32";
    const shape = x?.shape && w?.shape ? convShape(ctx.node, x.shape, w.shape) : undefined;
    return [shape ? { dtype, shape } : { dtype }];
  },
  run(ctx, [x, w, bias]) {
    const node = ctx.node;
    const compute = computeOf(ctx);
    if (!x || !w) throw new OpError(node, "Conv needs inputs X and W");
    requireFloat(node, x, "X");
    if (w.type !== x.type || (bias && bias.type !== x.type)) throw new OpError(node, "input types differ");
    if (x.rank < 3 || w.rank !== x.rank) {
      throw new OpError(node, `X [${x.dims}] and W [${w.dims}] must have the same rank ≥ 3`);
    }
    const group = attrInt(node, "group", 1);
    const [batch, channels] = [x.dims[0]!, x.dims[1]!];
    const spatial = x.dims.slice(2);
    const outChannels = w.dims[0]!;
    const kernel = w.dims.slice(2);
    if (hasAttr(node, "kernel_shape") && attrInts(node, "kernel_shape").join() !== kernel.join()) {
      throw new OpError(node, `kernel_shape [${attrInts(node, "kernel_shape")}] differs from W [${w.dims}]`);
    }
    if (channels % group !== 0 || outChannels % group !== 0 || w.dims[1]! * group !== channels) {
      throw new OpError(node, `channels ${channels} / W [${w.dims}] do not fit group=${group}`);
    }
    if (bias && (bias.rank !== 1 || bias.dims[0] !== outChannels)) {
      throw new OpError(node, `bias must be [${outChannels}], got [${bias.dims}]`);
    }
    const g = convGeometry(node, spatial, kernel);
    const groupChannels = channels / group;
    const groupOut = outChannels / group;
    const depth = groupChannels * sizeOf(kernel); // GEMM K: one im2col row per (channel, tap)
    const outSize = sizeOf(g.out);
    const imageSize = sizeOf(spatial);

    const wide = x.type === "float64";
    const X = wide ? (x.data as Float64Array) : float32Data(x);
    const W = wide ? (w.data as Float64Array) : float32Data(w);
    const Y = allocFloat(wide ? "float64" : "float32", batch * outChannels * outSize);
    const col = allocFloat(wide ? "float64" : "float32", depth * outSize);
    for (let n = 0; n < batch; n++) {
      for (let gi = 0; gi < group; gi++) {
        const xOffset = (n * channels + gi * groupChannels) * imageSize;
        im2col(X, xOffset, groupChannels, spatial, g, col);
        const wOffset = gi * groupOut * depth;
        const yOffset = (n * outChannels + gi * groupOut) * outSize;
        if (wide) {
          naiveMatmul(
            groupOut,
            outSize,
            depth,
            W as Float64Array,
            wOffset,
            col as Float64Array,
            0,
            Y as Float64Array,
            yOffset,
          );
        } else {
          const [Wf, colF, Yf] = [W as Float32Array, col as Float32Array, Y as Float32Array];
          compute.gemm([
            {
              transA: false,
              transB: false,
              M: groupOut,
              N: outSize,
              K: depth,
              alpha: 1,
              A: Wf,
              aOffset: wOffset,
              lda: depth,
              B: colF,
              bOffset: 0,
              ldb: outSize,
              beta: 0,
              C: Yf,
              cOffset: yOffset,
              ldc: outSize,
            },
          ]);
        }
      }
    }
    if (bias) {
      const b = bias.toFloat64();
      for (let n = 0; n < batch; n++) {
        for (let m = 0; m < outChannels; m++) {
          const start = (n * outChannels + m) * outSize;
          for (let i = start; i < start + outSize; i++) Y[i] = Y[i]! + b[m]!;
        }
      }
    }
    return [floatTensor(x.type, Y, [batch, outChannels, ...g.out])];
  },
};

export const convOps: readonly OpDef[] = [Conv];
registerOps(convOps);
