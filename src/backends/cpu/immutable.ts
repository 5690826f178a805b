/**
 * Arrays the engine promises never to write again: initializers of a planned graph. Kernels may cache
 * derived copies of them (e.g. a weight copied into shared memory for worker threads) keyed by the array;
 * any other array may be rewritten in place by its owner between runs and must not be cached.
 */
const immutable = new WeakSet<object>();

export function markImmutable(data: ArrayBufferView): void {
  immutable.add(data);
}

export function isImmutable(data: ArrayBufferView): boolean {
  return immutable.has(data);
}
