import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { InputError } from "../src/errors.js";
import { readNpy, writeNpy } from "../src/io/npy.js";
import { readNpz, writeNpz } from "../src/io/npz.js";
import { floatToHalf, halfToFloat } from "../src/ir/float16.js";
import { Tensor } from "../src/ir/tensor.js";
import { loadModel } from "../src/onnx/index.js";
import { BERT_EAGER, randomTensor } from "./qkv-helpers.js";

const REPO = fileURLToPath(new URL("../", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "mhafuse-qkv-cli-"));

function cli(...args: string[]): string {
  return execFileSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", "pack-weights", ...args], {
    cwd: REPO,
    encoding: "utf8",
  });
}

test("npy: header layout, float16/int64 round trip, Fortran order", () => {
  const t = new Tensor("float32", [1, 2, 3, 4, 5, 6], [2, 3]);
  const bytes = writeNpy(t);
  assert.equal(new TextDecoder("latin1").decode(bytes.subarray(1, 6)), "NUMPY");
  assert.equal((10 + new DataView(bytes.buffer).getUint16(8, true)) % 64, 0); // data 64-byte aligned
  assert.match(
    new TextDecoder().decode(bytes.subarray(10, 80)),
    /'descr': '<f4', 'fortran_order': False, 'shape': \(2, 3\)/,
  );
  assert.deepEqual(readNpy(bytes).toNumbers(), [1, 2, 3, 4, 5, 6]);
  const h = readNpy(writeNpy(new Tensor("float16", new Uint16Array([0x3c00, 0xc000]), [2])));
  assert.deepEqual(h.toNumbers(), [1, -2]);
  assert.deepEqual(readNpy(writeNpy(new Tensor("int64", [5n, -7n], [2]))).toNumbers(), [5, -7]);
  // The same 2×3 int32 array stored column-major: data 0,3,1,4,2,5.
  const header = "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3), }";
  const padded = `${header}${" ".repeat(128 - 10 - header.length - 1)}\n`;
  const f = new Uint8Array(10 + padded.length + 24);
  f.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(f.buffer).setUint16(8, padded.length, true);
  f.set(new TextEncoder().encode(padded), 10);
  f.set(new Uint8Array(new Int32Array([0, 3, 1, 4, 2, 5]).buffer), 10 + padded.length);
  assert.deepEqual(readNpy(f).toNumbers(), [0, 1, 2, 3, 4, 5]);
});

