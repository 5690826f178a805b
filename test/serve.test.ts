// `mhafuse serve` driven with a real HTTP client (fetch) on 127.0.0.1: the Open Inference Protocol v2
// endpoints, correctness against the fixture references and session.run, 100 concurrent requests batched
// dynamically and all correct, the binary tensor extension, bad requests as coded 400s, graceful close.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { FastifyInstance } from "fastify";
import { InferenceSession } from "../src/engine/session.js";
import { Tensor } from "../src/ir/tensor.js";
import { createServer } from "../src/serve/server.js";
import { FIXTURES, fixtureCases, maxAbsDiff, REPO } from "./helpers.js";
import { maskedDiff } from "./support/compare.js";

const MODEL = `${FIXTURES}onnx/bert_eager.onnx`;
let app: FastifyInstance;
let base: string;
let session: InferenceSession;

before(async () => {
  app = await createServer({ models: [{ name: "bert", path: MODEL }], maxBatch: 16, maxDelayMs: 20 });
  base = await app.listen({ port: 0, host: "127.0.0.1" });
  session = await InferenceSession.create(MODEL);
});
after(async () => {
  await app.close();
});

function jsonTensor(name: string, t: Tensor) {
  return { name, shape: [...t.dims], datatype: t.type === "int64" ? "INT64" : "FP32", data: t.toNumbers() };
}

async function infer(body: unknown, path = "/v2/models/bert/infer") {
  const r = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

function tensorOf(o: { shape: number[]; data: number[] }): Tensor {
  return new Tensor("float32", o.data, o.shape);
}

test("health, server metadata, model metadata and readiness", async () => {
  const get = async (p: string) => {
    const r = await fetch(`${base}${p}`);
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
  assert.deepEqual((await get("/v2/health/live")).body, { live: true });
  assert.deepEqual((await get("/v2/health/ready")).body, { ready: true });
  assert.equal((await get("/v2")).body.name, "mhafuse");
  const meta = (await get("/v2/models/bert")).body as {
    inputs: { name: string; datatype: string; shape: number[] }[];
  };
  assert.deepEqual(
    meta.inputs.map((i) => [i.name, i.datatype, i.shape]),
    [
      ["input_ids", "INT64", [-1, -1]],
      ["attention_mask", "INT64", [-1, -1]],
      ["token_type_ids", "INT64", [-1, -1]],
    ],
  );
  assert.equal((await get("/v2/models/bert/ready")).status, 200);
  const missing = await get("/v2/models/nope/ready");
  assert.equal(missing.status, 404);
  assert.match(String(missing.body.error), /unknown model 'nope'/);
});

test("inference matches the fixture's onnxruntime outputs and session.run", async () => {
  const c = fixtureCases("bert_eager")[0]!;
  const r = await infer({ id: "x1", inputs: Object.entries(c.inputs).map(([k, t]) => jsonTensor(k, t)) });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.id, "x1");
  const outs = r.body.outputs as { name: string; shape: number[]; datatype: string; data: number[] }[];
  const got = Object.fromEntries(outs.map((o) => [o.name, tensorOf(o)]));
  // Padding removal (the session default): valid tokens as onnxruntime, padded ones 0.
  const d = maskedDiff(got.last_hidden_state!, c.outputs.last_hidden_state!, c.inputs.attention_mask!);
  assert.ok(d.valid <= 1e-4 && d.padded === 0, JSON.stringify(d));
  assert.ok(maxAbsDiff(got.pooler_output!, c.outputs.pooler_output!) <= 1e-4);
});

test("100 concurrent requests are batched dynamically and each answer equals its own session.run", async () => {
  const c = fixtureCases("bert_eager")[0]!;
  const S = c.inputs.input_ids!.dims[1]!;
  const requests = Array.from({ length: 100 }, (_, i) => {
    const ids = new Tensor(
      "int64",
      Array.from({ length: S }, (_, s) => (i * 7 + s * 13) % 100),
      [1, S],
    );
    const mask = new Tensor(
      "int64",
      Array.from({ length: S }, (_, s) => (s < S - (i % 5) ? 1 : 0)),
      [1, S],
    );
    return {
      input_ids: ids,
      attention_mask: mask,
      token_type_ids: new Tensor("int64", new Array(S).fill(0), [1, S]),
    };
  });
  const before = await (await fetch(`${base}/metrics`)).text();
  const answers = await Promise.all(
    requests.map((f) => infer({ inputs: Object.entries(f).map(([k, t]) => jsonTensor(k, t)) })),
  );
  const metrics = await (await fetch(`${base}/metrics`)).text();
  for (const [i, a] of answers.entries()) {
    assert.equal(a.status, 200);
    const want = (await session.run(requests[i]!)) as Record<string, Tensor>;
    const out = (a.body.outputs as { name: string; shape: number[]; data: number[] }[]).find(
      (o) => o.name === "last_hidden_state",
    )!;
    assert.ok(maxAbsDiff(tensorOf(out), want.last_hidden_state!) <= 1e-5, `request ${i}`);
  }
  // Fewer batches than requests: some runs carried several requests.
  const count = (text: string) =>
    Number(/mhafuse_batch_requests_count\{model="bert"\} (\d+)/.exec(text)?.[1] ?? 0);
  const batches = count(metrics) - count(before);
  assert.ok(batches > 0 && batches < 100, `${batches} batches for 100 requests`);
  assert.match(metrics, /mhafuse_requests_total\{model="bert",status="ok"\} \d+/);
});

test("binary tensor extension: binary inputs in, binary outputs out", async () => {
  const c = fixtureCases("bert_eager")[1]!;
  const names = Object.keys(c.inputs);
  const chunks = names.map((n) => Buffer.from(new BigInt64Array(c.inputs[n]!.data as BigInt64Array).buffer));
  const header = Buffer.from(
    JSON.stringify({
      inputs: names.map((n, i) => ({
        name: n,
        shape: [...c.inputs[n]!.dims],
        datatype: "INT64",
        parameters: { binary_data_size: chunks[i]!.length },
      })),
      outputs: [{ name: "pooler_output", parameters: { binary_data: true } }],
    }),
  );
  const r = await fetch(`${base}/v2/models/bert/infer`, {
    method: "POST",
    headers: {
      "content-type": "application/octet-stream",
      "Inference-Header-Content-Length": String(header.length),
    },
    body: Buffer.concat([header, ...chunks]),
  });
  assert.equal(r.status, 200);
  const n = Number(r.headers.get("inference-header-content-length"));
  const bytes = Buffer.from(await r.arrayBuffer());
  const json = JSON.parse(bytes.subarray(0, n).toString()) as {
    outputs: { name: string; shape: number[]; parameters: { binary_data_size: number } }[];
  };
  assert.deepEqual(
    json.outputs.map((o) => o.name),
    ["pooler_output"],
  );
  const raw = bytes.subarray(n, n + json.outputs[0]!.parameters.binary_data_size);
  const got = new Tensor(
    "float32",
    new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length)),
    json.outputs[0]!.shape,
  );
  assert.ok(maxAbsDiff(got, c.outputs.pooler_output!) <= 1e-4);
});

