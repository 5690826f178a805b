import { basename, extname } from "node:path";
import type { Command } from "commander";
import { MhafuseError } from "../../errors.js";
import { createServer } from "../../serve/server.js";

function intOption(flag: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min)
      throw new MhafuseError(`${flag} must be an integer >= ${min}, got '${v}'`);
    return n;
  };
}

export function registerServe(program: Command): void {
  program
    .command("serve")
    .description("serve models over the KServe / Triton Open Inference Protocol v2 (HTTP/REST)")
    .argument("<models...>", "ONNX model files; each is served as /v2/models/<file name without extension>")
    .option("--port <n>", "TCP port (0 = any free port)", intOption("--port", 0), 8000)
    .option("--host <address>", "address to listen on", "127.0.0.1")
    .option("--provider <name>", "execution provider", "cpu")
    .option(
      "--max-batch <n>",
      "dynamic batching: most rows per run (1 = off)",
      intOption("--max-batch", 1),
      8,
    )
    .option(
      "--max-delay-ms <n>",
      "dynamic batching: how long a request waits for others",
      intOption("--max-delay-ms", 0),
      2,
    )
    .option(
      "--no-remove-padding",
      "compute padded tokens as the model does (by default, on the cpu provider, encoders run on the valid tokens only and answer 0 at padded positions)",
    )
    .action(async (paths: string[], opts) => {
      const models = paths.map((path) => ({ name: basename(path, extname(path)), path }));
      const app = await createServer({
        models,
        session: {
          executionProviders: [opts.provider],
          removePadding: opts.removePadding ? undefined : false,
        },
        maxBatch: opts.maxBatch,
        maxDelayMs: opts.maxDelayMs,
      });
      const address = await app.listen({ port: opts.port, host: opts.host });
      process.stderr.write(
        `mhafuse serve: ${models.map((m) => m.name).join(", ")} on ${address} (Open Inference Protocol v2)\n`,
      );
      // Graceful shutdown: stop accepting, let in-flight requests finish, release the sessions.
      const stop = (signal: string) => {
        process.stderr.write(`mhafuse serve: ${signal}, shutting down\n`);
        app.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.once("SIGINT", () => stop("SIGINT"));
      process.once("SIGTERM", () => stop("SIGTERM"));
    });
}
