/**
 * The README and docs/ tell users what to type: every command they show must name things that
 * exist (config keys the program declares, outputs it exports, npm scripts, linked files). The
 * local commands themselves run in test/e2e/readme.e2e.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { loadDeclarations } from "../../config/declarations";
import { runProgram } from "../support/programHarness";
import { bashCommands, section } from "../support/markdown";

const ROOT = path.join(__dirname, "..", "..");
const DOCS = ["README.md", ...fs.readdirSync(path.join(ROOT, "docs")).filter(f => f.endsWith(".md")).map(f => `docs/${f}`)];
const text = (file: string) => fs.readFileSync(path.join(ROOT, file), "utf8");

test("the README's local try-out is two commands", () => {
    assert.deepEqual(bashCommands(section(text("README.md"), "Try it locally")), ["npm install", "npm run local -- up"]);
});

test("every `npm run` in the docs names a script of package.json", () => {
    const scripts = Object.keys(JSON.parse(text("package.json")).scripts);
    for (const file of DOCS) {
        for (const m of text(file).matchAll(/npm run ([\w:-]+)/g)) assert.ok(scripts.includes(m[1]), `${file}: npm run ${m[1]} is not a script`);
    }
});

test("every `pulumi config set` in the docs names a declared key", () => {
    const keys = Object.keys(loadDeclarations().keys);
    let seen = 0;
    for (const file of DOCS) {
        for (const m of text(file).matchAll(/pulumi config set ((?:--\w+ )*)'?([A-Za-z]+)/g)) {
            assert.ok(keys.includes(m[2]), `${file}: pulumi config set ${m[2]}: no such key in Pulumi.yaml`);
            seen++;
        }
    }
    assert.ok(seen >= 5, `only ${seen} config commands found: the pattern no longer matches the docs`);
});

test("every `pulumi stack output` in the docs names an output the program exports", async () => {
    const run = await runProgram({ stack: "staging", set: { monitoringNode: "true" } });
    const outputs = Object.keys(run.outputs);
    let seen = 0;
    for (const file of DOCS) {
        for (const m of text(file).matchAll(/pulumi stack output (?:--[\w-]+ (?:\w+ )?)*([a-z][A-Za-z]+)/g)) {
            assert.ok(outputs.includes(m[1]), `${file}: pulumi stack output ${m[1]}: not an output (have ${outputs.join(", ")})`);
            seen++;
        }
    }
    assert.ok(seen >= 3, `only ${seen} output commands found`);
});

test("every relative link in the docs points at a file of the repository", () => {
    for (const file of DOCS) {
        for (const m of text(file).matchAll(/\]\(((?!https?:|#)[^)#]+)(#[^)]*)?\)/g)) {
            const target = path.join(ROOT, path.dirname(file), m[1]);
            assert.ok(fs.existsSync(target), `${file}: link ${m[1]} leads nowhere`);
        }
    }
});
