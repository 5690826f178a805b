import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { InferenceSession } from "../src/engine/session.js";
import {
  asMhafuseError,
  ERROR_CODES,
  type ErrorCode,
  InternalError,
  LimitError,
  MhafuseError,
} from "../src/errors.js";
import { GraphBuilder } from "../src/ir/builder.js";
import { Tensor } from "../src/ir/tensor.js";
import { modelFromBytes } from "../src/onnx/index.js";

/** Asserts that `fn` rejects with a MhafuseError of `code` (and the given fields). */
export async function rejectsWith(
  fn: () => unknown,
  code: ErrorCode,
  fields: { node?: string; input?: string; message?: RegExp } = {},
): Promise<MhafuseError> {
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught !== undefined, `expected ${code}, got a result`);
  assert.ok(caught instanceof MhafuseError, `expected ${code}, got raw ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (fields.node !== undefined) assert.equal(caught.node, fields.node);
  if (fields.input !== undefined) assert.equal(caught.input, fields.input);
  if (fields.message) assert.match(caught.message, fields.message);
  return caught;
}

function reluGraph() {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [2]);
  b.output(b.op("Relu", [x], {}, { name: "relu", outputs: ["y"] }));
  return b.build();
}

test("every error code is documented in docs/errors.md", () => {
  const doc = readFileSync(new URL("../docs/errors.md", import.meta.url), "utf8");
  for (const code of ERROR_CODES)
    assert.ok(doc.includes(`\`${code}\``), `${code} missing from docs/errors.md`);
});

test("feeds: unknown output, wrong typed array, missing input carry INPUT_INVALID and the name", async () => {
  const s = InferenceSession.fromGraph(reluGraph());
  const x = new Tensor("float32", new Float32Array([1, -1]), [2]);
  await rejectsWith(() => s.run({ x }, ["nope"]), "INPUT_INVALID", { input: "nope" });
  await rejectsWith(() => s.run({}), "INPUT_INVALID", { input: "x" });
  // An int64 feed backed by a Float64Array used to be read as garbage integers.
  const b = new GraphBuilder();
  const ids = b.input("ids", "int64", [2]);
  b.output(b.op("Identity", [ids], {}, { outputs: ["out"] }));
  const s64 = InferenceSession.fromGraph(b.build());
  await rejectsWith(
    () => s64.run({ ids: { type: "int64", dims: [2], data: new Float64Array([1, 2]) } }),
    "INPUT_INVALID",
    { input: "ids", message: /BigInt64Array/ },
  );
  const ok = await s64.run({ ids: { type: "int64", dims: [2], data: new BigInt64Array([1n, 2n]) } });
  assert.deepEqual([...(ok.out!.data as BigInt64Array)], [1n, 2n]);
});

test("options, bad models, bad tensors and unsupported ops have their codes", async () => {
  await rejectsWith(
    () => InferenceSession.create(new Uint8Array([1, 2, 3]), { executionProviders: ["cuda"] }),
    "OPTION_INVALID",
  );
  await rejectsWith(() => InferenceSession.create(new Uint8Array([0xff, 0xff, 0xff])), "MODEL_INVALID");
  await rejectsWith(() => modelFromBytes(new Uint8Array(0)), "MODEL_INVALID");
  await rejectsWith(() => new Tensor("float32", new Float32Array(3), [2]), "TENSOR_INVALID");
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [2]);
  b.output(b.op("NoSuchOp", [x], {}, { name: "mystery", outputs: ["y"] }));
  const s = await InferenceSession.create({
    graph: b.build(),
    irVersion: 8,
    producerName: "",
    producerVersion: "",
    metadata: {},
  }).catch((e: unknown) => e);
  // Refused at create or at run, but always as OP_UNSUPPORTED naming the node.
  if (s instanceof InferenceSession) {
    await rejectsWith(() => s.run({ x: new Tensor("float32", new Float32Array(2), [2]) }), "OP_UNSUPPORTED", {
      node: "mystery",
    });
  } else {
    assert.ok(s instanceof MhafuseError && s.code === "OP_UNSUPPORTED", String(s));
  }
});

test("raw exceptions become LIMIT_EXCEEDED (refused allocation) or INTERNAL (a bug), keeping the cause", () => {
  let alloc: unknown;
  try {
    new Float32Array(2 ** 40);
  } catch (e) {
    alloc = e;
  }
  const limit = asMhafuseError(alloc, "node 'big' (Expand)", { node: "big" });
  assert.ok(limit instanceof LimitError);
  assert.equal(limit.code, "LIMIT_EXCEEDED");
  assert.equal(limit.node, "big");
  assert.equal(limit.cause, alloc);
  const bug = asMhafuseError(new TypeError("x is undefined"));
  assert.ok(bug instanceof InternalError);
  assert.equal(bug.code, "INTERNAL");
});

test("the CLI prints the code", () => {
  const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", "inspect", "package.json"], {
    encoding: "utf8",
  });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^mhafuse: MODEL_INVALID: /);
});

test("the package's functions are guarded: a failed write is IO_FAILED, a bad argument a coded error", async () => {
  const api = await import("../src/index.js");
  const model = api.modelFromGraph(reluGraph());
  await rejectsWith(() => api.saveModelFile(model, "/nonexistent-dir-13/m.onnx"), "IO_FAILED");
  const caught = await rejectsWith(() => api.tensorToJson(undefined as unknown as Tensor), "INTERNAL");
  assert.match(caught.message, /tensorToJson/);
});
