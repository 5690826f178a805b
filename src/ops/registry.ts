import { OpError, UnsupportedOpError } from "../errors.js";
import type { Attribute, Dim, Node, ValueType } from "../ir/graph.js";
import { normalizeDomain } from "../ir/graph.js";
import type { Tensor } from "../ir/tensor.js";
import type { OpCompute } from "./compute.js";
import { implementedSince } from "./opset-support.js";

/** What an op sees when it runs or infers types. */
export interface OpContext {
  node: Node;
  /** Opset version in force for the node's domain (e.g. 17 for ai.onnx in an opset-17 model). */
  opset: number;
  /** The GEMM/attention primitives and output allocator to use; the reference's when absent. */
  compute?: OpCompute;
}

export interface TypeContext extends OpContext {
  /** Input types; undefined for omitted optional inputs or unknown values. */
  inputs: (ValueType | undefined)[];
  /** The input's value when known before running (initializer or folded constant), for Reshape, Slice… */
  constant(index: number): Tensor | undefined;
  /**
   * A small integer input known element by element as dims (numbers or symbols), when it is not a constant:
   * a shape computed from Shape() of a value with symbolic dims. Undefined when unknown.
   */
  symbolic?(index: number): Dim[] | undefined;
}

/**
 * One ONNX operator: its type rule and its reference semantics. Reference kernels follow the ONNX spec
 * for every attribute and opset version; backends may register faster kernels with the same contract.
 */
export interface OpDef {
  opType: string;
  /** "" for ai.onnx (default). */
  domain?: string;
  /** Output dtypes and (possibly symbolic) shapes; shape undefined when it cannot be known statically. */
  inferTypes(ctx: TypeContext): ValueType[];
  /** Inputs are undefined where the node omits an optional input. */
  run(ctx: OpContext, inputs: (Tensor | undefined)[]): Tensor[];
}

const registry = new Map<string, OpDef>();

const key = (domain: string, opType: string) => `${normalizeDomain(domain)}::${opType}`;

export function registerOps(defs: readonly OpDef[]): void {
  for (const d of defs) registry.set(key(d.domain ?? "", d.opType), d);
}

/** Ops found by type in any domain: TensorRT's ONNX parser ignores the domain of a plugin node. */
const anyDomain = new Map<string, OpDef>();

/** Register an op under its type in every domain that has no op of that name (exact registrations win). */
export function registerAnyDomain(opType: string, def: OpDef): void {
  anyDomain.set(opType, def);
}

export function findOp(domain: string, opType: string): OpDef | undefined {
  return registry.get(key(domain, opType)) ?? anyDomain.get(opType);
}

export function getOp(node: Pick<Node, "domain" | "opType" | "name">): OpDef {
  const def = findOp(node.domain, node.opType);
  if (!def) {
    throw new UnsupportedOpError(
      node,
      `no implementation for op '${node.opType}' in domain '${node.domain || "ai.onnx"}'`,
    );
  }
  return def;
}

/**
 * The op a node runs with at the model's opset for its domain: unknown ops, and ai.onnx ops whose schema at
 * that opset predates what mhafuse implements, are UnsupportedOpError naming both versions.
 */
export function resolveOp(node: Pick<Node, "domain" | "opType" | "name">, opset: number): OpDef {
  const def = getOp(node);
  if (normalizeDomain(node.domain) === "") {
    const since = implementedSince(node.opType);
    if (opset < since)
      throw new UnsupportedOpError(
        node,
        `the model's opset ${opset} selects ${node.opType}'s schema from before opset ${since}, whose ` +
          `semantics mhafuse does not implement (it implements ${node.opType} from opset ${since}); ` +
          "re-export the model with a newer opset",
      );
  }
  return def;
}

export function registeredOps(): string[] {
  return [...registry.keys(), ...[...anyDomain.keys()].map((t) => `*::${t}`)].sort();
}

// ---- attribute access -------------------------------------------------------------------------------

function attr(node: Node, name: string): Attribute | undefined {
  return node.attrs[name];
}

function wrongType(node: Node, name: string, want: string, got: Attribute): never {
  throw new OpError(node, `attribute '${name}' must be ${want}, got ${got.type}`);
}

function missing(node: Node, name: string): never {
  throw new OpError(node, `required attribute '${name}' is missing`);
}

export function attrInt(node: Node, name: string, fallback?: number): number {
  const a = attr(node, name);
  if (!a) return fallback ?? missing(node, name);
  if (a.type === "int") return a.value;
  return wrongType(node, name, "an int", a);
}

export function attrFloat(node: Node, name: string, fallback?: number): number {
  const a = attr(node, name);
  if (!a) return fallback ?? missing(node, name);
  if (a.type === "float" || a.type === "int") return a.value;
  return wrongType(node, name, "a float", a);
}

export function attrString(node: Node, name: string, fallback?: string): string {
  const a = attr(node, name);
  if (!a) return fallback ?? missing(node, name);
  if (a.type === "string") return a.value;
  return wrongType(node, name, "a string", a);
}

export function attrInts(node: Node, name: string, fallback?: number[]): number[] {
  const a = attr(node, name);
  if (!a) return fallback ?? missing(node, name);
  if (a.type === "ints") return a.value;
  if (a.type === "int") return [a.value];
  return wrongType(node, name, "a list of ints", a);
}

export function attrFloats(node: Node, name: string, fallback?: number[]): number[] {
  const a = attr(node, name);
  if (!a) return fallback ?? missing(node, name);
  if (a.type === "floats") return a.value;
  if (a.type === "ints") return a.value;
  return wrongType(node, name, "a list of floats", a);
}

export function attrTensor(node: Node, name: string): Tensor | undefined {
  const a = attr(node, name);
  if (!a) return undefined;
  if (a.type === "tensor") return a.value;
  return wrongType(node, name, "a tensor", a);
}

export function hasAttr(node: Node, name: string): boolean {
  return name in node.attrs;
}
