import type { VerifyResult } from "../engine/verify.js";
import type { Graph } from "../ir/graph.js";
import { formatShape } from "../ir/graph.js";
import type { AttentionReport } from "../passes/index.js";

/** Fixed-width table for the terminal. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

export function formatAttentionTable(report: readonly AttentionReport[]): string {
  if (report.length === 0) return "no attention blocks found";
  const rows = report.map((b, i) => [
    String(i),
    [b.kind, ...b.traits].join("+"),
    b.fused ? (b.origin === "file" ? "in file" : "yes") : "no",
    b.path ?? "-",
    b.op ?? "-",
    b.mask ?? "-",
    String(b.nodes.length),
    // Why this path (fused) or why not fused, then what became of a rotary embedding on Q/K.
    [b.fused ? b.why : b.reason, b.rotary && `rotary ${b.rotary}`].filter(Boolean).join("; "),
  ]);
  const fused = report.filter((b) => b.fused).length;
  const inFile = report.filter((b) => b.fused && b.origin === "file").length;
  const note = inFile ? ` (${inFile} already fused in the file)` : "";
  return `${table(["#", "kind", "fused", "path", "op", "mask", "nodes", "why / reason / notes"], rows)}\n${fused} of ${report.length} attention blocks fused${note}`;
}

export function formatVerify(result: VerifyResult): string {
  const rows = result.blocks.map((b) => [
    b.id,
    b.path ?? "-",
    b.maxAbsDiff.toExponential(2),
    b.ok ? "ok" : "FAIL",
  ]);
  const outputs = result.outputs.map((o) => `${o.name} ${o.maxAbsDiff.toExponential(2)}`).join(", ");
  return [
    `verify (tolerance ${result.tolerance}): ${result.ok ? "every fused block matches the unfused graph" : "MISMATCH"}`,
    table(["block", "path", "max |diff|", ""], rows),
    `graph outputs max |diff|: ${outputs || "-"}`,
  ].join("\n");
}

export function opHistogram(graph: Graph): [string, number][] {
  const counts = new Map<string, number>();
  for (const n of graph.nodes) {
    const k = n.domain ? `${n.domain}.${n.opType}` : n.opType;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
}

export function describeGraph(graph: Graph) {
  return {
    name: graph.name,
    opsets: Object.fromEntries([...graph.opsets].map(([d, v]) => [d || "ai.onnx", v])),
    inputs: graph.inputs.map((i) => ({ name: i.name, dtype: i.dtype, shape: i.shape })),
    outputs: graph.outputs.map((o) => ({ name: o.name, dtype: o.dtype, shape: o.shape })),
    nodes: graph.nodes.length,
    initializers: graph.initializers.size,
    ops: Object.fromEntries(opHistogram(graph)),
  };
}

export function formatGraphSummary(graph: Graph): string {
  const d = describeGraph(graph);
  const lines = [
    `graph '${d.name}': ${d.nodes} nodes, ${d.initializers} initializers`,
    `opsets: ${Object.entries(d.opsets)
      .map(([k, v]) => `${k} ${v}`)
      .join(", ")}`,
    "inputs:",
    ...graph.inputs.map((i) => `  ${i.name}: ${i.dtype ?? "?"}${formatShape(i.shape)}`),
    "outputs:",
    ...graph.outputs.map((o) => `  ${o.name}: ${o.dtype ?? "?"}${formatShape(o.shape)}`),
    "ops:",
    ...opHistogram(graph).map(([k, v]) => `  ${String(v).padStart(5)}  ${k}`),
  ];
  return lines.join("\n");
}
