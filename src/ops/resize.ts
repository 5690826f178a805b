/**
 * Resize (opsets 10–19 without antialias / axes / keep_aspect_ratio_policy) and Upsample (7, 9), written from
 * ONNX's reference (onnx/backend/test/case/node/resize.py): separable interpolation, per axis a coordinate
 * transform (half_pixel, pytorch_half_pixel, align_corners, asymmetric, tf_half_pixel_for_nn,
 * tf_crop_and_resize with roi and extrapolation_value) and the taps of nearest (4 rounding modes), linear or
 * cubic (cubic_coeff_a, exclude_outside) among the edge-padded input. Resize-10 and Upsample are the asymmetric,
 * nearest-floor form they were defined with.
 */
import { OpError } from "../errors.js";
import type { Dim, Node } from "../ir/graph.js";
import { sizeOf, type Tensor } from "../ir/tensor.js";
import { requireInput } from "./elementwise-util.js";
import { tensorFromFloat64 } from "./float-data.js";
import { attrFloat, attrFloats, attrInt, attrString, type OpDef, registerOps } from "./registry.js";

interface ResizeMode {
  mode: string;
  transform: string;
  nearest: string;
  cubicA: number;
  excludeOutside: boolean;
  extrapolation: number;
}

/** The taps (input indices and weights) of one output coordinate on one axis; undefined = extrapolate. */
function taps(
  m: ResizeMode,
  length: number,
  scale: number,
  x: number,
  roi: [number, number] | undefined,
): { index: number[]; weight: number[] } | undefined {
  const outLength = scale * length;
  let xo: number;
  switch (m.transform) {
    case "align_corners":
      xo = outLength === 1 ? 0 : (x * (length - 1)) / (outLength - 1);
      break;
    case "asymmetric":
      xo = x / scale;
      break;
    case "tf_half_pixel_for_nn":
      xo = (x + 0.5) / scale;
      break;
    case "tf_crop_and_resize": {
      const [r0, r1] = roi ?? [0, 1];
      xo =
        outLength === 1 ? ((r1 - r0) * (length - 1)) / 2 : (x * (r1 - r0) * (length - 1)) / (outLength - 1);
      xo += r0 * (length - 1);
      if (xo < 0 || xo > length - 1) return undefined;
      break;
    }
    case "pytorch_half_pixel":
      xo = outLength === 1 ? -0.5 : (x + 0.5) / scale - 0.5;
      break;
    default:
      xo = (x + 0.5) / scale - 0.5;
  }
  const floor = Math.floor(xo);
  const ratio = Number.isInteger(xo) ? 1 : xo - floor;
  let weight: number[];
  if (m.mode === "nearest") {
    const integral = Number.isInteger(xo);
    const right =
      integral ||
      (m.nearest === "round_prefer_floor"
        ? ratio > 0.5
        : m.nearest === "round_prefer_ceil"
          ? ratio >= 0.5
          : m.nearest === "ceil");
    weight = right ? [0, 1] : [1, 0];
  } else if (m.mode === "linear") weight = [1 - ratio, ratio];
  else {
    const A = m.cubicA;
    const r = ratio;
    weight = [
      ((A * (r + 1) - 5 * A) * (r + 1) + 8 * A) * (r + 1) - 4 * A,
      ((A + 2) * r - (A + 3)) * r * r + 1,
      ((A + 2) * (1 - r) - (A + 3)) * (1 - r) * (1 - r) + 1,
      ((A * (1 - r + 1) - 5 * A) * (1 - r + 1) + 8 * A) * (1 - r + 1) - 4 * A,
    ];
  }
  // The n nearest indices to xo (ties to the smaller), in the input padded by ceil(n/2) on each side.
  const n = weight.length;
  const pad = Math.ceil(n / 2);
  const candidates: number[] = [];
  for (let i = floor - n; i <= floor + n + 1; i++) if (i >= -pad && i < length + pad) candidates.push(i);
  candidates.sort((a, b) => Math.abs(xo - a) - Math.abs(xo - b) || a - b);
  const raw = candidates.slice(0, n).sort((a, b) => a - b);
  if (m.excludeOutside) {
    weight = weight.map((w, i) => (raw[i]! < 0 || raw[i]! >= length ? 0 : w));
    const total = weight.reduce((a, b) => a + b, 0);
    weight = weight.map((w) => w / total);
  }
  return { index: raw.map((i) => Math.min(Math.max(i, 0), length - 1)), weight };
}

