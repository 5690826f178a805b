/**
 * Weight packing for the packed-QKV op. TensorRT's bertQKVToContext reads, per token, the 3E axis as
 * [N, 3, H] — head n's q, k and v next to each other — so the fused projection weight is NOT the plain
 * concatenation [Wq^T | Wk^T | Wv^T]. With nn.Linear weights W_t of layout [out = E, in]:
 *
 *   packed[e_in, n, t, h] = W_t[n·H + h, e_in]     (weight [E_in, 3E], t = 0 q, 1 k, 2 v)
 *   bias[n, t, h]         = b_t[n·H + h]           (bias [3E])
 *
 * and then `x [S, B, E_in] @ weight + bias`, reshaped to [S, B, 3E, 1, 1], is exactly the op's input.
 */
import { InputError } from "../errors.js";
import { allocate, type DType } from "../ir/dtype.js";
import { Tensor } from "../ir/tensor.js";

export interface SeparateQkvWeights {
  /** nn.Linear layout [out = E, in = E_in]. (An ONNX MatMul initializer is [in, out]: transpose it first.) */
  wq: Tensor;
  wk: Tensor;
  wv: Tensor;
  bq?: Tensor;
  bk?: Tensor;
  bv?: Tensor;
}

export interface PackedQkvWeights {
  /** [E_in, 3E], per output column block [N, 3, H]. */
  weight: Tensor;
  /** [3E], laid out [N, 3, H]; zeros for projections without a bias. */
  bias: Tensor;
}

export interface PackOptions {
  numHeads: number;
}

const fail = (fn: string, message: string): never => {
  throw new InputError(`${fn}: ${message}`);
};

function headSizeOf(fn: string, E: number, numHeads: number): number {
  if (!Number.isInteger(numHeads) || numHeads < 1)
    fail(fn, `numHeads must be a positive integer, got ${numHeads}`);
  if (E % numHeads !== 0) fail(fn, `E = ${E} is not divisible by numHeads = ${numHeads}`);
  return E / numHeads;
}

function checkFloat(fn: string, name: string, t: Tensor): void {
  if (t.type !== "float32" && t.type !== "float16" && t.type !== "float64")
    fail(fn, `${name} must be a float tensor, got ${t.type}`);
}

/** Packs separate nn.Linear Q/K/V weights (and biases) into the interleaved layout the packed op reads. */
export function packQkvWeights(w: SeparateQkvWeights, opts: PackOptions): PackedQkvWeights {
  const fn = "packQkvWeights";
  const ws = [w.wq, w.wk, w.wv];
  ws.forEach((t, i) => {
    checkFloat(fn, ["wq", "wk", "wv"][i]!, t);
    if (t.dims.length !== 2)
      fail(fn, `${["wq", "wk", "wv"][i]} must be 2-D [out = E, in], got shape [${t.dims}]`);
  });
  const [E, Ein] = w.wq.dims as [number, number];
  const type = w.wq.type;
  ws.forEach((t, i) => {
    if (t.dims[0] !== E || t.dims[1] !== Ein)
      fail(
        fn,
        `wq is [${E}, ${Ein}] but ${["wq", "wk", "wv"][i]} is [${t.dims}]: Q, K and V projections must have the same ` +
          `shape for the packed op (different sizes mean cross-attention or GQA: use mhafuse.Attention instead)`,
      );
    if (t.type !== type) fail(fn, `wq is ${type} but ${["wq", "wk", "wv"][i]} is ${t.type}`);
  });
  const H = headSizeOf(fn, E, opts.numHeads);
  const weight = allocate(type, Ein * 3 * E);
  for (let t = 0; t < 3; t++) {
    const src = ws[t]!.data;
    for (let n = 0; n < opts.numHeads; n++)
      for (let h = 0; h < H; h++) {
        const row = (n * H + h) * Ein;
        const col = n * 3 * H + t * H + h;
        for (let i = 0; i < Ein; i++) weight[i * 3 * E + col] = src[row + i]!;
      }
  }
  const bias = allocate(type, 3 * E);
  [w.bq, w.bk, w.bv].forEach((b, t) => {
    if (!b) return;
    const name = ["bq", "bk", "bv"][t]!;
    if (b.size !== E || b.dims.length !== 1) fail(fn, `${name} must be [E] = [${E}], got shape [${b.dims}]`);
    if (b.type !== type) fail(fn, `${name} is ${b.type} but the weights are ${type}`);
    for (let n = 0; n < opts.numHeads; n++)
      for (let h = 0; h < H; h++) bias[n * 3 * H + t * H + h] = b.data[n * H + h]!;
  });
  return { weight: new Tensor(type, weight, [Ein, 3 * E]), bias: new Tensor(type, bias, [3 * E]) };
}

