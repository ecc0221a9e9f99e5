/**
 * .github/scripts/ssh-window.ts, run as the deploy jobs run it, with a stub `curl` on PATH as the
 * address source: it admits the runner's public IPv4 address/32 in the stack file, refuses anything
 * else without touching the file, and closes the window again.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { pathToFileURL } from "node:url";
import { after, describe, it } from "node:test";
import { parse } from "yaml";
import { runnerCidr } from "../../.github/scripts/ssh-window";

const root = path.resolve(__dirname, "../..");
const SCRIPT = path.join(root, ".github", "scripts", "ssh-window.ts");
const TSX = pathToFileURL(require.resolve("tsx")).href;
const KEY = "pycluster:deployerCidrs";

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "ssh-window-"));
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** A checkout with the real project and dev stack files, and a `curl` that answers `body`. */
function checkout(body: string, curlStatus = 0): { dir: string; curlArgs: () => string } {
    const dir = fs.mkdtempSync(path.join(scratch, "checkout-"));
    for (const file of ["Pulumi.yaml", "Pulumi.dev.yaml"]) fs.copyFileSync(path.join(root, file), path.join(dir, file));
    const stubs = path.join(dir, "stubs");
    fs.mkdirSync(stubs);
    fs.writeFileSync(path.join(dir, "answer"), body);
    fs.writeFileSync(path.join(stubs, "curl"),
        `#!/bin/sh\necho "$@" > "${dir}/curl-args"\n` +
        (curlStatus === 0 ? `cat "${dir}/answer"\n` : `echo "curl: (22) The requested URL returned error: 503" >&2\nexit ${curlStatus}\n`),
        { mode: 0o755 });
    return { dir, curlArgs: () => fs.readFileSync(path.join(dir, "curl-args"), "utf8").trim() };
}

function run(dir: string, ...args: string[]) {
    const result = spawnSync(process.execPath, ["--import", TSX, SCRIPT, ...args], {
        cwd: dir,
        encoding: "utf8",
        env: { ...process.env, PATH: `${path.join(dir, "stubs")}:${process.env.PATH}` },
    });
    return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const stackConfig = (dir: string) => parse(fs.readFileSync(path.join(dir, "Pulumi.dev.yaml"), "utf8")).config;

describe("ssh-window open", () => {
    it("admits the runner's address/32 for the stack, keeping the rest of the file", () => {
        const { dir, curlArgs } = checkout("198.51.100.23\n");
        const before = stackConfig(dir);
        const result = run(dir, "open", "dev");
        assert.equal(result.status, 0, result.stderr);
        assert.match(result.stdout, /pycluster:deployerCidrs = \["198\.51\.100\.23\/32"\] in Pulumi\.dev\.yaml/);
        assert.deepEqual(stackConfig(dir), { ...before, [KEY]: ["198.51.100.23/32"] });
        assert.match(curlArgs(), /^-fsS .*https:\/\/api\.ipify\.org$/);
        assert.match(curlArgs(), /--max-time \d+/);
    });

    const refused: [string, string, RegExp][] = [
        ["an HTML page", "<html><body>Service Unavailable</body></html>", /not an IPv4 address/],
        ["an IPv6 address", "2001:db8::1", /not an IPv4 address/],
        ["nothing", "", /answered "", not an IPv4 address/],
        ["two addresses", "198.51.100.23\n198.51.100.24", /not an IPv4 address/],
        ["an octet above 255", "198.51.100.256", /not an IPv4 address/],
        ["a private address", "10.1.2.3", /not a public address/],
        ["a CGNAT address", "100.64.0.1", /not a public address/],
    ];
    for (const [what, body, message] of refused) {
        it(`fails, naming the answer, on ${what}, and leaves the stack file alone`, () => {
            const { dir } = checkout(body);
            const original = fs.readFileSync(path.join(dir, "Pulumi.dev.yaml"), "utf8");
            const result = run(dir, "open", "dev");
            assert.equal(result.status, 1);
            assert.match(result.stderr, message);
            assert.match(result.stderr, /^ssh-window: https:\/\/api\.ipify\.org answered /);
            assert.equal(fs.readFileSync(path.join(dir, "Pulumi.dev.yaml"), "utf8"), original);
        });
    }

    it("fails with curl's message when the address source cannot be reached", () => {
        const { dir } = checkout("198.51.100.23", 22);
        const result = run(dir, "open", "dev");
        assert.equal(result.status, 1);
        assert.match(result.stderr, /could not ask https:\/\/api\.ipify\.org for this runner's address: curl: \(22\)/);
        assert.equal(stackConfig(dir)[KEY], undefined);
    });

    it("refuses a stack without a stack file, and a bad command line", () => {
        const { dir } = checkout("198.51.100.23");
        assert.match(run(dir, "open", "qa").stderr, /no Pulumi\.qa\.yaml/);
        assert.match(run(dir, "open", "../dev").stderr, /not a stack name/);
        assert.match(run(dir, "widen", "dev").stderr, /usage: ssh-window\.ts open\|close <stack>/);
    });
});

describe("ssh-window close", () => {
    it("empties deployerCidrs after an open, asking no address", () => {
        const { dir } = checkout("198.51.100.23");
        const before = stackConfig(dir);
        assert.equal(run(dir, "open", "dev").status, 0);
        fs.rmSync(path.join(dir, "curl-args"));
        const result = run(dir, "close", "dev");
        assert.equal(result.status, 0, result.stderr);
        assert.equal(fs.existsSync(path.join(dir, "curl-args")), false, "close does not run curl");
        assert.deepEqual(stackConfig(dir), { ...before, [KEY]: [] });
        assert.match(fs.readFileSync(path.join(dir, "Pulumi.dev.yaml"), "utf8"), /^ {2}pycluster:deployerCidrs: \[\]$/m);
    });
});

describe("runnerCidr", () => {
    it("accepts surrounding whitespace; refuses leading zeros, loopback and multicast", () => {
        assert.equal(runnerCidr(" 203.0.113.7\r\n"), "203.0.113.7/32");
        assert.throws(() => runnerCidr("203.0.113.07"), /not an IPv4 address/);
        assert.throws(() => runnerCidr("127.0.0.1"), /not a public address/);
        assert.throws(() => runnerCidr("239.1.2.3"), /not a public address/);
    });
});
