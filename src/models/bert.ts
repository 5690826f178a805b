import { OptionError } from "../errors.js";
import { GraphBuilder } from "../ir/builder.js";
import type { Graph } from "../ir/graph.js";
import { Tensor } from "../ir/tensor.js";
import { randomFloat32, seededRandom } from "./random.js";

export interface BertConfig {
  layers: number;
  hidden: number;
  heads: number;
  /** Feed-forward (intermediate) size. */
  ffn: number;
  vocab: number;
  maxPositions: number;
  typeVocab: number;
  seed: number;
}

export const BERT_TINY: BertConfig = {
  layers: 2,
  hidden: 128,
  heads: 4,
  ffn: 512,
  vocab: 1000,
  maxPositions: 512,
  typeVocab: 2,
  seed: 1,
};

export const BERT_BASE: BertConfig = {
  layers: 12,
  hidden: 768,
  heads: 12,
  ffn: 3072,
  vocab: 30522,
  maxPositions: 512,
  typeVocab: 2,
  seed: 1,
};

/** float32 finfo.min, what HF eager uses for masked positions. */
const FLOAT32_MIN = -3.4028234663852886e38;

/**
 * A BertModel with random weights, written with the node pattern of a PyTorch eager (TorchScript) export:
 * MatMul+Add projections, Reshape/Transpose to heads, MatMul(Q,Kᵀ) → Mul(1/√H) → Add(mask bias) → Softmax →
 * MatMul(V), erf-GELU spelled out, LayerNormalization. Inputs input_ids, attention_mask, token_type_ids
 * ([batch, seq] int64); output last_hidden_state [batch, seq, hidden].
 */
