/**
 * Awaiting is not yielding: a kernel that did its work synchronously (a one-slice native GEMM) hands back a
 * settled promise, and awaiting it runs only microtasks — timers and I/O still wait. The CPU run loops (the
 * plain one in prepared-graph.ts and the bound plan) restart their event-loop slice clock only when the event
 * loop really turned during the await, which this tells them: an immediate set before the await ran.
 */
export async function awaitNoticingTurn<T>(p: Promise<T>): Promise<{ value: T; turned: boolean }> {
  let turned = false;
  const sentinel = setImmediate(() => {
    turned = true;
  });
  try {
    const value = await p;
    return { value, turned };
  } finally {
    clearImmediate(sentinel);
  }
}
