/**
 * .ci/node.sh, sourced as .ci/run sources it, in a copy of the repository's .ci with stubs for the
 * system's `node` and for `npm` (whose `pack` hands over a fake node-linux tarball): it keeps a
 * recent enough system Node, and otherwise unpacks the registry's Node of the .nvmrc major into
 * .ci/.node/ and puts it first on PATH. The real download is exercised by running .ci/node.sh.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";

const root = path.resolve(__dirname, "../..");
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "ci-node-"));
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

const BASH = spawnSync("sh", ["-c", "command -v bash"], { encoding: "utf8" }).stdout.trim();
const ARCH = ({ x64: "x64", arm64: "arm64" } as Record<string, string>)[os.arch()];

interface Setup {
    nvmrc: string;
    /** What the system's `node --version` says; undefined: no node on PATH. */
    systemNode?: string;
    /** The version inside the tarball `npm pack` produces; undefined: npm pack fails. */
    registryNode?: string;
}

/** Sources .ci/node.sh in a fresh copy and reports which node ends up first on PATH. */
function source(setup: Setup) {
    const top = fs.mkdtempSync(path.join(scratch, "repo-"));
    fs.mkdirSync(path.join(top, ".ci"));
    fs.copyFileSync(path.join(root, ".ci", "node.sh"), path.join(top, ".ci", "node.sh"));
    fs.writeFileSync(path.join(top, ".nvmrc"), setup.nvmrc);
    const stubs = path.join(top, "stubs");
    fs.mkdirSync(stubs);
    if (setup.systemNode !== undefined) {
        fs.writeFileSync(path.join(stubs, "node"), `#!/bin/sh\necho ${setup.systemNode}\n`, { mode: 0o755 });
    }
    // npm pack <spec> writes <name>-<version>.tgz (a "package/" tree) into the current directory.
    const pack = setup.registryNode === undefined
        ? `echo "npm error 404 Not Found" >&2\nexit 1\n`
        : `name="\${3%@*}"\nd="$(mktemp -d)"\nmkdir -p "$d/package/bin"\n` +
          `printf '#!/bin/sh\\necho ${setup.registryNode}\\n' > "$d/package/bin/node"\nchmod +x "$d/package/bin/node"\n` +
          `tar -czf "$name-${setup.registryNode.replace(/^v/, "")}.tgz" -C "$d" package\nrm -rf "$d"\n`;
    fs.writeFileSync(path.join(stubs, "npm"), `#!/bin/sh\necho "$@" >> "${top}/npm-calls"\n${pack}`, { mode: 0o755 });
    // Only the stubs and the basic tools: the machine's own node must not be found.
    const tools = path.join(top, "tools");
    fs.mkdirSync(tools);
    for (const tool of ["tar", "gzip", "mktemp", "rm", "mkdir", "mv", "chmod", "tr", "dirname", "uname", "cat"]) {
        const found = spawnSync("sh", ["-c", `command -v ${tool}`], { encoding: "utf8" }).stdout.trim();
        assert.ok(found, `${tool} is installed`);
        fs.symlinkSync(found, path.join(tools, tool));
    }
    const result = spawnSync(BASH, ["-c", 'set -euo pipefail; . .ci/node.sh; echo "first: $(command -v node) $(node --version)"'], {
        cwd: top,
        encoding: "utf8",
        env: { PATH: `${stubs}:${tools}`, HOME: top },
    });
    const calls = fs.existsSync(path.join(top, "npm-calls")) ? fs.readFileSync(path.join(top, "npm-calls"), "utf8").trim() : "";
    return { top, stubs, status: result.status, stdout: result.stdout, stderr: result.stderr, npmCalls: calls };
}

describe(".ci/node.sh", { skip: ARCH === undefined && `no node-linux package for ${os.arch()}` }, () => {
    it("keeps the system's Node when its major is at least .nvmrc's", () => {
        const r = source({ nvmrc: "22\n", systemNode: "v24.1.0" });
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout, /^Node: .*v24\.1\.0, the system's \(\.nvmrc asks for 22\)$/m);
        assert.match(r.stdout, new RegExp(`^first: ${r.stubs}/node v24\\.1\\.0$`, "m"));
        assert.equal(r.npmCalls, "", "nothing is downloaded");
    });

    it("unpacks the registry's node-linux of the .nvmrc major when the system's is older", () => {
        const r = source({ nvmrc: "v22", systemNode: "v20.20.2", registryNode: "v22.99.1" });
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.npmCalls, new RegExp(`^pack --silent node-linux-${ARCH}@22$`));
        const bin = path.join(r.top, ".ci", ".node", "v22.99.1", "bin");
        assert.match(r.stdout, new RegExp(`^first: ${bin}/node v22\\.99\\.1$`, "m"));
        assert.match(r.stdout, new RegExp(`node-linux-${ARCH} from the npm registry \\(the system's is v20\\.20\\.2; \\.nvmrc asks for 22\\)`));
    });

    it("does the same when there is no system node", () => {
        const r = source({ nvmrc: "22", registryNode: "v22.99.1" });
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stdout, /the system's is missing; \.nvmrc asks for 22/);
    });

    it("fails, saying so, when the registry has no such package or hands over another major", () => {
        const missing = source({ nvmrc: "22", systemNode: "v20.20.2" });
        assert.equal(missing.status, 1);
        assert.match(missing.stderr, new RegExp(`could not get node-linux-${ARCH}@22 from the npm registry`));
        assert.doesNotMatch(missing.stdout, /^first:/m);
        const wrong = source({ nvmrc: "22", systemNode: "v20.20.2", registryNode: "v21.0.0" });
        assert.equal(wrong.status, 1);
        assert.match(wrong.stderr, /node-linux-\w+@22 unpacked v21\.0\.0/);
        assert.equal(fs.existsSync(path.join(wrong.top, ".ci", ".node", "v21.0.0")), false, "nothing of it is kept");
    });

    it("refuses an .nvmrc that names no major", () => {
        const r = source({ nvmrc: "lts/jod", systemNode: "v20.20.2" });
        assert.equal(r.status, 1);
        assert.match(r.stderr, /\.nvmrc should name a Node major/);
    });
});
