/**
 * End to end: `npm run local -- up` on a freshly installed Debian 12 machine (issue 14, item 1).
 * The machine is a minbase Debian 12 from this machine's mirror, entered with systemd-nspawn in
 * this machine's network (test/support/freshDebian.ts), with this repository (node_modules
 * included) and this Node bind-mounted read-only. There it runs `tsx local/cli.ts up`, which is
 * what `npm run local -- up` runs:
 *
 * - as an unprivileged user: one sentence naming `sudo apt-get install ... && sudo npm run local
 *   -- up`, and nothing installed;
 * - as root: the log names each missing package and why before apt-get runs; afterwards every tool
 *   is there, and `up` goes on to build the hosts' root filesystem (where the test stops it);
 * - as root again: ready, apt-get is not called.
 *
 * Out of scope: `npm install` inside the machine (node_modules is this checkout's), and bringing
 * the stack up there, which would need containers nested in the container: `up` is stopped at its
 * next step, and runs without CAP_NET_ADMIN so that nothing in it can change this machine's
 * network, which it shares. The local cloud itself is test/local/cloud.e2e.test.ts and the README's
 * try-out test/e2e/readme.e2e.test.ts.
 *
 * Needs root and the local rehearsal's tools (systemd-nspawn, mmdebstrap); skipped elsewhere
 * unless PYCLUSTER_REQUIRE_E2E=1. About 30 s on 2 vCPUs (60 s while the machine was busy; each run
 * installs from the mirror again), plus about 35 s the first time to build the fresh Debian (cached
 * in /var/cache/pycluster-local/).
 *
 * Run: node --import tsx --test test/local/prerequisites.e2e.test.ts
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, test } from "node:test";
import { LOCAL_TOOLS, Tool } from "../../local/prerequisites";
import { shellQuote } from "../../lib/shell";
import { e2eSkipReason, seconds } from "../e2e/support";
import { ensureFreshDebian, FreshMachine } from "../support/freshDebian";

const REPO = path.resolve(__dirname, "../..");
const SRC = "/src";
const BINDS = { [SRC]: REPO, "/usr/local/bin/node": process.execPath };
const CLI_UP = ["node", "--import", "tsx", "local/cli.ts", "up"];
/** Where the CLI's log and every apt-get call are appended, in the order they happen. */
const TRANSCRIPT = "/var/log/pycluster-transcript";
/** The line `up` logs at its step after the prerequisites (local/rootfs.ts). */
const NEXT_STEP = /building Debian bookworm root filesystem/;

/**
 * Records every call of apt-get in the transcript, then runs the real apt-get: first on root's
 * PATH (/usr/local/sbin), so the program's `apt-get` is this one.
 */
const APT_GET_RECORDER = `#!/bin/sh
echo "apt-get $*" >> ${TRANSCRIPT}
exec /usr/bin/apt-get "$@"
`;

let skip: string | undefined;
let machine: FreshMachine | undefined;
/** The rehearsal's tools that a fresh Debian 12 lacks, found in it before anything runs. */
let missing: Tool[] = [];

before(async () => {
    skip = await e2eSkipReason();
    if (skip) return;
    const started = Date.now();
    const fresh = await ensureFreshDebian({ log: console.log });
    console.log(`fresh Debian 12 ${fresh.built ? "built" : "from the cache"} in ${seconds(Date.now() - started)}`);
    machine = await FreshMachine.create(fresh.rootDir);
    fs.writeFileSync(machine.file("/usr/local/sbin/apt-get"), APT_GET_RECORDER, { mode: 0o755 });
    await asRoot(["useradd", "--create-home", "newcomer"]);
    const absent = await absentTools();
    missing = LOCAL_TOOLS.filter(t => absent.includes(t.command));
});

after(async () => {
    if (!machine) return;
    await machine.stop();
    assert.equal(machine.running, false, "a process the test started still runs");
    assert.equal(fs.existsSync(machine.file("/")), false, "the per-run overlay is gone");
});

/** Runs argv in the machine as root; throws with the output unless it succeeds. */
async function asRoot(argv: string[]): Promise<string> {
    const r = await machine!.enter(argv, { timeoutMs: 60_000 });
    if (r.code !== 0) throw new Error(`${argv.join(" ")} exited ${r.code} in the fresh machine:\n${r.out}`);
    return r.out;
}