export function buildBertGraph(config: Partial<BertConfig> = {}): Graph {
  const c: BertConfig = { ...BERT_TINY, ...config };
  if (c.hidden % c.heads !== 0)
    throw new OptionError(`hidden (${c.hidden}) must be divisible by heads (${c.heads})`);
  const headSize = c.hidden / c.heads;
  const rand = seededRandom(c.seed);
  const b = new GraphBuilder({ name: "bert", opset: 17 });
  const weight = (name: string, dims: number[], scale = 0.05) =>
    b.init(
      new Tensor(
        "float32",
        randomFloat32(
          dims.reduce((x, y) => x * y, 1),
          scale,
          rand,
        ),
        dims,
      ),
      name,
    );
  const filled = (name: string, n: number, value: number) =>
    b.init(new Tensor("float32", new Float32Array(n).fill(value), [n]), name);

  const ids = b.input("input_ids", "int64", ["batch", "seq"]);
  const mask = b.input("attention_mask", "int64", ["batch", "seq"]);
  const types = b.input("token_type_ids", "int64", ["batch", "seq"]);

  // Embeddings: word + token type + position (positions sliced from a [1, maxPositions] buffer).
  const positionIds = b.init(
    new Tensor(
      "int64",
      BigInt64Array.from({ length: c.maxPositions }, (_, i) => BigInt(i)),
      [1, c.maxPositions],
    ),
    "embeddings.position_ids",
  );
  const seqLen = b.op("Gather", [b.op("Shape", [ids]), b.const("int64", 1)], { axis: 0 });
  const positions = b.op("Slice", [
    positionIds,
    b.const("int64", [0]),
    b.op("Unsqueeze", [seqLen, b.const("int64", [0])]),
    b.const("int64", [1]),
  ]);
  let x = b.op("Add", [
    b.op("Add", [
      b.op("Gather", [weight("embeddings.word_embeddings.weight", [c.vocab, c.hidden]), ids]),
      b.op("Gather", [weight("embeddings.token_type_embeddings.weight", [c.typeVocab, c.hidden]), types]),
    ]),
    b.op("Gather", [weight("embeddings.position_embeddings.weight", [c.maxPositions, c.hidden]), positions]),
  ]);
  const layerNorm = (input: string, prefix: string) =>
    b.op(
      "LayerNormalization",
      [input, filled(`${prefix}.weight`, c.hidden, 1), filled(`${prefix}.bias`, c.hidden, 0)],
      {
        axis: -1,
        epsilon: 1e-12,
      },
    );
  x = layerNorm(x, "embeddings.LayerNorm");

  // Extended attention mask: (1 - mask[:, None, None, :]) * finfo.min.
  const maskFloat = b.op("Cast", [b.op("Unsqueeze", [mask, b.const("int64", [1, 2])])], { to: 1 });
  const maskBias = b.op("Mul", [
    b.op("Sub", [b.const("float32", 1), maskFloat]),
    b.const("float32", FLOAT32_MIN),
  ]);

  const linear = (input: string, prefix: string, inDim: number, outDim: number) =>
    b.op("Add", [
      filled(`${prefix}.bias`, outDim, 0.01),
      b.op("MatMul", [input, weight(`${prefix}.weight`, [inDim, outDim])]),
    ]);
  const headsShape = b.const("int64", [0, 0, c.heads, headSize]);
  const mergedShape = b.const("int64", [0, 0, c.hidden]);
  const scale = b.const("float32", 1 / Math.sqrt(headSize));

  for (let l = 0; l < c.layers; l++) {
    const p = `encoder.layer.${l}`;
    const toHeads = (t: string, perm: number[]) =>
      b.op("Transpose", [b.op("Reshape", [t, headsShape])], { perm });
    const q = toHeads(linear(x, `${p}.attention.self.query`, c.hidden, c.hidden), [0, 2, 1, 3]);
    const k = toHeads(linear(x, `${p}.attention.self.key`, c.hidden, c.hidden), [0, 2, 3, 1]);
    const v = toHeads(linear(x, `${p}.attention.self.value`, c.hidden, c.hidden), [0, 2, 1, 3]);
    const scores = b.op("Add", [b.op("Mul", [b.op("MatMul", [q, k]), scale]), maskBias]);
    const probs = b.op("Softmax", [scores], { axis: -1 });
    const context = b.op("Reshape", [
      b.op("Transpose", [b.op("MatMul", [probs, v])], { perm: [0, 2, 1, 3] }),
      mergedShape,
    ]);
    const attnOut = linear(context, `${p}.attention.output.dense`, c.hidden, c.hidden);
    x = layerNorm(b.op("Add", [attnOut, x]), `${p}.attention.output.LayerNorm`);

    // GELU as the exporter spells it: x * (erf(x / √2) + 1) * 0.5
    const h = linear(x, `${p}.intermediate.dense`, c.hidden, c.ffn);
    const erf = b.op("Erf", [b.op("Div", [h, b.const("float32", Math.SQRT2)])]);
    const gelu = b.op("Mul", [
      b.op("Mul", [h, b.op("Add", [erf, b.const("float32", 1)])]),
      b.const("float32", 0.5),
    ]);
    const ffnOut = linear(gelu, `${p}.output.dense`, c.ffn, c.hidden);
    x = layerNorm(b.op("Add", [ffnOut, x]), `${p}.output.LayerNorm`);
  }
  const out = b.op("Identity", [x], {}, { outputs: ["last_hidden_state"] });
  b.output(out, "float32", ["batch", "seq", c.hidden]);
  return b.build();
}

/** Inputs for a BERT graph: random token ids, right-padded masks with the given valid lengths. */
export function bertInputs(
  lengths: number[],
  seq: number,
  vocab: number,
  seed = 7,
): { input_ids: Tensor; attention_mask: Tensor; token_type_ids: Tensor } {
  const rand = seededRandom(seed);
  const batch = lengths.length;
  const ids = new BigInt64Array(batch * seq);
  const mask = new BigInt64Array(batch * seq);
  for (let bi = 0; bi < batch; bi++) {
    for (let s = 0; s < seq; s++) {
      ids[bi * seq + s] = BigInt(Math.floor(rand() * vocab));
      mask[bi * seq + s] = s < lengths[bi]! ? 1n : 0n;
    }
  }
  return {
    input_ids: new Tensor("int64", ids, [batch, seq]),
    attention_mask: new Tensor("int64", mask, [batch, seq]),
    token_type_ids: new Tensor("int64", new BigInt64Array(batch * seq), [batch, seq]),
  };
}
