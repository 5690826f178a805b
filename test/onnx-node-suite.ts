// ONNX's own backend node tests (Debian's libonnx-testdata: ONNX 1.12's onnx/backend/test/data/node, one folder
// per test with model.onnx and test_data_set_*/{input,output}_*.pb), run through InferenceSession and compared as
// ONNX's backend runner compares them (numpy assert_allclose, rtol 1e-3, atol 1e-7; NaN equals NaN). Shared by
// the node-suite test and `npm run conformance`.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { InferenceSession } from "../src/engine/session.js";
import { MhafuseError, UnsupportedOpError } from "../src/errors.js";
import type { Tensor } from "../src/ir/tensor.js";
import { tensorFromProto } from "../src/onnx/index.js";
import { onnx } from "../src/onnx/proto.js";

export const NODE_TEST_DIR = "/usr/share/libonnx-testdata/data/node";

export type Outcome =
  | { kind: "pass" }
  | { kind: "mismatch"; detail: string }
  | { kind: "refused"; detail: string }
  | { kind: "crash"; detail: string };

export function nodeTestNames(dir = NODE_TEST_DIR): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((d) => existsSync(join(dir, d, "model.onnx")))
    .sort();
}

function readTensor(path: string): Tensor {
  return tensorFromProto(onnx.TensorProto.decode(readFileSync(path)));
}

function numbered(dir: string, prefix: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.startsWith(prefix) && f.endsWith(".pb"))
    .sort((a, b) => Number(a.slice(prefix.length, -3)) - Number(b.slice(prefix.length, -3)));
}

/** assert_allclose(got, want, rtol=1e-3, atol=1e-7) with NaN == NaN; exact for integers and bools. */
export function compareTensors(got: Tensor, want: Tensor): string | undefined {
  if (got.type !== want.type) return `dtype ${got.type}, expected ${want.type}`;
  if (got.dims.join() !== want.dims.join()) return `shape [${got.dims}], expected [${want.dims}]`;
  const a = got.toNumbers();
  const b = want.toNumbers();
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (Number.isNaN(x) && Number.isNaN(y)) continue;
    if (x === y) continue;
    if (!(Math.abs(x - y) <= 1e-7 + 1e-3 * Math.abs(y)))
      return `element ${i}: ${x}, expected ${y} (of ${a.length})`;
  }
  return undefined;
}

export async function runNodeTest(name: string, dir = NODE_TEST_DIR): Promise<Outcome> {
  const base = join(dir, name);
  let session: InferenceSession;
  try {
    session = await InferenceSession.create(join(base, "model.onnx"));
  } catch (e) {
    if (e instanceof MhafuseError) return { kind: "refused", detail: `${e.name}: ${e.message}` };
    return { kind: "crash", detail: String(e) };
  }
  const sets = readdirSync(base)
    .filter((d) => d.startsWith("test_data_set_"))
    .sort();
  for (const set of sets) {
    const at = join(base, set);
    const feeds: Record<string, Tensor> = {};
    numbered(at, "input_").forEach((f, i) => {
      feeds[session.inputNames[i]!] = readTensor(join(at, f));
    });
    let got: Record<string, Tensor>;
    try {
      got = (await session.run(feeds)) as Record<string, Tensor>;
    } catch (e) {
      if (e instanceof MhafuseError) return { kind: "refused", detail: `${e.name}: ${e.message}` };
      return { kind: "crash", detail: String((e as Error).stack ?? e) };
    }
    for (const [i, f] of numbered(at, "output_").entries()) {
      const outName = session.outputNames[i]!;
      const diff = compareTensors(got[outName]!, readTensor(join(at, f)));
      if (diff) return { kind: "mismatch", detail: `${set} ${outName}: ${diff}` };
    }
  }
  return { kind: "pass" };
}

/** The reason class of a refusal, for the summary: the missing op, the opset, or the message's first words. */
export function refusalClass(detail: string): string {
  const op = /no implementation for op '([^']+)'/.exec(detail);
  if (op) return `op ${op[1]}`;
  if (/opset/.test(detail)) return "opset";
  return detail.slice(0, 80);
}

export { UnsupportedOpError };
