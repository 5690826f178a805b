/**
 * `mhafuse report`: one self-contained HTML page (inline CSS and SVG, no script, no network) — the model's
 * summary, every attention block (kind, traits, fused or not, path, reason), a drawing of one block before and
 * after fusion, and, when timings are given, time per op type.
 */
import type { Graph } from "../ir/graph.js";
import type { AttentionReport } from "../passes/attention/report.js";
import { drawNodes, escapeXml as esc, nodesNamed, producersOf } from "./block-drawing.js";

export interface OpTiming {
  opType: string;
  calls: number;
  ms: number;
}

export interface ReportInput {
  title: string;
  original: Graph;
  fused: Graph;
  report: readonly AttentionReport[];
  timings?: OpTiming[];
}

function histogram(graph: Graph): [string, number][] {
  const counts = new Map<string, number>();
  for (const n of graph.nodes) {
    const key = n.domain ? `${n.domain}.${n.opType}` : n.opType;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
}

function summary(r: ReportInput): string {
  const g = r.original;
  const params = [...g.initializers.values()].reduce((n, t) => n + t.size, 0);
  const io = (vs: Graph["inputs"]) =>
    vs
      .map(
        (v) =>
          `<li><code>${esc(v.name)}</code> ${v.dtype ?? "?"}[${(v.shape ?? []).map((d) => d ?? "?").join(", ")}]</li>`,
      )
      .join("");
  const opsets = [...g.opsets].map(([d, v]) => `${d || "ai.onnx"} ${v}`).join(", ");
  const fusedCount = r.report.filter((b) => b.fused).length;
  return `<section id="summary"><h2>Model</h2><dl>
<dt>nodes</dt><dd>${g.nodes.length} → ${r.fused.nodes.length} after fusion</dd>
<dt>parameters</dt><dd>${(params / 1e6).toFixed(2)} M</dd>
<dt>opsets</dt><dd>${esc(opsets)}</dd>
<dt>attention blocks</dt><dd>${fusedCount} of ${r.report.length} fused</dd></dl>
<div class="cols"><div><h3>Inputs</h3><ul>${io(g.inputs)}</ul></div><div><h3>Outputs</h3><ul>${io(g.outputs)}</ul></div>
<div><h3>Ops</h3><table class="ops">${histogram(g)
    .map(([op, n]) => `<tr><td>${esc(op)}</td><td>${n}</td></tr>`)
    .join("")}</table></div></div></section>`;
}

function blocks(r: ReportInput): string {
  const rows = r.report
    .map(
      (
        b,
        i,
      ) => `<tr class="${b.fused ? "yes" : "no"}" data-block="${esc(b.id)}"><td>${i}</td><td><code>${esc(b.id)}</code></td>
<td>${b.kind}${b.traits.length ? ` <span class="traits">${b.traits.join(", ")}</span>` : ""}</td><td>${b.fused ? (b.origin === "file" ? "in the file" : "fused") : "not fused"}</td>
<td>${b.path ?? "–"}</td><td>${esc(b.op ?? "–")}</td><td>${esc(b.mask ?? "–")}</td><td>${b.numHeads ?? "?"}×${b.headSize ?? "?"}</td><td>${esc((b.fused ? b.why : b.reason) ?? "")}</td><td>${esc(b.rotary ?? "–")}</td></tr>`,
    )
    .join("");
  return `<section id="blocks"><h2>Attention blocks</h2><table class="blocks"><thead><tr><th>#</th><th>block</th><th>kind</th><th>fused</th><th>path</th><th>op</th><th>mask</th><th>heads×size</th><th>why / reason</th><th>rotary</th></tr></thead><tbody>${
    rows || `<tr><td colspan="10">no attention block found</td></tr>`
  }</tbody></table></section>`;
}

function drawing(r: ReportInput): string {
  const block = r.report.find((b) => b.fused && b.output) ?? r.report[0];
  if (!block) return "";
  const before = nodesNamed(r.original, block.nodes);
  // The replacement ends where it reads a value the original graph computed outside the block.
  const inside = new Set(before.flatMap((n) => n.outputs));
  const outside = new Set(
    [...r.original.nodes.flatMap((n) => n.outputs), ...r.original.inputs.map((i) => i.name)].filter(
      (v) => v && !inside.has(v),
    ),
  );
  const after = block.fused && block.output ? producersOf(r.fused, block.output, outside, 40) : [];
  return `<section id="drawing"><h2>Block <code>${esc(block.id)}</code> before and after fusion</h2><div class="cols">
<figure>${drawNodes(before, `before: ${before.length} nodes`)}</figure>
<figure>${after.length ? drawNodes(after, `after: ${after.length} nodes (${block.path})`) : `<p>not fused: ${esc(block.reason ?? "")}</p>`}</figure>
</div></section>`;
}

function timings(r: ReportInput): string {
  if (!r.timings?.length) return "";
  const total = r.timings.reduce((s, t) => s + t.ms, 0);
  const rows = [...r.timings]
    .sort((a, b) => b.ms - a.ms)
    .map(
      (
        t,
      ) => `<tr><td>${esc(t.opType)}</td><td>${t.calls}</td><td>${t.ms.toFixed(2)}</td><td>${((100 * t.ms) / total).toFixed(1)}%</td>
<td><div class="bar" style="width:${((200 * t.ms) / total).toFixed(0)}px"></div></td></tr>`,
    )
    .join("");
  return `<section id="timings"><h2>Time per op type (fused graph, one run)</h2><table class="ops"><thead><tr><th>op</th><th>calls</th><th>ms</th><th>share</th><th></th></tr></thead><tbody>${rows}</tbody></table><p>total ${total.toFixed(2)} ms</p></section>`;
}

const STYLE = `body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1d232b;background:#fff}h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #dde}
table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
tr.yes td:nth-child(4){color:#16794c;font-weight:600}tr.no td:nth-child(4){color:#b3261e;font-weight:600}.traits{color:#666;font-size:12px}
.cols{display:flex;gap:32px;flex-wrap:wrap;align-items:flex-start}dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{color:#666}dd{margin:0}
svg.block .node rect{fill:#eef3fb;stroke:#4a6fa5}svg.block .node.fused rect{fill:#e3f5ea;stroke:#16794c}svg.block text{font:12px system-ui;text-anchor:middle}
svg.block .caption{text-anchor:start;fill:#555}svg.block .edge{stroke:#8a96a8;stroke-width:1.3}.bar{height:10px;background:#4a6fa5}code{font-size:12px}`;

export function renderReport(r: ReportInput): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(r.title)}</title><style>${STYLE}</style></head>
<body><h1>mhafuse report: ${esc(r.title)}</h1>${summary(r)}${blocks(r)}${drawing(r)}${timings(r)}</body></html>
`;
}
