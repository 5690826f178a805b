// The CPU pool's worker is cpu-worker.ts; this entry stays so that a build listing it (the compiled-JS
// tests) still emits the worker next to the module that starts it.
import "./cpu-worker.js";