function interpolate(
  x: Tensor,
  scales: number[],
  outDims: number[],
  m: ResizeMode,
  roi?: number[],
): Float64Array {
  const rank = x.rank;
  const v = x.toFloat64();
  const perAxis = outDims.map((size, a) =>
    Array.from({ length: size }, (_, o) =>
      taps(m, x.dims[a]!, scales[a]!, o, roi ? [roi[a]!, roi[a + rank]!] : undefined),
    ),
  );
  const strides = x.dims.map((_, a) => sizeOf(x.dims.slice(a + 1)));
  const out = new Float64Array(sizeOf(outDims));
  const at = new Array<number>(rank).fill(0);
  for (let i = 0; i < out.length; i++) {
    const t = at.map((o, a) => perAxis[a]![o]);
    if (t.some((tap) => tap === undefined)) out[i] = m.extrapolation;
    else {
      // Tensor product of the per-axis taps.
      let acc = 0;
      const k = new Array<number>(rank).fill(0);
      const count = t.reduce((p, tap) => p * tap!.index.length, 1);
      for (let c = 0; c < count; c++) {
        let w = 1;
        let offset = 0;
        for (let a = 0; a < rank; a++) {
          w *= t[a]!.weight[k[a]!]!;
          offset += t[a]!.index[k[a]!]! * strides[a]!;
        }
        if (w !== 0) acc += w * v[offset]!;
        for (let a = rank - 1; a >= 0; a--) {
          if (++k[a]! < t[a]!.index.length) break;
          k[a] = 0;
        }
      }
      out[i] = acc;
    }
    for (let a = rank - 1; a >= 0; a--) {
      if (++at[a]! < outDims[a]!) break;
      at[a] = 0;
    }
  }
  return out;
}

function modeOf(node: Node, legacy: boolean): ResizeMode {
  const mode = attrString(node, "mode", "nearest");
  if (!["nearest", "linear", "cubic"].includes(mode)) throw new OpError(node, `unknown mode '${mode}'`);
  return {
    mode,
    transform: legacy ? "asymmetric" : attrString(node, "coordinate_transformation_mode", "half_pixel"),
    nearest: legacy ? "floor" : attrString(node, "nearest_mode", "round_prefer_floor"),
    cubicA: attrFloat(node, "cubic_coeff_a", -0.75),
    excludeOutside: attrInt(node, "exclude_outside", 0) !== 0,
    extrapolation: attrFloat(node, "extrapolation_value", 0),
  };
}

function resizeRun(
  node: Node,
  x: Tensor,
  m: ResizeMode,
  scalesIn: number[] | undefined,
  sizes: number[] | undefined,
  roi?: number[],
) {
  if (attrInt(node, "antialias", 0) !== 0 || node.attrs.axes || node.attrs.keep_aspect_ratio_policy)
    throw new OpError(node, "antialias, axes and keep_aspect_ratio_policy (opset 18) are not supported");
  let scales: number[];
  let outDims: number[];
  if (sizes && sizes.length > 0) {
    if (sizes.length !== x.rank) throw new OpError(node, `sizes needs ${x.rank} values, got ${sizes.length}`);
    outDims = sizes;
    scales = sizes.map((s, i) => s / x.dims[i]!);
  } else if (scalesIn && scalesIn.length > 0) {
    if (scalesIn.length !== x.rank)
      throw new OpError(node, `scales needs ${x.rank} values, got ${scalesIn.length}`);
    scales = scalesIn;
    outDims = x.dims.map((d, i) => Math.trunc(d * scales[i]!));
  } else throw new OpError(node, "one of scales and sizes is required");
  return tensorFromFloat64(x.type, interpolate(x, scales, outDims, m, roi), outDims);
}

const Resize: OpDef = {
  opType: "Resize",
  inferTypes(ctx) {
    const x = ctx.inputs[0];
    return [{ dtype: x?.dtype ?? "float32", shape: x?.shape?.map((): Dim => null) }];
  },
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    if (ctx.opset < 11)
      return [resizeRun(node, x, modeOf(node, true), requireInput(node, inputs, 1).toNumbers(), undefined)];
    const roi = inputs[1] && inputs[1].size > 0 ? inputs[1].toNumbers() : undefined;
    return [resizeRun(node, x, modeOf(node, false), inputs[2]?.toNumbers(), inputs[3]?.toNumbers(), roi)];
  },
};

const Upsample: OpDef = {
  opType: "Upsample",
  inferTypes: Resize.inferTypes,
  run(ctx, inputs) {
    const node = ctx.node;
    const x = requireInput(node, inputs, 0);
    const scales = ctx.opset < 9 ? attrFloats(node, "scales") : requireInput(node, inputs, 1).toNumbers();
    return [resizeRun(node, x, modeOf(node, true), scales, undefined)];
  },
};

export const resizeOps: readonly OpDef[] = [Resize, Upsample];
registerOps(resizeOps);