test("bad requests are HTTP 400 with the protocol's error body and a code", async () => {
  const c = fixtureCases("bert_eager")[0]!;
  const good = Object.entries(c.inputs).map(([k, t]) => jsonTensor(k, t));
  const cases: [unknown, RegExp][] = [
    [{}, /needs an 'inputs' list/],
    [{ inputs: good.slice(1) }, /input 'input_ids' is missing/],
    [{ inputs: [{ ...good[0], datatype: "FP32" }, ...good.slice(1)] }, /is INT64 in the model, got FP32/],
    [
      { inputs: [{ ...good[0], shape: [2, 15] }, ...good.slice(1)] },
      /has 32 values, shape \[2,15\] needs 30/,
    ],
    [
      { inputs: [...good, { name: "extra", shape: [1], datatype: "INT64", data: [1] }] },
      /unknown input 'extra'/,
    ],
    [{ inputs: good, outputs: [{ name: "logits" }] }, /unknown output 'logits'/],
  ];
  for (const [body, re] of cases) {
    const r = await infer(body);
    assert.equal(r.status, 400, JSON.stringify(r.body));
    assert.match(String(r.body.error), re);
    assert.equal(r.body.code, "INPUT_INVALID");
  }
  const raw = await fetch(`${base}/v2/models/bert/infer`, { method: "POST", body: "{not json" });
  assert.equal(raw.status, 400);
  assert.equal((await infer({ inputs: good }, "/v2/models/other/infer")).status, 404);
});

test("graceful close: a request in flight still gets its answer", async () => {
  const local = await createServer({ models: [{ name: "bert", path: MODEL }], maxBatch: 1 });
  // Close only once the request is being handled (not merely sent), so the test does not race the accept.
  let arrived!: () => void;
  const arrival = new Promise<void>((resolve) => {
    arrived = resolve;
  });
  local.addHook("preHandler", async () => arrived());
  const url = await local.listen({ port: 0, host: "127.0.0.1" });
  const c = fixtureCases("bert_eager")[0]!;
  const pending = fetch(`${url}/v2/models/bert/infer`, {
    method: "POST",
    body: JSON.stringify({ inputs: Object.entries(c.inputs).map(([k, t]) => jsonTensor(k, t)) }),
  });
  await arrival;
  const closing = local.close();
  const r = await pending;
  assert.equal(r.status, 200);
  await closing;
});

test("the CLI: `mhafuse serve MODEL --port 0` answers, and SIGTERM shuts it down with exit 0", async () => {
  const child = spawn(process.execPath, [join(REPO, "dist/cli/main.js"), "serve", MODEL, "--port", "0"], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
      const m = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(err);
      if (m) resolve(m[1]!);
    });
    child.on("exit", (code) => reject(new Error(`serve exited ${code}: ${err}`)));
  });
  const ready = await fetch(`${url}/v2/models/bert_eager/ready`);
  assert.equal(ready.status, 200);
  const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
  child.kill("SIGTERM");
  assert.equal(await exited, 0);
  assert.match(err, /SIGTERM, shutting down/);
});
