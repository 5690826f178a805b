import { Tensor } from "../../ir/tensor.js";
import { packQkvWeights } from "../../packing/index.js";

/** [in, out] ONNX MatMul weight → [out, in] nn.Linear layout, times `factor`, as float32. */
function toLinearLayout(w: Tensor, factor: number): Tensor<"float32"> {
  const [rows, cols] = w.dims as [number, number];
  const src = w.toFloat64();
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c]! * factor;
  return new Tensor("float32", out, [cols, rows]);
}

function scaled(b: Tensor | undefined, factor: number): Tensor<"float32"> | undefined {
  if (!b) return undefined;
  return new Tensor(
    "float32",
    Float32Array.from(b.toFloat64(), (x) => x * factor),
    [...b.dims],
  );
}

/**
 * Packs three ONNX MatMul projections (weights [E_in, E], the transpose of nn.Linear's [out, in]) with
 * `packQkvWeights` into the head-interleaved [E_in, 3E] weight and [3E] bias the packed-QKV op reads.
 * `qFactor` multiplies the Q part: the packed op always scales by 1/√H, so another scale is folded here.
 */
export function packProjectionWeights(
  w: [Tensor, Tensor, Tensor],
  b: [Tensor | undefined, Tensor | undefined, Tensor | undefined],
  numHeads: number,
  qFactor: number,
): { weight: Tensor; bias: Tensor } {
  return packQkvWeights(
    {
      wq: toLinearLayout(w[0], qFactor),
      wk: toLinearLayout(w[1], 1),
      wv: toLinearLayout(w[2], 1),
      bq: scaled(b[0], qFactor),
      bk: scaled(b[1], 1),
      bv: scaled(b[2], 1),
    },
    { numHeads },
  );
}

/** Columns [start, end) of a [rows, cols] weight, or entries [start, end) of a [cols] bias, as float32. */
export function columns(t: Tensor, start: number, end: number): Tensor<"float32"> {
  const src = t.toFloat64();
  if (t.rank === 1) return new Tensor("float32", Float32Array.from(src.subarray(start, end)), [end - start]);
  const [rows, cols] = t.dims as [number, number];
  const out = new Float32Array(rows * (end - start));
  for (let r = 0; r < rows; r++)
    for (let c = start; c < end; c++) out[r * (end - start) + c - start] = src[r * cols + c]!;
  return new Tensor("float32", out, [rows, end - start]);
}

/**
 * A head-interleaved [E_in, N·3·H] weight (or [N·3·H] bias) with each head's Q part multiplied by `factor`:
 * the packed op scales by 1/√H, so another scale is folded into Q here, the layout left as it is.
 */
export function scaleInterleavedQ(
  t: Tensor,
  numHeads: number,
  headSize: number,
  factor: number,
): Tensor<"float32"> {
  const src = t.toFloat64();
  const width = 3 * numHeads * headSize;
  const out = Float32Array.from(src);
  for (let i = 0; i < out.length; i++) if ((i % width) % (3 * headSize) < headSize) out[i] = src[i]! * factor;
  return new Tensor("float32", out, [...t.dims]);
}
