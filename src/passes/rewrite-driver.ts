/**
 * The one driver of pattern-rewrite passes: find each rule set's candidate roots through an index of the
 * op types its patterns can start at (derived from the patterns themselves, as tinygrad's PatternMatcher
 * derives its op index), try the rules at each, keep non-overlapping replacements (first wins), then apply
 * them all at once. A pass is its rules, a name prefix for the nodes it makes, the context its rewrites
 * need, and optionally a cheap extra filter on candidates.
 */
import type { Graph, Node } from "../ir/graph.js";
import { normalizeDomain } from "../ir/graph.js";
import type { GraphView } from "./graph-view.js";
import { applyRuleSet, type Pattern, type Replacement, type RuleOutcome, type RuleSet } from "./pattern.js";
import { applyReplacements, NodeFactory } from "./rewrite.js";

const opKey = (domain: string, opType: string) => `${normalizeDomain(domain)}::${opType}`;

/** The "domain::Op" keys a node matched at a pattern's root can have; undefined when it may be any node. */
export function rootOps(p: Pattern): Set<string> | undefined {
  switch (p.kind) {
    case "op":
      return new Set(p.ops.map((o) => opKey(p.domain, o)));
    case "alt":
      return union(p.options.map(rootOps));
    case "skip": {
      // Zero or more pass-through producers (ai.onnx ops) come first, so either may be the root.
      return union([rootOps(p.inner), new Set(p.through.map((o) => opKey("", o)))]);
    }
    case "any":
    case "const":
      return undefined;
  }
}

function union(sets: (Set<string> | undefined)[]): Set<string> | undefined {
  const out = new Set<string>();
  for (const s of sets) {
    if (!s) return undefined;
    for (const k of s) out.add(k);
  }
  return out;
}

/** Whether `node` may be the root of some rule of the set (the index; undefined = every node). */
export function rootIndex<C>(rules: RuleSet<C>): (node: Node) => boolean {
  const keys = union(rules.map((r) => rootOps(r.pattern)));
  return keys ? (node) => keys.has(opKey(node.domain, node.opType)) : () => true;
}

export interface RewritePass<C> {
  rules: RuleSet<C>;
  /** New nodes of the replacement rooted at node n are named under `${n.name}/${prefix}`. */
  prefix: string;
  /** The context a rewrite rooted at `node` gets (its factory collects the new nodes and constants). */
  context(node: Node, factory: NodeFactory): C;
  /** A cheap extra test on candidates the root index let through. */
  accept?(node: Node): boolean;
  /**
   * The candidates, in order, when the pass finds them itself (attention starts from each Softmax and
   * walks to its MatMul with V); still filtered by the root index. Default: every node of the graph.
   */
  roots?: readonly Node[];
}

export interface RewriteOutcome extends RuleOutcome {
  /** The candidate root node the rules were tried at. */
  node: Node;
  /** False when a replacement was found but overlapped an earlier one. */
  applied: boolean;
}

/** Runs a pass over the graph (in place); returns one outcome per candidate root, in graph order. */
export function runRewritePass<C>(graph: Graph, view: GraphView, pass: RewritePass<C>): RewriteOutcome[] {
  const isRoot = rootIndex(pass.rules);
  const replacements: Replacement[] = [];
  const outcomes: RewriteOutcome[] = [];
  const taken = new Set<Node>();
  for (const node of pass.roots ?? graph.nodes) {
    if (!isRoot(node) || !node.outputs[0] || (pass.accept && !pass.accept(node))) continue;
    const factory = new NodeFactory(graph, `${node.name}/${pass.prefix}`);
    const outcome = applyRuleSet(pass.rules, node.outputs[0], view, pass.context(node, factory));
    const r = outcome.replacement;
    // Real graphs never give overlapping matches; should two share a node, the first one wins.
    const applied = !!r && !r.remove.some((n) => taken.has(n));
    if (r && applied) {
      for (const n of r.remove) taken.add(n);
      // Rewrites either return their new nodes or leave them in the factory they were handed.
      replacements.push({
        ...r,
        add: [...r.add, ...factory.nodes],
        initializers: [...(r.initializers ?? []), ...factory.initializers],
      });
    }
    outcomes.push({ ...outcome, node, applied });
  }
  if (replacements.length) applyReplacements(graph, replacements);
  return outcomes;
}

/** A fusion pass's verdict on one candidate root node (the node whose output the fused op takes over). */
export interface FusionOutcome {
  node: string;
  fused: boolean;
  reason?: string;
}

/**
 * A pass's outcomes as verdicts: one per candidate whose pattern matched (fused, or the reason it was not);
 * `overlap` names what a matched replacement lost to when an earlier one took its nodes.
 */
export function fusionOutcomes(outcomes: readonly RewriteOutcome[], overlap: string): FusionOutcome[] {
  return outcomes
    .filter((o) => o.match || o.applied)
    .map((o) =>
      o.replacement && o.applied
        ? { node: o.node.name, fused: true }
        : { node: o.node.name, fused: false, reason: o.reason ?? overlap },
    );
}
