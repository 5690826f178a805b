/**
 * The session's memory cap, checked at create time before anything runs: the initializers' bytes, and each
 * value whose size the type rules know before run time (a constant-only `Expand` to 1e12 elements is known
 * to need 4 TB without computing it). Either past the cap: MODEL_TOO_LARGE, naming the tensor.
 */
import { ModelTooLargeError } from "../errors.js";
import { bytesPerElement } from "../ir/dtype.js";
import type { Graph } from "../ir/graph.js";
import { staticElementCount } from "../limits.js";
import { analyzeGraph } from "../passes/types.js";

export function checkMemory(graph: Graph, limitBytes: number): void {
  let total = 0;
  for (const t of graph.initializers.values()) total += t.data.byteLength;
  if (total > limitBytes) {
    throw new ModelTooLargeError(
      `the model's weights take ${total} bytes, more than the session's memory limit of ${limitBytes} (option memoryLimitBytes)`,
      { expected: `at most ${limitBytes} bytes` },
    );
  }
  const producer = new Map<string, string>();
  for (const n of graph.nodes) for (const o of n.outputs) producer.set(o, n.name);
  for (const [name, type] of analyzeGraph(graph).types) {
    const count = staticElementCount(type.shape);
    if (count === undefined) continue;
    const bytes = count * bytesPerElement(type.dtype);
    if (bytes > limitBytes) {
      const node = producer.get(name);
      throw new ModelTooLargeError(
        `value '${name}'${node ? ` (node '${node}')` : ""} is ${type.dtype}[${type.shape!.join(",")}], ${bytes} bytes, more than the session's memory limit of ${limitBytes} (option memoryLimitBytes)`,
        { input: name, ...(node ? { node } : {}), expected: `at most ${limitBytes} bytes per tensor` },
      );
    }
  }
}
