/** Where the shared fixtures and the repository live, seen from the tests. */
import { fileURLToPath } from "node:url";

/** /work/shared/fixtures seen from a worktree next to shared/ (the repository's ../shared). */
export const FIXTURES = fileURLToPath(new URL("../../../shared/fixtures/", import.meta.url));
export const REPO = fileURLToPath(new URL("../../", import.meta.url));
