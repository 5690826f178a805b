import { writeFileSync } from "node:fs";
import type { Command, OptionValues } from "commander";
import { InferenceSession } from "../../engine/session.js";
import type { Tensor } from "../../ir/tensor.js";
import { BERT_TINY, type BertConfig, bertInputs, buildBertGraph } from "../../models/bert.js";
import { modelFromGraph, saveModel } from "../../onnx/index.js";
import { formatAttentionTable } from "../format.js";

function positiveInt(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} must be a positive integer, got '${v}'`);
    return n;
  };
}

/** Max |a − b| over the token rows the [B, S] mask marks valid (all rows without a mask). */
function maxAbsDiff(a: Tensor, b: Tensor, mask?: Tensor): number {
  const width = mask ? a.size / mask.size : 1;
  let m = 0;
  for (let i = 0; i < a.size; i++) {
    if (mask && mask.getNumber(Math.floor(i / width)) === 0) continue;
    m = Math.max(m, Math.abs(a.getNumber(i) - b.getNumber(i)));
  }
  return m;
}

async function timeRuns(session: InferenceSession, feeds: Record<string, Tensor>, repeats: number) {
  const out = await session.run(feeds); // warm-up: JIT and first allocations
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    await session.run(feeds);
    times.push(performance.now() - t0);
  }
  times.sort((x, y) => x - y);
  return { out, median: times[Math.floor(times.length / 2)]! };
}

export function registerDemo(program: Command): void {
  program
    .command("demo")
    .description(
      "build a small BERT-style model (random weights, PyTorch eager pattern), fuse its attention and run it",
    )
    .option("--layers <n>", "encoder layers", positiveInt("--layers"), BERT_TINY.layers)
    .option("--hidden <n>", "hidden size", positiveInt("--hidden"), BERT_TINY.hidden)
    .option("--heads <n>", "attention heads", positiveInt("--heads"), BERT_TINY.heads)
    .option("--ffn <n>", "feed-forward size", positiveInt("--ffn"), BERT_TINY.ffn)
    .option("--vocab <n>", "vocabulary size", positiveInt("--vocab"), BERT_TINY.vocab)
    .option("--batch <n>", "batch size", positiveInt("--batch"), 4)
    .option("--seq <n>", "sequence length", positiveInt("--seq"), 128)
    .option("--repeats <n>", "timed runs (median reported)", positiveInt("--repeats"), 5)
    .option("--save <file>", "also write the generated model as ONNX")
    .action(async (opts: OptionValues) => {
      const config: Partial<BertConfig> = {
        layers: opts.layers,
        hidden: opts.hidden,
        heads: opts.heads,
        ffn: opts.ffn,
        vocab: opts.vocab,
        maxPositions: Math.max(512, opts.seq),
      };
      const log = (s: string) => process.stdout.write(`${s}\n`);
      log(
        `building BERT: ${opts.layers} layers, hidden ${opts.hidden}, ${opts.heads} heads, ffn ${opts.ffn}, vocab ${opts.vocab}`,
      );
      const graph = buildBertGraph(config);
      let params = 0;
      for (const t of graph.initializers.values()) params += t.size;
      log(`  ${graph.nodes.length} nodes, ${(params / 1e6).toFixed(2)} M parameters`);
      if (opts.save) {
        writeFileSync(opts.save, saveModel(modelFromGraph(graph)));
        log(`  saved to ${opts.save}`);
      }
      const lengths = Array.from({ length: opts.batch }, (_, i) =>
        Math.max(1, opts.seq - Math.floor((i * opts.seq) / (2 * opts.batch))),
      );
      const feeds = bertInputs(lengths, opts.seq, opts.vocab);
      log(`inputs: batch ${opts.batch}, seq ${opts.seq}, valid lengths [${lengths.join(", ")}]`);

      log("fusing attention ...");
      const fused = InferenceSession.fromGraph(graph, {
        graphOptimizationLevel: "all",
        removePadding: false,
      });
      log(formatAttentionTable(fused.attentionReport));
      log(`  ${graph.nodes.length} nodes -> ${fused.graph.nodes.length} nodes`);
      const plain = InferenceSession.fromGraph(graph, { graphOptimizationLevel: "disabled" });
      const unpadded = InferenceSession.fromGraph(graph, { graphOptimizationLevel: "all" });

      log(`running (1 warm-up + ${opts.repeats} timed runs each) ...`);
      const a = await timeRuns(plain, feeds, opts.repeats);
      const b = await timeRuns(fused, feeds, opts.repeats);
      const c = await timeRuns(unpadded, feeds, opts.repeats);
      const diff = maxAbsDiff(a.out.last_hidden_state!, b.out.last_hidden_state!);
      const diffValid = maxAbsDiff(a.out.last_hidden_state!, c.out.last_hidden_state!, feeds.attention_mask);
      log(
        `  unfused: ${a.median.toFixed(1)} ms   fused: ${b.median.toFixed(1)} ms   speed-up ${(a.median / b.median).toFixed(2)}x`,
      );
      log(
        `  fused + padding removed (valid tokens only): ${c.median.toFixed(1)} ms   speed-up ${(a.median / c.median).toFixed(2)}x`,
      );
      log(
        `  last_hidden_state ${b.out.last_hidden_state!.dims.join("x")}, max |fused - unfused| = ${diff.toExponential(2)}, ` +
          `valid tokens with padding removed: ${diffValid.toExponential(2)}`,
      );
    });
}