test("npz: DEFLATED round trip; numpy's savez (STORED, zip64) and savez_compressed files; corrupt input", () => {
  const arrays = { a: new Tensor("float32", [1.5, -2], [2]), b: new Tensor("int32", [7, 8, 9], [3, 1]) };
  const back = readNpz(writeNpz(arrays));
  assert.deepEqual([...back.keys()], ["a", "b"]);
  assert.deepEqual(back.get("b")!.dims, [3, 1]);
  assert.deepEqual(back.get("a")!.toNumbers(), [1.5, -2]);
  // Written by numpy 2.4: np.savez (STORED entries with zip64 extra fields) and np.savez_compressed.
  const fixture = (f: string) => new Uint8Array(readFileSync(new URL(`./fixtures/${f}`, import.meta.url)));
  const stored = readNpz(fixture("numpy_savez.npz"));
  assert.deepEqual(stored.get("a")!.dims, [2, 3]);
  assert.deepEqual(stored.get("a")!.toNumbers(), [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(stored.get("b")!.toNumbers(), [1, -2, 3]);
  const deflated = readNpz(fixture("numpy_savez_compressed.npz"));
  assert.equal(deflated.get("w")!.type, "float16");
  const linspace = Array.from({ length: 12 }, (_, i) => halfToFloat(floatToHalf(-1 + (2 * i) / 11)));
  assert.deepEqual(deflated.get("w")!.toNumbers(), linspace);
  assert.deepEqual(deflated.get("c")!.toNumbers(), [1, 2, 3, 4]); // Fortran order read back row-major
  assert.throws(() => readNpz(new Uint8Array([1, 2, 3, 4])), InputError);
});

test("CLI pack-weights: .npy in, .npz out, packed layout per the formula", () => {
  const E = 6;
  const N = 3;
  const H = 2;
  const w = ["wq", "wk", "wv"].map((_k, i) => randomTensor("float32", [E, E], 40 + i));
  const b = ["bq", "bk", "bv"].map((_k, i) => randomTensor("float32", [E], 50 + i));
  const paths = [...["wq", "wk", "wv"], ...["bq", "bk", "bv"]].map((k) => join(dir, `${k}.npy`));
  [...w, ...b].forEach((t, i) => {
    writeFileSync(paths[i]!, writeNpy(t));
  });
  const out = join(dir, "packed.npz");
  cli(
    "--wq",
    paths[0]!,
    "--wk",
    paths[1]!,
    "--wv",
    paths[2]!,
    "--bq",
    paths[3]!,
    "--bk",
    paths[4]!,
    "--bv",
    paths[5]!,
    "--heads",
    String(N),
    "-o",
    out,
  );
  const got = readNpz(readFileSync(out));
  const weight = got.get("weight")!;
  const bias = got.get("bias")!;
  assert.deepEqual(weight.dims, [E, 3 * E]);
  for (let i = 0; i < E; i++)
    for (let n = 0; n < N; n++)
      for (let t = 0; t < 3; t++)
        for (let h = 0; h < H; h++) {
          assert.equal(
            weight.getNumber(i * 3 * E + n * 3 * H + t * H + h),
            w[t]!.getNumber((n * H + h) * E + i),
          );
          assert.equal(bias.getNumber(n * 3 * H + t * H + h), b[t]!.getNumber(n * H + h));
        }
  // .npy output: weight and <name>_bias.npy.
  const npyOut = join(dir, "packed.npy");
  cli("--wq", paths[0]!, "--wk", paths[1]!, "--wv", paths[2]!, "--heads", String(N), "-o", npyOut);
  assert.deepEqual(readNpy(readFileSync(npyOut)).toNumbers(), weight.toNumbers());
  assert.ok(
    readNpy(readFileSync(join(dir, "packed_bias.npy")))
      .toNumbers()
      .every((v) => v === 0),
  );
});

test("CLI pack-weights --from-model bert_eager.onnx packs each layer's (transposed) MatMul weights", async () => {
  const out = join(dir, "bert.npz");
  const log = cli("--from-model", fileURLToPath(BERT_EAGER), "-o", out);
  assert.match(log, /layer0: .*query\/MatMul/);
  const got = readNpz(readFileSync(out));
  assert.deepEqual([...got.keys()].sort(), ["layer0.bias", "layer0.weight", "layer1.bias", "layer1.weight"]);
  // Independent check on layer 1: ONNX MatMul weights are [in, out] = Wᵀ, so packed[i, n, t, h] = M_t[i, n·H + h].
  const model = await loadModel(fileURLToPath(BERT_EAGER));
  const matmul = (t: string) =>
    model.graph.nodes.find((n) => n.name === `/m/encoder/layer.1/attention/self/${t}/MatMul`)!;
  const mats = ["query", "key", "value"].map((t) => model.graph.initializers.get(matmul(t).inputs[1]!)!);
  const E = 64;
  const N = 4; // the fixture's config: 4 heads of 16
  const H = 16;
  const weight = got.get("layer1.weight")!;
  assert.deepEqual(weight.dims, [E, 3 * E]);
  for (let i = 0; i < E; i += 7)
    for (let n = 0; n < N; n++)
      for (let t = 0; t < 3; t++)
        for (let h = 0; h < H; h += 3)
          assert.equal(
            weight.getNumber(i * 3 * E + n * 3 * H + t * H + h),
            mats[t]!.getNumber(i * E + n * H + h),
          );
});

test("CLI errors: missing --heads", () => {
  assert.throws(
    () =>
      cli(
        "--wq",
        join(dir, "wq.npy"),
        "--wk",
        join(dir, "wk.npy"),
        "--wv",
        join(dir, "wv.npy"),
        "-o",
        join(dir, "x.npz"),
      ),
    (e: { stderr?: string }) => /--heads N is required/.test(String(e.stderr)),
  );
});
