import { readFileSync, writeFileSync } from "node:fs";
import type { Command } from "commander";
import { InputError } from "../../errors.js";
import { readNpy, writeNpy } from "../../io/npy.js";
import { readNpz, writeNpz } from "../../io/npz.js";
import { allocate } from "../../ir/dtype.js";
import { Tensor } from "../../ir/tensor.js";
import { loadModel } from "../../onnx/index.js";
import { findQkvProjections } from "../../packing/from-model.js";
import { type PackedQkvWeights, packQkvWeights } from "../../packing/qkv-weights.js";

interface PackWeightsOptions {
  wq?: string;
  wk?: string;
  wv?: string;
  bq?: string;
  bk?: string;
  bv?: string;
  heads?: string;
  output: string;
  fromModel?: string;
  transposed?: boolean;
}

/** One array from a .npy, or the only array of an .npz. */
function readArray(path: string): Tensor {
  const bytes = readFileSync(path);
  if (!path.endsWith(".npz")) return readNpy(bytes, path);
  const arrays = [...readNpz(bytes, path).values()];
  if (arrays.length !== 1) throw new InputError(`${path}: expected one array, found ${arrays.length}`);
  return arrays[0]!;
}

/** [in, out] → [out, in], keeping the dtype (raw elements are moved, float16 bits included). */
function transpose(t: Tensor): Tensor {
  if (t.dims.length !== 2) throw new InputError(`--transposed weights must be 2-D, got shape [${t.dims}]`);
  const [r, c] = t.dims as [number, number];
  const out = allocate(t.type, r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j]!;
  return new Tensor(t.type, out, [c, r]);
}

function parseHeads(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new InputError(`--heads must be a positive integer, got '${value}'`);
  return n;
}

/** Writes {weight, bias} per layer: .npz holds `<layer>weight`/`<layer>bias`; .npy holds one layer's weight (+ _bias.npy). */
function writePacked(path: string, layers: [string, PackedQkvWeights][]): string[] {
  if (path.endsWith(".npz")) {
    const arrays = new Map<string, Tensor>();
    for (const [prefix, p] of layers) {
      arrays.set(`${prefix}weight`, p.weight);
      arrays.set(`${prefix}bias`, p.bias);
    }
    writeFileSync(path, writeNpz(arrays));
    return [path];
  }
  if (!path.endsWith(".npy")) throw new InputError(`-o must end in .npz or .npy, got '${path}'`);
  if (layers.length !== 1)
    throw new InputError(
      `the model has ${layers.length} attention layers: write them to an .npz (-o packed.npz)`,
    );
  const biasPath = path.replace(/\.npy$/, "_bias.npy");
  writeFileSync(path, writeNpy(layers[0]![1].weight));
  writeFileSync(biasPath, writeNpy(layers[0]![1].bias));
  return [path, biasPath];
}

async function packWeights(opts: PackWeightsOptions): Promise<void> {
  const heads = parseHeads(opts.heads);
  if (opts.fromModel) {
    const model = await loadModel(opts.fromModel);
    const found = findQkvProjections(model.graph);
    if (found.length === 0)
      throw new InputError(
        `${opts.fromModel}: found no self-attention block (Softmax between MatMul(Q, Kᵀ) and MatMul(·, V) with ` +
          "Q/K/V projections from one input); export separate wq/wk/wv .npy files instead",
      );
    const layers = found.map((f, i): [string, PackedQkvWeights] => {
      const numHeads = heads ?? f.numHeads;
      if (!numHeads)
        throw new InputError(`cannot tell the number of heads of ${f.queryNode}: pass --heads N`);
      return [`layer${i}.`, packQkvWeights(f.weights, { numHeads })];
    });
    const written = writePacked(opts.output, layers);
    found.forEach((f, i) => {
      const w = layers[i]![1].weight;
      process.stdout.write(
        `layer${i}: ${f.queryNode} → weight [${w.dims}], bias [${layers[i]![1].bias.dims}]\n`,
      );
    });
    process.stdout.write(`wrote ${written.join(", ")}\n`);
    return;
  }
  if (!opts.wq || !opts.wk || !opts.wv)
    throw new InputError("give --wq, --wk and --wv (or --from-model MODEL.onnx)");
  if (!heads) throw new InputError("--heads N is required with --wq/--wk/--wv");
  const load = (p: string | undefined, isWeight: boolean) => {
    if (!p) return undefined;
    const t = readArray(p);
    return isWeight && opts.transposed ? transpose(t) : t;
  };
  const packed = packQkvWeights(
    {
      wq: load(opts.wq, true)!,
      wk: load(opts.wk, true)!,
      wv: load(opts.wv, true)!,
      bq: load(opts.bq, false),
      bk: load(opts.bk, false),
      bv: load(opts.bv, false),
    },
    { numHeads: heads },
  );
  const written = writePacked(opts.output, [["", packed]]);
  process.stdout.write(
    `packed weight [${packed.weight.dims}], bias [${packed.bias.dims}] → ${written.join(", ")}\n`,
  );
}

export function registerPackWeights(program: Command): void {
  program
    .command("pack-weights")
    .description(
      "pack separate Q/K/V projection weights into the interleaved [E, 3E] layout of the packed QKV op " +
        "(per output block [N, 3, H]); x @ weight + bias is then the op's input",
    )
    .option("--wq <file>", "query weight .npy, nn.Linear layout [out, in]")
    .option("--wk <file>", "key weight .npy")
    .option("--wv <file>", "value weight .npy")
    .option("--bq <file>", "query bias .npy [E]")
    .option("--bk <file>", "key bias .npy [E]")
    .option("--bv <file>", "value bias .npy [E]")
    .option(
      "--transposed",
      "weights are [in, out] (ONNX MatMul / x @ W layout) instead of nn.Linear [out, in]",
    )
    .option("--heads <n>", "number of attention heads")
    .option(
      "--from-model <model.onnx>",
      "find each self-attention layer's Q/K/V MatMul+Add weights in an ONNX model",
    )
    .requiredOption(
      "-o, --output <file>",
      "packed.npz (weight, bias; layerN.weight/bias with --from-model) or .npy",
    )
    .action(packWeights);
}
