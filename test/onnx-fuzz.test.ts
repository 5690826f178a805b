import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import fc from "fast-check";
import { InferenceSession } from "../src/engine/session.js";
import { MhafuseError } from "../src/errors.js";
import { GraphBuilder } from "../src/ir/builder.js";
import { modelFromBytes, modelFromGraph, saveModel } from "../src/onnx/index.js";
import { FIXTURES, fixtureCases } from "./helpers.js";

// A damaged model file must give a typed error or a model that still runs to a typed error or a result —
// never a raw exception, a crash or a hang.

const original = new Uint8Array(readFileSync(`${FIXTURES}onnx/distilbert_eager.onnx`));
const feeds = fixtureCases("distilbert_eager")[1]!.inputs;

function corrupt(offsets: number[], values: number[], cut: number): Uint8Array {
  const bytes = original.slice(0, Math.max(1, Math.floor(original.length * cut)));
  offsets.forEach((o, i) => {
    bytes[Math.floor(o * bytes.length) % bytes.length] = values[i]!;
  });
  return bytes;
}

test("corrupted and truncated model files give MhafuseErrors, never raw exceptions", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 8 }),
      fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 8, maxLength: 8 }),
      fc.oneof(fc.constant(1), fc.double({ min: 0, max: 1, noNaN: true })),
      async (offsets, values, cut) => {
        const bytes = corrupt(offsets, values, cut);
        let model: ReturnType<typeof modelFromBytes>;
        try {
          model = modelFromBytes(bytes);
        } catch (err) {
          assert.ok(
            err instanceof MhafuseError,
            `load threw ${(err as Error).name}: ${(err as Error).message}`,
          );
          return;
        }
        // It decoded: build and run must still fail only with typed errors (or succeed).
        try {
          const session = await InferenceSession.create(model);
          await session.run(feeds);
        } catch (err) {
          assert.ok(
            err instanceof MhafuseError,
            `run threw ${(err as Error).name}: ${(err as Error).message}`,
          );
        }
      },
    ),
    { numRuns: 60, seed: 20261125 },
  );
});

test("a graph that reads a value nothing produces is refused at load time", () => {
  const b = new GraphBuilder();
  b.output(b.op("Relu", ["nowhere"], {}, { name: "dangling" }));
  const bytes = saveModel(modelFromGraph(b.build()));
  assert.throws(
    () => modelFromBytes(bytes),
    (e: Error) =>
      e instanceof MhafuseError &&
      /node 'dangling' \(Relu\) reads 'nowhere', which nothing produces/.test(e.message),
  );
});
