import type { Node } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import type { GraphView } from "./graph-view.js";

/**
 * A small pattern language over the IR, in the spirit of tinygrad's `PatternMatcher`: patterns are data
 * (op types, input sub-patterns, named captures, alternatives, skippable pass-through nodes, constant
 * predicates), a rule pairs a pattern with a rewrite, and rules are combined into rule sets. Matching is
 * pure: it never edits the graph, so every match of a pass is found before any rewrite is applied.
 */

/** Extra condition on a matched node; a string is the reason it does not hold (goes into reports). */
export type NodeCheck = (node: Node, view: GraphView, bound: Bindings) => true | string;

export type Pattern = OpPattern | AnyPattern | ConstPattern | AltPattern | SkipPattern;

export interface OpPattern {
  kind: "op";
  ops: readonly string[];
  domain: string;
  /** Patterns for the node's inputs, in order; omitted = inputs are not looked at. */
  inputs?: readonly Pattern[];
  /** Binary op whose two inputs may come in either order. */
  commutative: boolean;
  /** Binds the node's first output value (and the node) under this name. */
  capture?: string;
  check?: NodeCheck;
  label: string;
}

export interface AnyPattern {
  kind: "any";
  capture?: string;
}

export interface ConstPattern {
  kind: "const";
  capture?: string;
  predicate?: (t: Tensor) => boolean;
  label: string;
}

export interface AltPattern {
  kind: "alt";
  options: readonly Pattern[];
  label: string;
}

/** Zero or more producers of the listed op types (following input 0) before the inner pattern. */
export interface SkipPattern {
  kind: "skip";
  through: readonly string[];
  inner: Pattern;
}

export interface Bindings {
  /** capture name → value name */
  readonly values: ReadonlyMap<string, string>;
  /** capture name → node (op captures only) */
  readonly nodes: ReadonlyMap<string, Node>;
  /** Every node the match went through, in visiting order. */
  readonly matched: readonly Node[];
}

export interface Match extends Bindings {
  /** The value the pattern was matched at. */
  root: string;
}

export interface MatchFailure {
  value: string;
  node?: Node;
  pattern: string;
  reason: string;
  /** How many nodes matched before the failure: the deepest failure explains a near miss best. */
  depth: number;
}

// ---- constructors ---------------------------------------------------------------------------------------

export interface OpOptions {
  domain?: string;
  capture?: string;
  commutative?: boolean;
  check?: NodeCheck;
  label?: string;
}

export function op(
  types: string | readonly string[],
  inputs?: readonly Pattern[],
  opts: OpOptions = {},
): OpPattern {
  const ops = typeof types === "string" ? [types] : types;
  return {
    kind: "op",
    ops,
    domain: opts.domain ?? "",
    inputs,
    commutative: opts.commutative ?? false,
    capture: opts.capture,
    check: opts.check,
    label: opts.label ?? opts.capture ?? ops.join("|"),
  };
}

export function any(capture?: string): AnyPattern {
  return { kind: "any", capture };
}

export function constant(
  capture?: string,
  predicate?: (t: Tensor) => boolean,
  label = "constant",
): ConstPattern {
  return { kind: "const", capture, predicate, label };
}

export const isScalar = (t: Tensor): boolean => t.size === 1;
export const isScalarValue =
  (v: number) =>
  (t: Tensor): boolean =>
    t.size === 1 && t.getNumber(0) === v;

export function scalarConstant(capture?: string): ConstPattern {
  return constant(capture, isScalar, "scalar constant");
}

export function oneOf(label: string, ...options: Pattern[]): AltPattern {
  return { kind: "alt", options, label };
}

/** Pass-through nodes an exporter may leave around (inference Dropout, Identity, float Cast). */
export const PASS_THROUGH = ["Dropout", "Identity", "Cast"] as const;

export function skippable(inner: Pattern, through: readonly string[] = PASS_THROUGH): SkipPattern {
  return { kind: "skip", through, inner };
}

// ---- matching -------------------------------------------------------------------------------------------

interface State {
  values: Map<string, string>;
  nodes: Map<string, Node>;
  matched: Node[];
}

type Result = { ok: true; state: State } | { ok: false; failure: MatchFailure };

const copy = (s: State): State => ({
  values: new Map(s.values),
  nodes: new Map(s.nodes),
  matched: [...s.matched],
});

function fail(value: string, pattern: string, reason: string, state: State, node?: Node): Result {
  return { ok: false, failure: { value, node, pattern, reason, depth: state.matched.length } };
}

function deeper(a: MatchFailure | undefined, b: MatchFailure): MatchFailure {
  return !a || b.depth > a.depth ? b : a;
}

function bind(state: State, capture: string | undefined, value: string, node?: Node): State | string {
  if (!capture) return state;
  const prior = state.values.get(capture);
  if (prior !== undefined && prior !== value)
    return `'${capture}' is '${prior}' elsewhere in the pattern, not '${value}'`;
  const next = copy(state);
  next.values.set(capture, value);
  if (node) next.nodes.set(capture, node);
  return next;
}

/** A float Cast is value-preserving enough to look through; casts to integers or bool are not. */
function isPassThrough(node: Node, through: readonly string[]): boolean {
  if (!through.includes(node.opType) || node.domain !== "") return false;
  if (node.opType !== "Cast") return true;
  const to = node.attrs.to;
  return to?.type === "int" && (to.value === 1 || to.value === 10 || to.value === 11);
}