/** The inverse of packQkvWeights: nn.Linear weights [E, E_in] and biases [E] from a packed [E_in, 3E] weight. */
export function unpackQkvWeights(
  packed: { weight: Tensor; bias?: Tensor },
  opts: PackOptions,
): Required<SeparateQkvWeights> {
  const fn = "unpackQkvWeights";
  const { weight } = packed;
  checkFloat(fn, "weight", weight);
  if (weight.dims.length !== 2 || weight.dims[1]! % 3 !== 0)
    fail(fn, `weight must be [E_in, 3E], got shape [${weight.dims}]`);
  const [Ein, threeE] = weight.dims as [number, number];
  const E = threeE / 3;
  const H = headSizeOf(fn, E, opts.numHeads);
  const type: DType = weight.type;
  const out = [0, 1, 2].map(() => allocate(type, E * Ein));
  for (let t = 0; t < 3; t++)
    for (let n = 0; n < opts.numHeads; n++)
      for (let h = 0; h < H; h++) {
        const row = (n * H + h) * Ein;
        const col = n * 3 * H + t * H + h;
        for (let i = 0; i < Ein; i++) out[t]![row + i] = weight.data[i * threeE + col]!;
      }
  const biases = [0, 1, 2].map(() => allocate(type, E));
  if (packed.bias) {
    if (packed.bias.size !== threeE)
      fail(fn, `bias must be [3E] = [${threeE}], got shape [${packed.bias.dims}]`);
    for (let t = 0; t < 3; t++)
      for (let n = 0; n < opts.numHeads; n++)
        for (let h = 0; h < H; h++) biases[t]![n * H + h] = packed.bias.data[n * 3 * H + t * H + h]!;
  }
  const w = (i: number) => new Tensor(type, out[i]!, [E, Ein]);
  const b = (i: number) => new Tensor(type, biases[i]!, [E]);
  return { wq: w(0), wk: w(1), wv: w(2), bq: b(0), bk: b(1), bv: b(2) };
}

/**
 * Fixes the common mistake: a weight built as the plain concatenation [Wq^T | Wk^T | Wv^T] ([E_in, 3E], all Q
 * heads, then all K, then all V) — or a bias [bq | bk | bv] of shape [3E] — rearranged into the interleaved
 * [N, 3, H] layout the packed op reads.
 */
export function concatToInterleaved(concatenated: Tensor, opts: PackOptions): Tensor {
  const fn = "concatToInterleaved";
  checkFloat(fn, "the tensor", concatenated);
  const dims = concatenated.dims;
  if (dims.length !== 1 && dims.length !== 2)
    fail(fn, `expected a weight [E_in, 3E] or a bias [3E], got shape [${dims}]`);
  const threeE = dims[dims.length - 1]!;
  if (threeE % 3 !== 0) fail(fn, `the last axis must be 3E (Q | K | V), got ${threeE}`);
  const E = threeE / 3;
  const H = headSizeOf(fn, E, opts.numHeads);
  const rows = dims.length === 2 ? dims[0]! : 1;
  const src = concatenated.data;
  const out = allocate(concatenated.type, src.length);
  for (let r = 0; r < rows; r++)
    for (let t = 0; t < 3; t++)
      for (let n = 0; n < opts.numHeads; n++)
        for (let h = 0; h < H; h++)
          out[r * threeE + n * 3 * H + t * H + h] = src[r * threeE + t * E + n * H + h]!;
  return new Tensor(concatenated.type, out, dims);
}
