/**
 * The README's local try-out, run as a newcomer would: its commands verbatim from the repository's
 * root, then what `up` printed (the curl from the "internet", an SSH command), then the command the
 * README gives to remove it all.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { localDown } from "../../local/stack";
import { bashCommands, section } from "../support/markdown";
import { e2eSkipReason, seconds } from "./support";

const ROOT = path.join(__dirname, "..", "..");

/** `out`: stdout and stderr as a terminal shows them; `stdout` alone for what a command answers. */
function shell(command: string, timeoutMs: number): Promise<{ code: number | null; out: string; stdout: string }> {
    return new Promise((resolve, reject) => {
        const child = spawn("bash", ["-c", command], { cwd: ROOT, env: { ...process.env, SSH_AUTH_SOCK: "" } });
        let out = "";
        let stdout = "";
        child.stdout.on("data", d => {
            out += d;
            stdout += d;
        });
        child.stderr.on("data", d => (out += d));
        const timer = setTimeout(() => child.kill("SIGTERM"), timeoutMs);
        child.on("error", reject);
        child.on("close", code => {
            clearTimeout(timer);
            resolve({ code, out, stdout });
        });
    });
}

after(() => localDown({ stack: "local", log: () => undefined }).catch(() => undefined));

test("README: the local try-out works as written, and so does its way out", { timeout: 20 * 60_000 }, async t => {
    const skip = await e2eSkipReason();
    if (skip) return t.skip(skip);
    await localDown({ stack: "local", log: () => undefined }); // a leftover would make the run untrue
    const tryOut = section(fs.readFileSync(path.join(ROOT, "README.md"), "utf8"), "Try it locally");
    let printed = "";
    for (const command of bashCommands(tryOut)) {
        const started = Date.now();
        const r = await shell(command, 15 * 60_000);
        console.log(`${command}: exit ${r.code} in ${seconds(Date.now() - started)}`);
        assert.equal(r.code, 0, `${command}:\n${r.out.slice(-3000)}`);
        printed = r.out;
    }
    // What up printed, run as printed.
    const curl = /from a client namespace: (ip netns exec \S+ curl -k \S+)/.exec(printed);
    assert.ok(curl, `up printed no way to reach the site:\n${printed.slice(-2000)}`);
    const answer = await shell(curl[1], 60_000);
    assert.equal(answer.code, 0, answer.out);
    assert.match(JSON.parse(answer.stdout).node, /^pycluster-local-app-\d$/, answer.out);
    const ssh = /load balancer (ssh -F \S+ \S+)/.exec(printed);
    assert.ok(ssh, "up printed the load balancer's SSH command");
    const onLb = await shell(`${ssh[1]} hostname`, 60_000);
    assert.equal(onLb.stdout.trim(), "pycluster-local-lb", onLb.out);

    const down = /`(npm run local -- down)`/.exec(tryOut);
    assert.ok(down, "the README says how to remove it");
    const removed = await shell(down[1], 10 * 60_000);
    assert.equal(removed.code, 0, removed.out);
    assert.equal(fs.existsSync("/var/lib/pycluster-local/pyclocal/state.json"), false, "nothing of the local stack is left");
});
