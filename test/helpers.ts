// The shared helpers live in test/support/; this module keeps the old import path for tests not yet moved.
export { maxAbsDiff } from "./support/compare.js";
export { FIXTURE_MODELS, FIXTURES, type FixtureCase, fixtureCases, REPO } from "./support/fixtures.js";