/** Which of the rehearsal's commands the machine lacks now. */
async function absentTools(): Promise<string[]> {
    // A tool is a command on PATH, or (a keyring, a Python module) a file.
    const checks = LOCAL_TOOLS.map(t => (t.file ? `[ -e ${shellQuote(t.file)} ] || echo ${shellQuote(t.command)}` : `command -v ${shellQuote(t.command)} >/dev/null || echo ${shellQuote(t.command)}`));
    const out = await asRoot(["sh", "-c", checks.join("\n")]);
    // only the loop's lines: systemd-nspawn may add a warning of its own on exit
    return out.split("\n").filter(l => LOCAL_TOOLS.some(t => t.command === l));
}

/** `up` as root, stopped once it reaches its step after the prerequisites; returns the transcript. */
async function upAsRoot(timeoutMs: number): Promise<string[]> {
    const transcript = machine!.file(TRANSCRIPT);
    fs.writeFileSync(transcript, "");
    const read = () => fs.readFileSync(transcript, "utf8");
    const r = await machine!
        .enter(["sh", "-c", `exec "$@" 2>>${TRANSCRIPT}`, "up", ...CLI_UP], { binds: BINDS, cwd: SRC, noNetAdmin: true, until: () => NEXT_STEP.test(read()), timeoutMs })
        .catch((e: Error) => {
            throw new Error(`${e.message}\ntranscript:\n${read()}`);
        });
    const lines = read().split("\n");
    console.log(lines.map(l => `    | ${l}`).join("\n"));
    assert.ok(r.stopped, `up did not reach its next step (exit ${r.code}):\n${read()}\n${r.out}`);
    return lines.slice(0, lines.findIndex(l => NEXT_STEP.test(l)));
}

test("a fresh Debian 12 lacks the rehearsal's tools (what the install below must add)", t => {
    if (skip) return t.skip(skip);
    const commands = missing.map(t => t.command);
    for (const c of ["systemd-nspawn", "mmdebstrap", "apt-ftparchive", "nft"]) assert.ok(commands.includes(c), `${c} is already on the fresh machine`);
});

test("not root: one sentence naming the apt-get and up commands to run with sudo; nothing installed", async t => {
    if (skip) return t.skip(skip);
    const transcript = machine!.file(TRANSCRIPT);
    fs.writeFileSync(transcript, "");
    // What the user's terminal shows, apart from what systemd-nspawn itself may print on exit.
    const shown = "/home/newcomer/up.out";
    const r = await machine!.enter(["sh", "-c", `exec "$@" >${shown} 2>&1`, "up", ...CLI_UP], { binds: BINDS, cwd: SRC, user: "newcomer", timeoutMs: 2 * 60_000 });
    const out = fs.readFileSync(machine!.file(shown), "utf8");
    console.log(out);
    const packages = [...new Set(missing.map(t => t.pkg))].join(" ");
    assert.equal(r.code, 1, r.out);
    assert.equal(
        out.trim(),
        `error: The local rehearsal needs root (network namespaces, mounts, cgroups): run \`sudo apt-get install -y --no-install-recommends ${packages} && sudo npm run local -- up\`.`,
    );
    assert.equal(fs.readFileSync(transcript, "utf8"), "", "apt-get ran");
    assert.deepEqual(await absentTools(), missing.map(t => t.command));
});

test("root: names each package and why, installs them with apt-get, then goes on with up", async t => {
    if (skip) return t.skip(skip);
    const started = Date.now();
    const lines = await upAsRoot(5 * 60_000);
    console.log(`up installed its prerequisites and reached its next step in ${seconds(Date.now() - started)}`);
    const firstApt = lines.findIndex(l => l.startsWith("apt-get "));
    assert.ok(firstApt > 0, "apt-get was not called");
    const said = lines.slice(0, firstApt);
    assert.ok(said.some(l => /installing what the local rehearsal needs \(apt-get, once\)/.test(l)), said.join("\n"));
    for (const tool of missing) assert.ok(said.includes(`    ${tool.pkg}: ${tool.command}, ${tool.why}`), `no reason given for ${tool.pkg} before apt-get ran`);
    assert.deepEqual(lines.slice(firstApt).filter(l => l.startsWith("apt-get ")), [
        "apt-get update -q",
        `apt-get install -y -q --no-install-recommends ${[...new Set(missing.map(t => t.pkg))].join(" ")}`,
    ]);
    assert.deepEqual(await absentTools(), [], "tools still missing after the install");
});

test("root again: ready, apt-get is not called", async t => {
    if (skip) return t.skip(skip);
    const started = Date.now();
    const lines = await upAsRoot(2 * 60_000);
    console.log(`up found everything and reached its next step in ${seconds(Date.now() - started)}`);
    assert.deepEqual(lines.filter(l => l.startsWith("apt-get ") || /installing/.test(l)), []);
});
