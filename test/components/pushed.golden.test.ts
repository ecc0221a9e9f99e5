/**
 * Golden recordings: for every stack file, everything the program pushes to
 * hosts (rendered under mocks) is compared byte for byte with
 * test/components/golden/<stack>.txt. A refactoring must leave them
 * unchanged; a deliberate change regenerates them with
 *   PYCLUSTER_UPDATE_GOLDEN=1 node --import tsx --test test/components/pushed.golden.test.ts
 * and the commit says why the pushed output changed.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { runProgram } from "../support/programHarness";
import { recordPushes } from "../support/pushRecording";

const ROOT = path.join(__dirname, "..", "..");
const GOLDEN = path.join(__dirname, "golden");
const STACKS = fs
    .readdirSync(ROOT)
    .map(f => /^Pulumi\.([a-z0-9-]+)\.yaml$/.exec(f)?.[1])
    .filter((s): s is string => s !== undefined)
    .sort();

test("there is a recording for every stack file, and no other", () => {
    if (process.env.PYCLUSTER_UPDATE_GOLDEN === "1") return;
    const recorded = fs.readdirSync(GOLDEN).map(f => f.replace(/\.txt$/, "")).sort();
    assert.deepEqual(recorded, STACKS);
});

for (const stack of STACKS) {
    test(`${stack}: what the program pushes equals the golden recording`, async () => {
        const run = await runProgram({ stack });
        const text = await recordPushes(run);
        const file = path.join(GOLDEN, `${stack}.txt`);
        if (process.env.PYCLUSTER_UPDATE_GOLDEN === "1") {
            fs.mkdirSync(GOLDEN, { recursive: true });
            fs.writeFileSync(file, text);
            return;
        }
        const golden = fs.readFileSync(file, "utf8");
        if (text !== golden) {
            const a = golden.split("\n");
            const b = text.split("\n");
            const at = a.findIndex((line, i) => line !== b[i]);
            assert.fail(`${stack}: the pushed output differs from ${path.relative(ROOT, file)} from line ${at + 1}:\n- ${a[at]}\n+ ${b[at]}`);
        }
    });
}
