import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { parse as parseYaml } from "yaml";
import { LOCAL_FILES } from "../../config/files";
import { projectValues } from "../../config/read";
import { parseStackConfig } from "../../config/stackConfig";
import { stackConfig, TEST_ENV } from "../support/programHarness";
import { declarations, parse, SAMPLE_APP, VALID_SECRETS } from "./configFixtures";

const ROOT = path.join(__dirname, "..", "..");

test("Pulumi.yaml declares every key the program reads, and nothing else", () => {
    const read = new Set<string>();
    parse({}, { read });
    const declared = new Set(Object.keys(declarations.keys));
    assert.deepEqual([...read].filter(k => !declared.has(k)), [], "read but not declared");
    assert.deepEqual([...declared].filter(k => !read.has(k)), [], "declared but never read");
});

test("every declared key has a type and a description; defaults match their type", () => {
    for (const [key, d] of Object.entries(declarations.keys)) {
        assert.ok(["string", "integer", "boolean", "array"].includes(d.type), `${key}: type`);
        assert.ok(d.description && d.description.length > 10, `${key}: description`);
        if (d.default === undefined) continue;
        const expected = { string: "string", integer: "number", boolean: "boolean", array: "object" }[d.type];
        assert.equal(typeof d.default, expected, `${key}: default ${JSON.stringify(d.default)}`);
    }
    // Only per-stack identities have no default.
    assert.deepEqual(Object.entries(declarations.keys).filter(([, d]) => d.default === undefined).map(([k]) => k).sort(), ["adminCidrs", "vlanId"]);
});

const STACKS = ["dev", "staging", "prod"];

function stackValues(stack: string): Record<string, string> {
    const doc = parseYaml(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8")) as { config: Record<string, unknown> };
    return Object.fromEntries(
        Object.entries(doc.config).map(([k, v]) => [k.replace(/^pycluster:/, ""), typeof v === "string" ? v : JSON.stringify(v)]),
    );
}

for (const stack of STACKS) {
    test(`Pulumi.${stack}.yaml is valid with credentials from the environment`, () => {
        const cli = stackConfig(stack);
        const c = parseStackConfig(projectValues(declarations.project, cli.config, k => cli.secretKeys.includes(k)), {
            declarations,
            stack,
            sampleAppDir: SAMPLE_APP,
            files: LOCAL_FILES,
            env: TEST_ENV,
        });
        assert.equal(c.stack, stack);
        assert.ok(c.capacity.ceiling >= c.targetConcurrency);
    });
}

test("stacks differ where a shared vRack needs them to: VLAN ids and subnets", () => {
    const all = STACKS.map(stackValues);
    assert.equal(new Set(all.map(v => v.vlanId)).size, STACKS.length);
    assert.equal(new Set(all.map(v => v.subnetCidr)).size, STACKS.length);
});

test("dev is small, prod follows the production rules", () => {
    assert.equal(stackValues("dev").appNodeCount, "1");
    const prod = stackValues("prod");
    assert.equal(prod.production, "true");
    assert.ok(Number(prod.appNodeCount) >= 2);
    assert.notEqual(prod.tlsMode ?? "selfSigned", "selfSigned");
});

test("stack files hold no secrets in plain text", () => {
    for (const stack of STACKS) {
        const keys = Object.keys(stackValues(stack));
        for (const secret of [...VALID_SECRETS, "appEnv", "tlsPrivateKey"]) assert.ok(!keys.includes(secret), `${stack}: ${secret}`);
    }
});
