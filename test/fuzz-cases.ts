/**
 * The fuzz property shared by test/fuzz.test.ts (fixed seed, about a minute) and scripts/fuzz.ts (long
 * campaigns): mutate, truncate and splice the fixture models and their feeds; every outcome must be a result
 * or a coded MhafuseError, within a time bound, and a mutation that keeps the model's meaning (nodes
 * reordered or renamed, doc strings changed) must give the unmutated model's results.
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { InferenceSession } from "../src/engine/session.js";
import { ERROR_CODES, MhafuseError } from "../src/errors.js";
import { Tensor } from "../src/ir/tensor.js";
import { onnx } from "../src/onnx/proto.js";
import { FIXTURES, fixtureCases } from "./helpers.js";

export const FUZZ_MODELS = ["distilbert_eager", "bert_sdpa", "gpt_neox_sdpa"] as const;

export interface FuzzModel {
  name: string;
  bytes: Uint8Array;
  feeds: Record<string, Tensor>;
  /** The unmutated model's results on `feeds`. */
  expected: Record<string, Tensor>;
}

export async function loadFuzzModels(names: readonly string[] = FUZZ_MODELS): Promise<FuzzModel[]> {
  const out: FuzzModel[] = [];
  for (const name of names) {
    const bytes = new Uint8Array(readFileSync(`${FIXTURES}onnx/${name}.onnx`));
    const feeds = fixtureCases(name)[0]!.inputs;
    const expected = await (await InferenceSession.create(bytes)).run(feeds);
    out.push({ name, bytes, feeds, expected });
  }
  return out;
}

/** Mutations of the model file. "keeps" ones leave its meaning intact. */
export type ModelMutation =
  | { kind: "none" }
  | { kind: "bytes"; edits: [number, number][] }
  | { kind: "truncate"; at: number }
  | { kind: "splice"; other: number; from: number; length: number; to: number }
  | { kind: "shuffle-nodes"; seed: number }
  | { kind: "rename"; seed: number }
  | {
      kind: "structure";
      edit: "drop-node" | "dup-output" | "swap-inputs" | "attr" | "dims" | "op-type";
      seed: number;
    };

export type FeedMutation =
  | { kind: "none" }
  | { kind: "drop"; which: number }
  | { kind: "extra" }
  | { kind: "dims"; which: number; dims: number[] }
  | { kind: "dtype"; which: number; type: string }
  | { kind: "values"; which: number; value: number }
  | { kind: "wrong-array"; which: number }
  | { kind: "from-other"; other: number };

const unit = fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true });
const seed = fc.nat();

export const modelMutation: fc.Arbitrary<ModelMutation> = fc.oneof(
  fc.constant<ModelMutation>({ kind: "none" }),
  fc.record({
    kind: fc.constant("bytes" as const),
    edits: fc.array(fc.tuple(unit, fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
  }),
  fc.record({ kind: fc.constant("truncate" as const), at: unit }),
  fc.record({
    kind: fc.constant("splice" as const),
    other: fc.nat(),
    from: unit,
    length: fc.integer({ min: 1, max: 4096 }),
    to: unit,
  }),
  fc.record({ kind: fc.constant("shuffle-nodes" as const), seed }),
  fc.record({ kind: fc.constant("rename" as const), seed }),
  fc.record({
    kind: fc.constant("structure" as const),
    edit: fc.constantFrom("drop-node", "dup-output", "swap-inputs", "attr", "dims", "op-type"),
    seed,
  }),
) as fc.Arbitrary<ModelMutation>;

export const feedMutation: fc.Arbitrary<FeedMutation> = fc.oneof(
  { weight: 3, arbitrary: fc.constant<FeedMutation>({ kind: "none" }) },
  fc.record({ kind: fc.constant("drop" as const), which: fc.nat() }),
  fc.constant<FeedMutation>({ kind: "extra" }),
  fc.record({
    kind: fc.constant("dims" as const),
    which: fc.nat(),
    dims: fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 4 }),
  }),
  fc.record({
    kind: fc.constant("dtype" as const),
    which: fc.nat(),
    type: fc.constantFrom("float32", "int32", "int64", "bool", "string", "float16"),
  }),
  fc.record({
    kind: fc.constant("values" as const),
    which: fc.nat(),
    value: fc.constantFrom(-1, 0, 1e9, -1e9, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 40),
  }),
  fc.record({ kind: fc.constant("wrong-array" as const), which: fc.nat() }),
  fc.record({ kind: fc.constant("from-other" as const), other: fc.nat() }),
) as fc.Arbitrary<FeedMutation>;

