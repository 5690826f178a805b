// Every op family registers itself here; importing this module makes all ops available.
// One line per family file — keep the list sorted.
export { findOp, getOp, registeredOps } from "./registry.js";
