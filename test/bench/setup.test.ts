import { test } from "node:test";
import assert from "node:assert/strict";
import { pairConfigsProblem } from "../../bench/lib/setup";

test("a pair is benched with the generated configuration only, refused before anything stands up", () => {
    assert.equal(pairConfigsProblem(2, ["generated"]), undefined);
    assert.equal(pairConfigsProblem(1, ["generated", "seed", "stock"]), undefined, "one LB: every configuration");
    const problem = pairConfigsProblem(2, ["generated", "seed", "stock"]);
    assert.match(problem ?? "", /^lbCount 2: .*seed and stock.*run with --configs generated$/);
});
