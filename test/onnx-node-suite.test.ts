// ONNX's backend node tests (932 of ONNX 1.12, Debian's libonnx-testdata, installed by .ci/run) through
// InferenceSession: at least 800 pass, none mismatches or crashes, and every test that does not run is refused
// with a typed error for one of the reasons docs/onnx-conformance.md accepts.
import assert from "node:assert/strict";
import { test } from "node:test";
import { NODE_TEST_DIR, nodeTestNames, type Outcome, runNodeTest } from "./onnx-node-suite.js";

/** Why a test may be refused: training-only ops, non-tensor or unsupported types, ops not yet implemented. */
const ACCEPTED_REFUSALS = [
  /is not a tensor; only tensor inputs/, // sequence and optional inputs
  /has data type (STRING|BFLOAT16|UINT16|UINT32|UINT64|INT16)/,
  /cannot cast to ONNX data type (8|16)\b/, // string, bfloat16
  /attribute 'type' of type TYPE_PROTO/, // Optional
  /training_mode/, // Dropout / BatchNormalization training outputs
  /domain 'ai.onnx.preview.training'/, // Adam, Adagrad, Momentum
  /op '(Bernoulli|RandomUniformLike)'/, // random
  /op '(GRU|LSTM|RNN|Loop|Scan|If|TfIdfVectorizer|DFT|STFT|MelWeightMatrix|GridSample|RoiAlign|BitShift|ConvInteger|QLinearConv)'/,
];

const names = nodeTestNames();

test("ONNX backend node tests: >= 800 pass, 0 mismatches, every refusal typed and accepted", {
  skip:
    names.length === 0
      ? `no ONNX node tests under ${NODE_TEST_DIR} (apt-get install libonnx-testdata)`
      : false,
}, async () => {
  const outcomes: [string, Outcome][] = [];
  for (const name of names) outcomes.push([name, await runNodeTest(name)]);
  const of = (kind: Outcome["kind"]) => outcomes.filter(([, o]) => o.kind === kind);
  assert.deepEqual(
    of("mismatch").map(([n, o]) => `${n}: ${"detail" in o ? o.detail : ""}`),
    [],
  );
  assert.deepEqual(
    of("crash").map(([n, o]) => `${n}: ${"detail" in o ? o.detail : ""}`),
    [],
  );
  const unexpected = of("refused").filter(
    ([, o]) => !ACCEPTED_REFUSALS.some((r) => r.test("detail" in o ? o.detail : "")),
  );
  assert.deepEqual(
    unexpected.map(([n, o]) => `${n}: ${"detail" in o ? o.detail : ""}`),
    [],
  );
  const passed = of("pass").length;
  console.log(`ONNX node tests: ${passed} pass, ${of("refused").length} refused of ${outcomes.length}`);
  assert.ok(passed >= 800, `${passed} pass`);
});
