import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError } from "../../config/stackConfig";
import { BAD } from "../config/badConfigs";
import { loadStackFile, ProgramFailure, runProgram, TEST_CREDENTIALS, TEST_SECRET_KEYS } from "../support/programHarness";

/**
 * The real program with each bad stack configuration of the table: it stops
 * before it registers a single resource, naming the key, the value and the fix.
 */
for (const [what, overrides, message, o] of BAD) {
    test(`bad config registers nothing: ${what}`, async () => {
        const config: Record<string, string> = { ...loadStackFile("staging"), ...TEST_CREDENTIALS };
        for (const [k, v] of Object.entries(overrides)) {
            if (v === undefined) delete config[k];
            else config[k] = v;
        }
        const secretKeys = o?.secretKeys ?? [
            ...TEST_SECRET_KEYS.filter(k => !(k in overrides) || overrides[k] === undefined),
            ...Object.keys(overrides).filter(k => ["appEnv", "tlsPrivateKey"].includes(k)),
        ];
        await assert.rejects(runProgram({ stack: o?.stack ?? "staging", config, secretKeys }), (e: unknown) => {
            assert.ok(e instanceof ProgramFailure, String(e));
            assert.ok(e.cause instanceof ConfigError, String(e.cause));
            assert.match(e.message, message);
            assert.equal(e.resources.length, 0, `registered: ${e.resources.map(r => r.name).join(", ")}`);
            return true;
        });
    });
}

test("at least 25 invalid configurations are exercised through the program", () => {
    assert.ok(BAD.length >= 25, `${BAD.length}`);
});
