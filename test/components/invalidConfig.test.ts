import { test } from "node:test";
import assert from "node:assert/strict";
import { CliConfigError } from "../../local/cliConfig";
import { ConfigError } from "../../config/reader";
import { BAD } from "../config/badConfigs";
import { ProgramFailure, runProgram, stackConfig, TEST_CREDENTIALS, TEST_SECRET_KEYS } from "../support/programHarness";

/**
 * The real program with each bad stack configuration of the table, as `pulumi up` would run it:
 * what the CLI refuses never reaches the program; what it passes, the program stops before it
 * registers a single resource, naming the key, the value and the fix.
 */
for (const [what, overrides, message, o] of BAD) {
    test(`bad config registers nothing: ${what}`, async () => {
        const values: Record<string, string> = { ...TEST_CREDENTIALS };
        const unset: string[] = [];
        for (const [k, v] of Object.entries(overrides)) {
            if (v === undefined) {
                delete values[k];
                unset.push(k);
            } else values[k] = v;
        }
        const secretKeys = o?.secretKeys ?? [...TEST_SECRET_KEYS, "appEnv", "tlsPrivateKey"];
        const set = Object.fromEntries(Object.entries(values).filter(([k]) => !secretKeys.includes(k)));
        const setSecret = Object.fromEntries(Object.entries(values).filter(([k]) => secretKeys.includes(k)));
        const stack = o?.stack ?? "staging";
        if (o?.cli) {
            assert.throws(() => stackConfig(stack, { set, setSecret, unset, fileOf: "staging" }), (e: unknown) => {
                assert.ok(e instanceof CliConfigError, String(e));
                assert.match(e.message, message);
                return true;
            });
            return;
        }
        await assert.rejects(runProgram({ stack, config: stackConfig(stack, { set, setSecret, unset, fileOf: "staging" }), env: {} }), (e: unknown) => {
            assert.ok(e instanceof ProgramFailure, String(e));
            assert.ok(e.cause instanceof ConfigError, String(e.cause));
            assert.match(e.message, message);
            assert.equal(e.resources.length, 0, `registered: ${e.resources.map(r => r.name).join(", ")}`);
            return true;
        });
    });
}

test("at least 25 invalid configurations are exercised through the program", () => {
    assert.ok(BAD.filter(([, , , o]) => !o?.cli).length >= 25, `${BAD.length}`);
});