function matchAt(p: Pattern, value: string, view: GraphView, state: State): Result {
  switch (p.kind) {
    case "any": {
      if (!value) return fail(value, "any", "input is omitted", state);
      const next = bind(state, p.capture, value);
      return typeof next === "string" ? fail(value, "any", next, state) : { ok: true, state: next };
    }
    case "const": {
      const t = view.constant(value);
      if (!t) {
        const node = view.producer.get(value);
        const what = node ? `${node.opType} '${node.name}'` : `'${value}'`;
        return fail(value, p.label, `${what} is not a constant`, state, node);
      }
      if (p.predicate && !p.predicate(t))
        return fail(value, p.label, `constant '${value}' does not qualify`, state);
      const next = bind(state, p.capture, value);
      return typeof next === "string" ? fail(value, p.label, next, state) : { ok: true, state: next };
    }
    case "alt": {
      let best: MatchFailure | undefined;
      for (const option of p.options) {
        const r = matchAt(option, value, view, state);
        if (r.ok) return r;
        best = deeper(best, r.failure);
      }
      return { ok: false, failure: best ?? { value, pattern: p.label, reason: "no alternatives", depth: 0 } };
    }
    case "skip": {
      let current = value;
      let s = state;
      let best: MatchFailure | undefined;
      for (let hops = 0; hops < 8; hops++) {
        const r = matchAt(p.inner, current, view, s);
        if (r.ok) return r;
        best = deeper(best, r.failure);
        const node = view.producer.get(current);
        if (!node || !isPassThrough(node, p.through) || !node.inputs[0]) break;
        s = copy(s);
        s.matched.push(node);
        current = node.inputs[0];
      }
      return { ok: false, failure: best! };
    }
    case "op":
      return matchOp(p, value, view, state);
  }
}

function matchOp(p: OpPattern, value: string, view: GraphView, state: State): Result {
  const node = view.producer.get(value);
  if (!node) {
    const what = view.constant(value)
      ? "a constant"
      : view.graphInputs.has(value)
        ? "a graph input"
        : "not produced";
    return fail(value, p.label, `expected ${p.ops.join(" or ")}, but '${value}' is ${what}`, state);
  }
  if (!p.ops.includes(node.opType) || node.domain !== p.domain) {
    return fail(value, p.label, `expected ${p.ops.join(" or ")}, got ${node.opType}`, state, node);
  }
  const bound = bind(state, p.capture, value, node);
  if (typeof bound === "string") return fail(value, p.label, bound, state, node);
  const withNode = copy(bound);
  withNode.matched.push(node);
  if (p.check) {
    const verdict = p.check(node, view, withNode);
    // The op type matched, so this failure is deeper than a type mismatch elsewhere: count the node.
    if (verdict !== true) return fail(value, p.label, verdict, withNode, node);
  }
  if (!p.inputs) return { ok: true, state: withNode };
  const orders: number[][] = [p.inputs.map((_, i) => i)];
  if (p.commutative && p.inputs.length === 2) orders.push([1, 0]);
  let best: MatchFailure | undefined;
  for (const order of orders) {
    let s: State = withNode;
    let failed: MatchFailure | undefined;
    for (let i = 0; i < p.inputs.length; i++) {
      const r = matchAt(p.inputs[i]!, node.inputs[order[i]!] ?? "", view, s);
      if (!r.ok) {
        failed = r.failure;
        break;
      }
      s = r.state;
    }
    if (!failed) return { ok: true, state: s };
    best = deeper(best, failed);
  }
  return { ok: false, failure: best! };
}

/** Matches `pattern` at the producer of `value`. */
export function match(pattern: Pattern, value: string, view: GraphView): Match | MatchFailure {
  const r = matchAt(pattern, value, view, { values: new Map(), nodes: new Map(), matched: [] });
  if (!r.ok) return r.failure;
  return { root: value, values: r.state.values, nodes: r.state.nodes, matched: r.state.matched };
}

export function isMatch(r: Match | MatchFailure): r is Match {
  return "root" in r;
}

/** "Softmax 'x' broke pattern 'probs': expected …" — what a report shows for a declined block. */
export function describeFailure(f: MatchFailure): string {
  const where = f.node ? `${f.node.opType} '${f.node.name}'` : `value '${f.value}'`;
  return `${where} broke pattern '${f.pattern}': ${f.reason}`;
}

// ---- rules ----------------------------------------------------------------------------------------------

/** What a rewrite produces: nodes to add and nodes to drop (leftovers are removed by dead-node removal). */
export interface Replacement {
  add: Node[];
  remove: Node[];
  initializers?: [string, Tensor][];
}

export interface Decline {
  decline: string;
}

export function isDecline(r: Replacement | Decline): r is Decline {
  return "decline" in r;
}

export interface Rule<C> {
  name: string;
  pattern: Pattern;
  rewrite(match: Match, ctx: C): Replacement | Decline;
}

export type RuleSet<C> = readonly Rule<C>[];

export interface RuleOutcome {
  rule?: string;
  match?: Match;
  replacement?: Replacement;
  /** Why no rule applied: the deepest pattern failure or the rewrite's decline. */
  reason?: string;
}

/** Tries each rule of the set at `value`; the first that matches and does not decline wins. */
export function applyRuleSet<C>(rules: RuleSet<C>, value: string, view: GraphView, ctx: C): RuleOutcome {
  let bestFailure: MatchFailure | undefined;
  let decline: RuleOutcome | undefined;
  for (const rule of rules) {
    const m = match(rule.pattern, value, view);
    if (!isMatch(m)) {
      bestFailure = deeper(bestFailure, m);
      continue;
    }
    const r = rule.rewrite(m, ctx);
    if (isDecline(r)) {
      decline ??= { rule: rule.name, match: m, reason: r.decline };
      continue;
    }
    return { rule: rule.name, match: m, replacement: r };
  }
  return decline ?? { reason: bestFailure ? describeFailure(bestFailure) : "no rule" };
}
