/**
 * `mhafuse serve`: the KServe / Triton Open Inference Protocol v2 over HTTP/REST on fastify — health, server
 * and model metadata, model readiness, inference with JSON tensors or the binary tensor extension — with
 * dynamic batching per model, Prometheus metrics (prom-client) on /metrics, coded errors in the protocol's
 * `{error}` body, and graceful shutdown (in-flight requests finish, sessions are released).
 */
import Fastify, { type FastifyInstance, type FastifyReply } from "fastify";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { InferenceSession, type SessionOptions } from "../engine/session.js";
import { MhafuseError } from "../errors.js";
import type { ValueInfo } from "../ir/graph.js";
import { DynamicBatcher } from "./batcher.js";
import {
  datatypeOf,
  feedsFromRequest,
  HEADER_LENGTH,
  type InferRequest,
  RequestError,
  responseTensors,
  splitBody,
} from "./protocol.js";

export interface ServedModel {
  name: string;
  path: string;
}

export interface ServeOptions {
  models: ServedModel[];
  session?: SessionOptions;
  /** Dynamic batching: most rows per run (1 = off) and how long the first request waits for company. */
  maxBatch?: number;
  maxDelayMs?: number;
  /** Largest request body accepted, bytes. */
  bodyLimit?: number;
}

interface Loaded {
  name: string;
  session: InferenceSession;
  batcher: DynamicBatcher;
}

function tensorMetadata(v: ValueInfo) {
  return {
    name: v.name,
    datatype: v.dtype ? datatypeOf(v.dtype) : "FP32",
    shape: (v.shape ?? []).map((d) => (typeof d === "number" ? d : -1)),
  };
}

function metrics(registry: Registry) {
  return {
    requests: new Counter({
      name: "mhafuse_requests_total",
      help: "inference requests",
      labelNames: ["model", "status"],
      registers: [registry],
    }),
    latency: new Histogram({
      name: "mhafuse_request_duration_seconds",
      help: "inference request latency",
      labelNames: ["model"],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    batchRequests: new Histogram({
      name: "mhafuse_batch_requests",
      help: "requests per executed batch",
      labelNames: ["model"],
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers: [registry],
    }),
    inFlight: new Gauge({
      name: "mhafuse_requests_in_flight",
      help: "requests being served",
      labelNames: ["model"],
      registers: [registry],
    }),
  };
}

/** Builds the server and loads every model; `listen` is the caller's. */
export async function createServer(opts: ServeOptions): Promise<FastifyInstance> {
  const registry = new Registry();
  const m = metrics(registry);
  const models = new Map<string, Loaded>();
  for (const spec of opts.models) {
    if (models.has(spec.name))
      throw new MhafuseError(`two models are named '${spec.name}'; give each a distinct name`);
    const session = await InferenceSession.create(spec.path, opts.session);
    const batcher = new DynamicBatcher(
      async (feeds) => (await session.run(feeds)) as Record<string, import("../ir/tensor.js").Tensor>,
      {
        maxBatch: opts.maxBatch ?? 8,
        maxDelayMs: opts.maxDelayMs ?? 2,
        onBatch: (requests) => m.batchRequests.observe({ model: spec.name }, requests),
      },
    );
    models.set(spec.name, { name: spec.name, session, batcher });
  }
  const app = Fastify({ bodyLimit: opts.bodyLimit ?? 256 * 1024 * 1024 });
  // Every body is read raw: JSON, or a JSON header followed by binary tensors.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "buffer" }, (_req, body, done) => done(null, body));

  const fail = (reply: FastifyReply, e: unknown) => {
    if (e instanceof RequestError) return reply.code(e.status).send({ error: e.message, code: e.code });
    if (e instanceof MhafuseError)
      return reply.code(400).send({ error: e.message, code: (e as { code?: string }).code ?? e.name });
    return reply.code(500).send({ error: `internal error: ${(e as Error).message}`, code: "INTERNAL" });
  };
  const model = (name: string, version?: string): Loaded => {
    const found = models.get(name);
    if (!found)
      throw new RequestError(
        `unknown model '${name}'; this server has ${[...models.keys()].join(", ")}`,
        404,
        "MODEL_NOT_FOUND",
      );
    if (version !== undefined && version !== "1")
      throw new RequestError(`model '${name}' has version 1 only, not '${version}'`, 404, "MODEL_NOT_FOUND");
    return found;
  };

  app.get("/v2/health/live", async () => ({ live: true }));
  app.get("/v2/health/ready", async () => ({ ready: true }));
  app.get("/v2", async () => ({ name: "mhafuse", version: "0.1.0", extensions: ["binary_tensor_data"] }));
  app.get("/metrics", async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));

  const metadata = async (req: { params: unknown }, reply: FastifyReply) => {
    try {
      const p = req.params as { name: string; version?: string };
      const { session } = model(p.name, p.version);
      return {
        name: p.name,
        versions: ["1"],
        platform: "onnx_onnxv1",
        inputs: session.inputMetadata.map(tensorMetadata),
        outputs: session.outputMetadata.map(tensorMetadata),
      };
    } catch (e) {
      return fail(reply, e);
    }
  };
  app.get("/v2/models/:name", metadata);
  app.get("/v2/models/:name/versions/:version", metadata);
  const ready = async (req: { params: unknown }, reply: FastifyReply) => {
    try {
      const p = req.params as { name: string; version?: string };
      model(p.name, p.version);
      return { name: p.name, ready: true };
    } catch (e) {
      return fail(reply, e);
    }
  };
  app.get("/v2/models/:name/ready", ready);
  app.get("/v2/models/:name/versions/:version/ready", ready);

  const infer = async (
    req: { params: unknown; body: unknown; headers: Record<string, unknown> },
    reply: FastifyReply,
  ) => {
    const p = req.params as { name: string; version?: string };
    const started = performance.now();
    let status = "ok";
    m.inFlight.inc({ model: p.name });
    try {
      const target = model(p.name, p.version);
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const { header, binary } = splitBody(body, req.headers[HEADER_LENGTH] as string | undefined);
      const request = header as InferRequest;
      const feeds = feedsFromRequest(request, binary, target.session.inputMetadata);
      const outputs = await target.batcher.submit(feeds);
      const { tensors, binary: chunks } = responseTensors(outputs, request);
      const json = { model_name: p.name, model_version: "1", id: request.id ?? "", outputs: tensors };
      if (chunks.length === 0) return reply.send(json);
      const head = Buffer.from(JSON.stringify(json));
      return reply
        .header("Inference-Header-Content-Length", String(head.length))
        .type("application/octet-stream")
        .send(Buffer.concat([head, ...chunks]));
    } catch (e) {
      status = "error";
      return fail(reply, e);
    } finally {
      m.inFlight.dec({ model: p.name });
      m.requests.inc({ model: p.name, status });
      m.latency.observe({ model: p.name }, (performance.now() - started) / 1000);
    }
  };
  app.post("/v2/models/:name/infer", infer);
  app.post("/v2/models/:name/versions/:version/infer", infer);

  app.addHook("onClose", async () => {
    for (const l of models.values()) {
      l.batcher.drain();
      (l.session as { release?: () => Promise<void> | void }).release?.();
    }
  });
  return app;
}
