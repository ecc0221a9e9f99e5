/**
 * The Node.js toolchain agrees with itself: the project's engines range, .nvmrc, the workflows'
 * setup-node steps and the installed packages' own engines, and the pin that SDK internals need.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";
import * as semver from "semver";
import { parse } from "yaml";

const root = path.resolve(__dirname, "..");
const readJson = (file: string) => JSON.parse(fs.readFileSync(file, "utf8"));
const pkg = readJson(path.join(root, "package.json"));
const engines: string = pkg.engines?.node ?? "";
const nvmrc = fs.readFileSync(path.join(root, ".nvmrc"), "utf8").trim();
const nvmrcMajor = Number(nvmrc.replace(/^v/, ""));

/** Every package under a node_modules tree (scoped ones and nested node_modules included). */
function installedPackages(dir: string): { name: string; file: string; engines?: string }[] {
    const found: { name: string; file: string; engines?: string }[] = [];
    const visit = (modules: string) => {
        if (!fs.existsSync(modules)) return;
        for (const entry of fs.readdirSync(modules)) {
            if (entry.startsWith(".")) continue;
            const dirs = entry.startsWith("@")
                ? fs.readdirSync(path.join(modules, entry)).map(sub => path.join(modules, entry, sub))
                : [path.join(modules, entry)];
            for (const packageDir of dirs) {
                const file = path.join(packageDir, "package.json");
                if (!fs.existsSync(file)) continue;
                const manifest = readJson(file);
                found.push({ name: manifest.name, file, engines: manifest.engines?.node });
                visit(path.join(packageDir, "node_modules"));
            }
        }
    };
    visit(path.join(dir, "node_modules"));
    return found;
}

/** The .ts files of the project (its own code and tests, not dependencies or tools' copies). */
function sourceFiles(dir: string): string[] {
    return fs.readdirSync(dir, { withFileTypes: true }).flatMap(entry => {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) {
            return ["node_modules", "bin", ".git", ".node"].includes(entry.name) ? [] : sourceFiles(full);
        }
        return entry.name.endsWith(".ts") ? [full] : [];
    });
}

/** `@pulumi/pulumi/<subpath>` modules a file loads (import, require, require.resolve, import()). */
function sdkSubpaths(text: string): string[] {
    const loads = /(?:\bfrom\s+|\brequire(?:\.resolve)?\(\s*|\bimport\(\s*)["'](@pulumi\/pulumi\/[^"']+)["']/g;
    return [...text.matchAll(loads)].map(m => m[1]);
}

/** Subpaths the SDK documents as public API; any other subpath is an internal module. */
const PUBLIC_SDK_SUBPATHS = /^@pulumi\/pulumi\/automation(\/|$)/;

describe("Node.js version", () => {
    it("package.json engines.node is a valid range with a lower bound of its own", () => {
        assert.ok(semver.validRange(engines), `engines.node "${engines}" is a semver range`);
        assert.notEqual(semver.minVersion(engines)?.version, "0.0.0", `engines.node "${engines}" says which Node is too old`);
    });

    it("engines.node admits no Node version that an installed package refuses", () => {
        const packages = installedPackages(root);
        assert.ok(packages.some(p => p.name === "@pulumi/pulumi"), "node_modules is installed (npm ci)");
        const refusing = new Set(packages
            .filter(p => p.engines !== undefined && !semver.subset(engines, p.engines))
            .map(p => `${p.name} wants node ${p.engines}`));
        assert.deepEqual([...refusing], [], `engines.node "${engines}" admits versions that these refuse`);
    });

    it(".nvmrc names a Node major that engines.node admits, and @types/node describes it", () => {
        assert.match(nvmrc, /^v?\d+$/, ".nvmrc holds a major version such as 22");
        const major = nvmrcMajor;
        assert.ok(semver.intersects(`${major}.x`, engines), `Node ${major} satisfies engines.node "${engines}"`);
        const types = readJson(path.join(root, "node_modules", "@types", "node", "package.json")).version;
        assert.equal(semver.major(types), major, `@types/node ${types} is for Node ${major}`);
        assert.equal(semver.minVersion(pkg.devDependencies["@types/node"])?.major, major, "package.json asks for that @types/node");
    });

    it("every workflow's setup-node step uses .nvmrc", () => {
        const dir = path.join(root, ".github", "workflows");
        const files = fs.readdirSync(dir).filter(f => /\.ya?ml$/.test(f));
        assert.ok(files.length > 0);
        let setups = 0;
        for (const file of files) {
            const workflow = parse(fs.readFileSync(path.join(dir, file), "utf8"));
            for (const [name, job] of Object.entries<any>(workflow.jobs ?? {})) {
                for (const step of job.steps ?? []) {
                    if (!String(step.uses ?? "").startsWith("actions/setup-node")) continue;
                    setups++;
                    const pinned = step.with?.["node-version"];
                    if (pinned !== undefined) {
                        assert.equal(semver.minVersion(String(pinned))?.major, nvmrcMajor, `${file} ${name}: node-version ${pinned}`);
                    } else {
                        assert.equal(step.with?.["node-version-file"], ".nvmrc", `${file} ${name}: node-version-file`);
                    }
                }
            }
        }
        assert.ok(setups > 0, "the workflows set up Node");
    });

    it(".ci/run selects the .nvmrc Node before npm ci", () => {
        const run = fs.readFileSync(path.join(root, ".ci", "run"), "utf8").split("\n").map(l => l.trim());
        const select = run.indexOf(". .ci/node.sh");
        assert.ok(select >= 0, ".ci/run sources .ci/node.sh");
        assert.ok(select < run.indexOf("npm ci"), "before npm ci");
    });
});

describe("@pulumi/pulumi internals", () => {
    // This file's own sample below is not a use.
    const internal = sourceFiles(root).filter(file => file !== __filename).flatMap(file =>
        sdkSubpaths(fs.readFileSync(file, "utf8"))
            .filter(sub => !PUBLIC_SDK_SUBPATHS.test(sub))
            .map(sub => `${path.relative(root, file)}: ${sub}`));

    it("the scan sees import, require, require.resolve of SDK subpaths, not the package itself", () => {
        const sample = 'const c = require("@pulumi/pulumi/runtime/config");\nimport * as a from "@pulumi/pulumi/automation";\n' +
            'import * as p from "@pulumi/pulumi";\nrequire.resolve("@pulumi/pulumi/cmd/run-policy-pack");';
        assert.deepEqual(sdkSubpaths(sample), [
            "@pulumi/pulumi/runtime/config",
            "@pulumi/pulumi/automation",
            "@pulumi/pulumi/cmd/run-policy-pack",
        ]);
    });

    const none = internal.length === 0 && "the code loads no internal SDK module";
    it("are only used with an exact or ~ pinned @pulumi/pulumi that node_modules satisfies", { skip: none }, () => {
        const range: string = pkg.dependencies["@pulumi/pulumi"];
        assert.match(range, /^[~=]?\d+\.\d+\.\d+$/, `internal modules are loaded (${internal.join("; ")}), so "@pulumi/pulumi": "${range}" must be exact or ~`);
        const installed = readJson(path.join(root, "node_modules", "@pulumi", "pulumi", "package.json")).version;
        assert.ok(semver.satisfies(installed, range), `installed @pulumi/pulumi ${installed} satisfies ${range}`);
    });
});
