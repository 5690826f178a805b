/**
 * Feeds for a model from its declared inputs, as trtexec / onnxruntime_perf_test make them: symbolic dims
 * resolved from `--shapes` (name:AxBxC) or the usual names (batch → 1, sequence → 128), token ids within the
 * vocabulary (the rows of the embedding table the ids index), attention masks of ones with optional random
 * right padding, zeros for token types, positions 0..S-1, uniform floats elsewhere. Seeded: reproducible.
 */
import { InputError } from "../errors.js";
import type { DType } from "../ir/dtype.js";
import type { Graph, ValueInfo } from "../ir/graph.js";
import { sizeOf, Tensor } from "../ir/tensor.js";
import { seededRandom } from "./random.js";

export interface FeedOptions {
  /** Concrete shapes by input name. */
  shapes?: Record<string, number[]>;
  /** Right-pad each sequence to a random length in [1, S] (attention masks). */
  randomPadding?: boolean;
  seed?: number;
}

/** Parses `input_ids:8x128,attention_mask:8x128` into shapes by name. */
export function parseShapes(spec: string): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const part of spec.split(",").filter(Boolean)) {
    const at = part.lastIndexOf(":");
    const dims = part
      .slice(at + 1)
      .split("x")
      .map(Number);
    if (at <= 0 || dims.some((d) => !Number.isInteger(d) || d < 0))
      throw new InputError(`--shapes: '${part}' is not NAME:AxBx… (non-negative integers)`);
    out[part.slice(0, at)] = dims;
  }
  return out;
}

/** Defaults for symbolic dims by name, first match wins: a KV cache starts empty. */
const DEFAULT_DIMS: [RegExp, number][] = [
  [/past/i, 0],
  [/batch/i, 1],
  [/seq|length|token/i, 128],
];

function shapeOf(input: ValueInfo, opts: FeedOptions): number[] {
  const given = opts.shapes?.[input.name];
  if (given) {
    if (input.shape && input.shape.length !== given.length)
      throw new InputError(
        `--shapes ${input.name}: rank ${given.length}, the model declares rank ${input.shape.length}`,
      );
    input.shape?.forEach((d, i) => {
      if (typeof d === "number" && d !== given[i])
        throw new InputError(`--shapes ${input.name}: dim ${i} is ${given[i]}, the model declares ${d}`);
    });
    return given;
  }
  if (!input.shape)
    throw new InputError(
      `input '${input.name}' has no declared shape: give it with --shapes ${input.name}:AxB…`,
    );
  return input.shape.map((d, i) => {
    if (typeof d === "number") return d;
    const rule = DEFAULT_DIMS.find(([re]) => re.test(d ?? ""));
    if (!rule)
      throw new InputError(
        `input '${input.name}' dim ${i} is '${d ?? "?"}': give its size with --shapes ${input.name}:${input.shape!.map((x) => (typeof x === "number" ? x : "N")).join("x")}`,
      );
    return rule[1];
  });
}

/** The vocabulary size of an ids input: rows of the initializer a Gather reads with it. */
function vocabularyOf(graph: Graph, name: string): number | undefined {
  for (const node of graph.nodes)
    if (node.opType === "Gather" && node.inputs[1] === name) {
      const table = graph.initializers.get(node.inputs[0]!);
      if (table) return table.dims[0];
    }
  return undefined;
}

function filled(dtype: DType, dims: number[], value: (i: number) => number): Tensor {
  return new Tensor(
    dtype,
    Array.from({ length: sizeOf(dims) }, (_, i) => value(i)),
    dims,
  );
}

export function randomFeeds(graph: Graph, opts: FeedOptions = {}): Record<string, Tensor> {
  const rand = seededRandom(opts.seed ?? 1);
  const feeds: Record<string, Tensor> = {};
  const dimsByName = new Map(graph.inputs.map((i) => [i.name, shapeOf(i, opts)]));
  // One length per batch row, shared by every mask so that padded positions agree across inputs.
  const maskInput = graph.inputs.find((i) => /mask/i.test(i.name));
  const maskDims = maskInput ? dimsByName.get(maskInput.name)! : undefined;
  const lengths =
    maskDims && maskDims.length >= 2
      ? Array.from({ length: maskDims[0]! }, () =>
          opts.randomPadding
            ? 1 + Math.floor(rand() * maskDims[maskDims.length - 1]!)
            : maskDims[maskDims.length - 1]!,
        )
      : undefined;
  for (const input of graph.inputs) {
    const dims = dimsByName.get(input.name)!;
    const dtype = input.dtype ?? "float32";
    const S = dims[dims.length - 1] ?? 1;
    const row = (i: number) => Math.floor(i / Math.max(S, 1));
    let t: Tensor;
    if (/mask/i.test(input.name))
      t = filled(dtype, dims, (i) => (lengths && i % S >= lengths[row(i) % lengths.length]! ? 0 : 1));
    else if (/token_type|segment/i.test(input.name)) t = filled(dtype, dims, () => 0);
    else if (/position/i.test(input.name)) t = filled(dtype, dims, (i) => i % S);
    else if (dtype === "int64" || dtype === "int32") {
      const vocab = vocabularyOf(graph, input.name) ?? 100;
      t = filled(dtype, dims, () => Math.floor(rand() * vocab));
    } else if (dtype === "bool") t = filled(dtype, dims, () => 1);
    else t = filled(dtype, dims, () => rand() * 2 - 1);
    feeds[input.name] = t;
  }
  return feeds;
}
