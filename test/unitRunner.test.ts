import { test } from "node:test";
import assert from "node:assert/strict";
import { partition } from "./unit";

test("the unit runner's groups: every file once, heaviest first onto the lightest group, about equal weight", () => {
    const files = [
        { file: "a", weight: 10 },
        { file: "b", weight: 6 },
        { file: "c", weight: 5 },
        { file: "d", weight: 4 },
        { file: "e", weight: 1 },
    ];
    const groups = partition(files, 2);
    assert.deepEqual(groups, [["a", "d"], ["b", "c", "e"]]); // 14 and 12
    assert.deepEqual(groups.flat().sort(), ["a", "b", "c", "d", "e"]);
    // Never more groups than files, never an empty one.
    assert.deepEqual(partition(files.slice(0, 1), 3), [["a"]]);
});