/** Deterministic PRNG (mulberry32) for the seeded mutations. */
function rng(s: number): () => number {
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function structural(
  bytes: Uint8Array,
  m: ModelMutation & { kind: "shuffle-nodes" | "rename" | "structure" },
): Uint8Array {
  const proto = onnx.ModelProto.decode(bytes);
  const g = proto.graph!;
  const nodes = g.node!;
  const r = rng(m.seed);
  const pick = <T>(xs: T[]): T | undefined => (xs.length ? xs[Math.floor(r() * xs.length)] : undefined);
  if (m.kind === "shuffle-nodes") {
    for (let i = nodes.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [nodes[i], nodes[j]] = [nodes[j]!, nodes[i]!];
    }
  } else if (m.kind === "rename") {
    for (const n of nodes) n.name = r() < 0.5 ? "" : `n${Math.floor(r() * 10)}`;
    g.docString = "mutated";
    proto.docString = "fuzz";
    proto.producerName = "fuzz";
  } else {
    const node = pick(nodes);
    if (!node) return bytes;
    if (m.edit === "drop-node") nodes.splice(nodes.indexOf(node), 1);
    else if (m.edit === "dup-output") {
      const other = pick(nodes)!;
      if (node.output?.length && other.output?.length) other.output[0] = node.output[0]!;
    } else if (m.edit === "swap-inputs") {
      const other = pick(nodes)!;
      if (node.input?.length && other.input?.length)
        [node.input[0], other.input[0]] = [other.input[0]!, node.input[0]!];
    } else if (m.edit === "attr") {
      const a = pick(node.attribute ?? []);
      if (a) {
        const v = pick([-1, 0, 1, 2, 7, -100, 1e6, 2 ** 31]);
        a.i = v;
        a.f = v;
        a.ints = [v!, v!];
      }
    } else if (m.edit === "dims") {
      const t = pick(g.initializer ?? []);
      if (t) t.dims = (t.dims ?? []).map((d) => (r() < 0.5 ? Number(d) * 2 : Math.max(0, Number(d) - 1)));
    } else {
      node.opType = pick(["Relu", "Add", "MatMul", "Softmax", "Expand", "Reshape", "Gather", "Unknown"]);
    }
  }
  return onnx.ModelProto.encode(proto).finish();
}

/** The mutated model bytes, and whether its meaning is the original's. */
export function mutateModel(
  models: FuzzModel[],
  model: FuzzModel,
  m: ModelMutation,
): { bytes: Uint8Array; keeps: boolean } {
  const src = model.bytes;
  switch (m.kind) {
    case "none":
      return { bytes: src, keeps: true };
    case "bytes": {
      const b = src.slice();
      for (const [at, v] of m.edits) b[Math.floor(at * b.length)] = v;
      return { bytes: b, keeps: false };
    }
    case "truncate":
      return { bytes: src.slice(0, Math.floor(m.at * src.length)), keeps: false };
    case "splice": {
      const other = models[m.other % models.length]!.bytes;
      const from = Math.floor(m.from * other.length);
      const chunk = other.subarray(from, from + m.length);
      const to = Math.floor(m.to * src.length);
      const b = new Uint8Array(src.length + chunk.length);
      b.set(src.subarray(0, to));
      b.set(chunk, to);
      b.set(src.subarray(to), to + chunk.length);
      return { bytes: b, keeps: false };
    }
    default:
      return { bytes: structural(src, m), keeps: m.kind !== "structure" };
  }
}

/** The mutated feeds, and whether they are the original ones. */
export function mutateFeeds(
  models: FuzzModel[],
  model: FuzzModel,
  m: FeedMutation,
): { feeds: Record<string, unknown>; same: boolean } {
  const feeds: Record<string, unknown> = { ...model.feeds };
  const names = Object.keys(feeds);
  const name = names[("which" in m ? m.which : 0) % names.length]!;
  const t = model.feeds[name]!;
  switch (m.kind) {
    case "none":
      return { feeds, same: true };
    case "drop":
      delete feeds[name];
      break;
    case "extra":
      feeds.not_an_input = t;
      break;
    case "dims":
      feeds[name] = { type: t.type, dims: m.dims, data: t.data };
      break;
    case "dtype":
      feeds[name] = { type: m.type, dims: t.dims, data: t.data };
      break;
    case "values": {
      const data = t.data.slice() as Tensor["data"];
      if (data instanceof BigInt64Array) data[0] = Number.isFinite(m.value) ? BigInt(m.value) : 0n;
      else (data as Float32Array)[0] = m.value;
      feeds[name] = new Tensor(t.type, data, t.dims);
      break;
    }
    case "wrong-array":
      feeds[name] = { type: t.type, dims: t.dims, data: Float64Array.from(t.toNumbers()) };
      break;
    case "from-other":
      return { feeds: { ...models[m.other % models.length]!.feeds }, same: false };
  }
  return { feeds, same: false };
}

export interface FuzzStats {
  cases: number;
  results: number;
  matched: number;
  codes: Record<string, number>;
  slowestMs: number;
}

export function newStats(): FuzzStats {
  return { cases: 0, results: 0, matched: 0, codes: {}, slowestMs: 0 };
}

function checkCoded(err: unknown, where: string): MhafuseError {
  if (!(err instanceof MhafuseError)) {
    throw new Error(`${where} threw a raw ${(err as Error)?.name}: ${(err as Error)?.message}`, {
      cause: err,
    });
  }
  if (!(ERROR_CODES as readonly string[]).includes(err.code))
    throw new Error(`${where}: unknown code ${err.code}`);
  if (err.code === "INTERNAL")
    throw new Error(`${where}: INTERNAL error (a bug): ${err.message}`, { cause: err });
  return err;
}

function sameResults(a: Record<string, Tensor>, b: Record<string, Tensor>): string | undefined {
  for (const [name, want] of Object.entries(b)) {
    const got = a[name];
    if (!got || got.dims.join() !== want.dims.join()) return `output '${name}' shape`;
    for (let i = 0; i < want.size; i++) {
      const x = got.getNumber(i);
      const y = want.getNumber(i);
      if (Number.isNaN(x) !== Number.isNaN(y) || Math.abs(x - y) > 1e-4 * (1 + Math.abs(y)))
        return `output '${name}'[${i}] ${x} vs ${y}`;
    }
  }
  return undefined;
}

/** One case: a result or a coded error within `maxMs`; meaning-keeping mutations give the original results. */
export async function runCase(
  models: FuzzModel[],
  which: number,
  mm: ModelMutation,
  fm: FeedMutation,
  stats: FuzzStats,
  maxMs = 30_000,
): Promise<void> {
  const model = models[which % models.length]!;
  const { bytes, keeps } = mutateModel(models, model, mm);
  const { feeds, same } = mutateFeeds(models, model, fm);
  const start = performance.now();
  stats.cases++;
  let outcome: string;
  try {
    const session = await InferenceSession.create(bytes);
    const out = await session.run(feeds as Record<string, Tensor>);
    stats.results++;
    outcome = "result";
    if (keeps && same) {
      const diff = sameResults(out, model.expected);
      if (diff)
        throw new Error(`${model.name} ${JSON.stringify(mm)}: meaning-keeping mutation changed ${diff}`);
      stats.matched++;
    }
  } catch (err) {
    if (!(err instanceof MhafuseError) && err instanceof Error && /meaning-keeping/.test(err.message))
      throw err;
    outcome = checkCoded(err, `${model.name} ${JSON.stringify(mm)} feeds ${JSON.stringify(fm)}`).code;
    stats.codes[outcome] = (stats.codes[outcome] ?? 0) + 1;
  }
  const ms = performance.now() - start;
  stats.slowestMs = Math.max(stats.slowestMs, ms);
  if (ms > maxMs)
    throw new Error(`${model.name} ${JSON.stringify(mm)}: took ${ms.toFixed(0)} ms (${outcome})`);
}

export const fuzzCase = fc.tuple(fc.nat(), modelMutation, feedMutation);
