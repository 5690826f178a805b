/**
 * Finds the Q, K and V projections of every self-attention block in an exported transformer graph, for
 * `mhafuse pack-weights --from-model`. Dataflow, not names: from each Softmax, walk back to the score MatMul
 * (Q · Kᵀ) and forward to the context MatMul (probs · V), then back from their operands through
 * Reshape/Transpose/scaling to `MatMul(x, W) (+ b)` with W an initializer.
 *
 * ONNX exports store an nn.Linear as MatMul with the weight [in, out] = Wᵀ; we return nn.Linear layout
 * [out, in] (transposed back) so the result feeds packQkvWeights directly.
 */
import type { Graph, Node } from "../ir/graph.js";
import { consumers, producers } from "../ir/graph.js";
import { Tensor } from "../ir/tensor.js";
import type { SeparateQkvWeights } from "./qkv-weights.js";

export interface FoundAttention {
  softmax: string;
  /** Name of the Q projection's MatMul node, to tell layers apart in messages. */
  queryNode: string;
  weights: SeparateQkvWeights;
  /** Heads read from the constant target shape of the Q Reshape, when it is constant. */
  numHeads?: number;
}

/** Ops a projection output flows through on its way to the attention MatMuls. */
const PASS_THROUGH = new Set([
  "Reshape",
  "Transpose",
  "Mul",
  "Div",
  "Cast",
  "Identity",
  "Squeeze",
  "Unsqueeze",
  "Dropout",
]);
/** Ops between the score MatMul and the Softmax (scale, mask bias, masking Where). */
const SCORE_PATH = new Set(["Add", "Mul", "Div", "Where", "Cast", "Sub", "Identity"]);

interface Projection {
  matmul: Node;
  weight: Tensor;
  bias?: Tensor;
  reshape?: Node;
}

function transpose2d(t: Tensor): Tensor {
  const [r, c] = t.dims as [number, number];
  const out = new Float32Array(r * c);
  const src = t.toFloat64();
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = src[i * c + j]!;
  return new Tensor("float32", out, [c, r]);
}

export function findQkvProjections(graph: Graph): FoundAttention[] {
  const prod = producers(graph);
  const cons = consumers(graph);
  const init = graph.initializers;
  const constant = (name: string): Tensor | undefined => {
    const t = init.get(name);
    if (t) return t;
    const p = prod.get(name);
    if (p?.opType === "Constant" && p.attrs.value?.type === "tensor") return p.attrs.value.value;
    // The TorchScript exporter shares equal initializers through Identity nodes.
    if (p?.opType === "Identity" && p.inputs[0]) return constant(p.inputs[0]);
    return undefined;
  };
  const isConst = (name: string) => constant(name) !== undefined;

  /** From a value, walk back to `MatMul(x, W)` (+ bias) through pass-through ops. */
  const projectionOf = (value: string): Projection | undefined => {
    let reshape: Node | undefined;
    let bias: Tensor | undefined;
    for (let depth = 0, v = value; depth < 12; depth++) {
      const n = prod.get(v);
      if (!n) return undefined;
      if (n.opType === "MatMul") {
        const w = constant(n.inputs[1]!);
        if (w?.dims.length !== 2) return undefined;
        return { matmul: n, weight: w, bias, reshape };
      }
      if (n.opType === "Add") {
        const [a, b] = n.inputs as [string, string];
        const biasName = isConst(a) ? a : isConst(b) ? b : undefined;
        const other = biasName === a ? b : a;
        if (biasName === undefined || prod.get(other)?.opType !== "MatMul") return undefined;
        bias = constant(biasName);
        v = other;
        continue;
      }
      if (!PASS_THROUGH.has(n.opType)) return undefined;
      if (n.opType === "Reshape" && !reshape) reshape = n;
      v = n.inputs.find((i) => i && !isConst(i)) ?? n.inputs[0]!;
    }
    return undefined;
  };

  /** Heads from the Q Reshape's target [B, S, N, H]: N itself, or E / H when N is written as -1 (HF's view). */
  const headsOf = (reshape: Node | undefined, E: number): number | undefined => {
    if (!reshape) return undefined;
    const shapeName = reshape.inputs[1]!;
    let n: number | undefined;
    let h: number | undefined;
    const shape = constant(shapeName);
    if (shape && shape.size === 4) [n, h] = [shape.getNumber(2), shape.getNumber(3)];
    const concat = prod.get(shapeName);
    if (concat?.opType === "Concat" && concat.inputs.length === 4) {
      const [cn, ch] = [constant(concat.inputs[2]!), constant(concat.inputs[3]!)];
      n = cn?.size === 1 ? cn.getNumber(0) : undefined;
      h = ch?.size === 1 ? ch.getNumber(0) : undefined;
    }
    if (n !== undefined && n > 0) return n;
    if (h !== undefined && h > 0 && E % h === 0) return E / h;
    return undefined;
  };

  const found: FoundAttention[] = [];
  for (const softmax of graph.nodes.filter((n) => n.opType === "Softmax")) {
    // Back to the score MatMul.
    let score: Node | undefined;
    const queue = [softmax.inputs[0]!];
    for (let steps = 0; queue.length && steps < 16 && !score; steps++) {
      const n = prod.get(queue.shift()!);
      if (!n) continue;
      if (n.opType === "MatMul") score = n;
      else if (SCORE_PATH.has(n.opType)) queue.push(...n.inputs.filter((i) => i && !isConst(i)));
    }
    // Forward to the context MatMul (possibly through an IsNaN/Where guard or Cast).
    let context: Node | undefined;
    const fwd = [softmax.outputs[0]!];
    for (let steps = 0; fwd.length && steps < 16 && !context; steps++) {
      const v = fwd.shift()!;
      for (const c of cons.get(v) ?? []) {
        if (c.opType === "MatMul" && c.inputs[0] === v) context = c;
        else if (["Where", "Cast", "Dropout", "Identity"].includes(c.opType)) fwd.push(c.outputs[0]!);
      }
    }
    if (!score || !context) continue;
    const q = projectionOf(score.inputs[0]!);
    const k = projectionOf(score.inputs[1]!);
    const v = projectionOf(context.inputs[1]!);
    if (!q || !k || !v) continue;
    // Same input for all three: self-attention (cross-attention cannot be packed).
    if (q.matmul.inputs[0] !== k.matmul.inputs[0] || q.matmul.inputs[0] !== v.matmul.inputs[0]) continue;
    found.push({
      softmax: softmax.name,
      queryNode: q.matmul.name,
      numHeads: headsOf(q.reshape, q.weight.dims[1]!),
      weights: {
        wq: transpose2d(q.weight),
        wk: transpose2d(k.weight),
        wv: transpose2d(v.weight),
        bq:
          q.bias?.type === "float32"
            ? q.bias
            : q.bias && new Tensor("float32", q.bias.toNumbers(), q.bias.dims),
        bk:
          k.bias?.type === "float32"
            ? k.bias
            : k.bias && new Tensor("float32", k.bias.toNumbers(), k.bias.dims),
        bv:
          v.bias?.type === "float32"
            ? v.bias
            : v.bias && new Tensor("float32", v.bias.toNumbers(), v.bias.dims),
      },
    });
  }
  return found;
}
