// `mhafuse report`: the page is self-contained, names every attention block, draws one block before and after
// fusion and, with inputs, time per op type. Loaded in headless Chromium (Debian's chromium through
// playwright-core, installed by .ci/run): no console errors, every block shown, a screenshot with content.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";
import { loadModelSync } from "../src/onnx/index.js";
import { optimizeGraph } from "../src/passes/index.js";
import { FIXTURES, REPO } from "./helpers.js";

const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find(existsSync);
const MODELS = ["bert_eager", "bart_sdpa"];

function report(model: string, ...extra: string[]): string {
  const out = join(mkdtempSync(join(tmpdir(), "mhafuse-report-")), `${model}.html`);
  const r = spawnSync(
    process.execPath,
    [join(REPO, "dist/cli/main.js"), "report", join(FIXTURES, "onnx", `${model}.onnx`), "-o", out, ...extra],
    { encoding: "utf8" },
  );
  assert.equal(r.status, 0, r.stderr);
  return out;
}

test("the report is one self-contained page with every block, the drawings and op timings", () => {
  const file = report("bert_eager", "--inputs", join(FIXTURES, "onnx", "bert_eager.io.json"));
  const html = readFileSync(file, "utf8");
  assert.doesNotMatch(html, /<script|<link|src="http|href="http/, "no scripts, no external resources");
  const { report: blocks } = optimizeGraph(loadModelSync(join(FIXTURES, "onnx", "bert_eager.onnx")).graph);
  for (const b of blocks) assert.ok(html.includes(`data-block="${b.id}"`), b.id);
  assert.equal((html.match(/<svg /g) ?? []).length, 2, "before and after");
  assert.match(html, /mhafuse\.QKVToContext/);
  assert.match(html, /Time per op type/);
});

test("a decoder's report shows op, mask, why and the folded rotary per block", () => {
  const html = readFileSync(report("phi3_eager"), "utf8");
  assert.match(html, /<th>why \/ reason<\/th><th>rotary<\/th>/);
  assert.match(html, /mhafuse\.Attention/);
  assert.match(html, /not the packed op: causal/);
  assert.match(html, /folded into com\.microsoft\.RotaryEmbedding on Q, K, rotary dim 16 of 16/);
});

test("Chromium loads the report without console errors and shows every block", {
  skip: CHROMIUM ? false : "no chromium (apt-get install chromium)",
}, async () => {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  try {
    for (const model of MODELS) {
      const file = report(model);
      const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
      const errors: string[] = [];
      page.on("console", (m) => {
        if (m.type() === "error") errors.push(m.text());
      });
      page.on("pageerror", (e) => errors.push(String(e)));
      await page.goto(pathToFileURL(file).href);
      assert.deepEqual(errors, [], model);
      const { report: blocks } = optimizeGraph(loadModelSync(join(FIXTURES, "onnx", `${model}.onnx`)).graph);
      const shown = await page.$$eval("tr[data-block]", (rows) =>
        rows.map((r) => r.getAttribute("data-block")),
      );
      assert.deepEqual(
        shown,
        blocks.map((b) => b.id),
        model,
      );
      assert.ok(blocks.length > 0, model);
      // The drawing is on screen with boxes in it, and its screenshot is not a blank image.
      const boxes = await page.$$eval("svg.block rect", (r) => r.length);
      assert.ok(boxes >= 5, `${model}: ${boxes} boxes`);
      const shot = await page.locator("#drawing").screenshot();
      assert.ok(shot.length > 8000, `${model}: screenshot of ${shot.length} bytes`);
      await page.close();
    }
  } finally {
    await browser.close();
  }
});
