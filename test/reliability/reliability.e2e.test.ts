/**
 * Zero downtime and failure handling, proven under load on local hosts:
 * 1 load balancer + 4 app nodes, wrk running from two internet namespaces
 * during every scenario. Each scenario prints requests sent, failed, and the
 * time to recover. The tests run in order and share the cluster.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { SAMPLE_APP_DIR } from "../../config/read";
import { ProgramFailure } from "../../local/program";
import { runInNetns } from "../../local/exec";
import { localDown, localStackConfig, localUp, LocalStackOptions, UpResult } from "../../local/stack";
import { LoadResult, outcomes, PacedClient, Probe, startMixedLoad, WrkResult } from "../support/load";
import { e2eSkipReason, onHost, seconds } from "../e2e/support";

const STACK = "e2e";
const log = process.env.PYCLUSTER_E2E_VERBOSE ? (l: string) => console.log(`  ${l}`) : () => undefined;
/** The stack as the scenarios leave it; each scenario adds to it. */
const settings: Record<string, string> = { appNodeCount: "4", monitoringNode: "false" };
const secrets: Record<string, string> = {};
const opts = (extra: Record<string, string> = {}, o: Partial<LocalStackOptions> = {}): LocalStackOptions => ({
    stack: STACK,
    log,
    set: { ...settings, ...extra },
    setSecret: { ...secrets },
    ...o,
});

let skip: string | undefined;
let up: UpResult;
let nodes: string[] = [];
let firstRelease = "";
const summary: string[] = [];

before(async () => {
    skip = await e2eSkipReason();
    if (skip) return;
    await localDown({ stack: STACK, log });
    up = await localUp(opts());
    nodes = up.outputs.appPrivateIps;
    firstRelease = up.outputs.release;
    console.log(`cluster up (1 LB + ${nodes.length} app nodes) in ${seconds(up.wallMs)}`);
    process.once("SIGINT", () => void localDown({ stack: STACK }).then(() => process.exit(130)));
});

after(async () => {
    if (summary.length) console.log(["", "scenario | requests sent | failed | time to recover", ...summary].join("\n"));
    if (!skip) await localDown({ stack: STACK, log }).catch(e => console.error(`teardown: ${e}`));
});

interface Outcome<T> {
    sent: number;
    failed: number;
    wrk: WrkResult[];
    probe: Probe;
    startedAt: number;
    result: T;
}

/** Runs `action` with wrk loading the site from two internet namespaces (GETs and POSTs), plus the probe. */
async function underLoad<T>(name: string, action: () => Promise<T>, recovery?: (o: Omit<Outcome<T>, "result"> & { result: T }) => string): Promise<Outcome<T>> {
    const url = `https://${up.outputs.lbPublicIp}/wait?ms=20`;
    const load = startMixedLoad(up.cloud.clients.slice(1, 3).map(c => c.netns), { url, connections: 32 });
    const probe = new Probe(up.outputs.lbPublicIp);
    probe.start();
    await new Promise(r => setTimeout(r, 2000));
    const startedAt = Date.now();
    let result: T;
    let seen: LoadResult;
    try {
        result = await action();
        await new Promise(r => setTimeout(r, 2000));
    } finally {
        // Stop the load whatever happened: a failed scenario must not leave wrk running.
        seen = await load.stop();
        await probe.stop();
    }
    const { sent, failed, wrk } = seen;
    const outcome = { sent, failed, wrk, probe, startedAt, result };
    const recover = recovery ? recovery(outcome) : `${seconds(probe.recoveryMs(startedAt))}`;
    const line = `${name} | ${seen.columns} | ${recover}`;
    summary.push(line);
    console.log(line);
    assert.ok(sent > 500, `the load ran (${sent} requests)`);
    return outcome;
}

const r = (name: string, fn: () => Promise<void>) => test(name, async t => (skip ? t.skip(skip) : fn()));

/** Who answers through the LB, over `n` requests. */
async function answers(n = 40): Promise<{ node: string; release: string }[]> {
    const out = await runInNetns(up.cloud.publicNetns, ["curl", "-sk", "--max-time", "10", ...Array.from({ length: n }, () => up.outputs.url)], { allowFailure: true });
    // An error page (not JSON) is an answer from no node.
    return out.stdout
        .split("\n")
        .filter(l => l.startsWith("{"))
        .map(l => JSON.parse(l));
}

/**
 * Waits until every answer names `release`. After a graceful reload, keep-alive connections opened
 * before it may still reach the previous workers until they finish (gunicornGracefulTimeout).
 */
async function onlyRelease(release: string): Promise<number> {
    const started = Date.now();
    const limit = started + (Number(localStackConfig(opts()).gunicorn.gracefulTimeout) + 10) * 1000;
    for (;;) {
        const seen = [...new Set((await answers()).map(a => a.release))];
        if (seen.length === 1 && seen[0] === release) return Date.now() - started;
        if (Date.now() > limit) assert.fail(`still serving ${JSON.stringify(seen)} after the graceful timeout`);
        await new Promise(res => setTimeout(res, 1000));
    }
}

async function failedUp(o: LocalStackOptions): Promise<ProgramFailure> {
    try {
        await localUp(o);
    } catch (e) {
        if (e instanceof ProgramFailure) return e;
        throw e;
    }
    assert.fail("the up should have failed");
}

r("1a. a configuration change (graceful reload) rolls through 4 nodes under load: 0 failed", async () => {
    const o = await underLoad("gunicorn setting (HUP)", async () => localUp(opts({ gunicornTimeout: "31" })));
    settings.gunicornTimeout = "31";
    assert.equal(o.failed, 0);
    assert.equal(o.result.remoteExecutions.filter(s => s.name.endsWith("-app")).length, 4);
    for (const s of o.result.remoteExecutions.filter(s => s.name.endsWith("-app"))) {
        assert.match(s.output ?? "", /conf changed; reloaded \(HUP\); healthy/);
        assert.doesNotMatch(s.output ?? "", /without a drain/, "each node drained itself");
    }
    // Node-side drains: the load balancer's configuration is never reloaded during a rollout.
    assert.ok(o.result.remoteExecutions.every(s => s.name !== "pycluster-e2e-lb-nginx"));
});

r("1b. a change that needs a restart (the app's environment) rolls through under load: 0 failed", async () => {
    secrets.appEnv = JSON.stringify({ FEATURE_FLAG: "on", API_TOKEN: "rel-secret-7391" });
    const o = await underLoad("environment (restart, drained)", async () => localUp(opts()));
    assert.equal(o.failed, 0);
    for (const s of o.result.remoteExecutions.filter(s => s.name.endsWith("-app"))) assert.match(s.output ?? "", /env changed; restarted; healthy/);
    // The value reached the app's environment, exactly, and only there.
    const pid = (await onHost(up, nodes[0], "systemctl show -p MainPID --value webapp")).trim();
    const environ = await onHost(up, nodes[0], `sudo cat /proc/${pid}/environ | tr '\\0' '\\n'`);
    assert.match(environ, /^API_TOKEN=rel-secret-7391$/m);
    assert.equal((await onHost(up, nodes[0], "sudo stat -c '%a %U' /etc/webapp/env")).trim(), "600 root");
});

r("1c. an app release rolls through under load: 0 failed; a release pin rolls it back in one up: 0 failed", async () => {
    const v2 = fs.mkdtempSync(path.join(os.tmpdir(), "pyc-app-v2-"));
    fs.cpSync(SAMPLE_APP_DIR, v2, { recursive: true });
    fs.appendFileSync(path.join(v2, "app.py"), "\n# v2: the same app, a new release\n");
    const release = await underLoad("app release", async () => localUp(opts({ appDir: v2, appModule: "app:application" })));
    settings.appDir = v2;
    settings.appModule = "app:application";
    assert.equal(release.failed, 0);
    const v2Id = release.result.outputs.release as string;
    assert.notEqual(v2Id, firstRelease);
    const switched = await onlyRelease(v2Id);
    console.log(`every node serves the new release ${seconds(switched)} after the rollout`);
    // Code-only release: same requirements, so a graceful reload suffices.
    for (const s of release.result.remoteExecutions.filter(s => s.name.endsWith("-app"))) assert.match(s.output ?? "", /release changed; reloaded \(HUP\)/);

    try {
        const pin = await underLoad("rollback by release pin", async () => localUp(opts({ appRelease: firstRelease })));
        assert.equal(pin.failed, 0);
        await onlyRelease(firstRelease);
        const kept = (await onHost(up, nodes[3], "ls /srv/webapp/releases")).trim().split("\n");
        assert.deepEqual(kept.sort(), [firstRelease, v2Id].sort());
    } finally {
        // Unpin: the current appDir (v2) again, whatever happened above.
        await localUp(opts());
    }
});

r("1d. workers recycled after gunicornMaxRequests under load, by graceful reloads: every node keeps accepting, 0 failed", async () => {
    // A limit the load reaches a few times per node (about 2,000 requests/s through 4 nodes of 5 workers).
    await localUp(opts({ gunicornMaxRequests: "1000", gunicornMaxRequestsJitter: "100" }));
    const o = await underLoad("workers recycled (max requests)", () => new Promise(res => setTimeout(res, 25_000)));
    assert.equal(o.failed, 0);
    const since = Math.floor((o.startedAt - 2000) / 1000);
    for (const ip of nodes) {
        const journal = await onHost(up, ip, `sudo journalctl -u webapp --since @${since} -o cat --no-pager`);
        const reloads = journal.match(/recycling the workers after \d+ requests: graceful reload/g) ?? [];
        assert.ok(reloads.length >= 1, `${ip}: the load brought its workers to the limit (${reloads.length} reloads)`);
        // gunicorn's own max_requests (a worker that stops accepting at once) never ran.
        assert.doesNotMatch(journal, /Autorestarting worker/, ip);
    }
    await localUp(opts());
});

r("2. a broken gunicorn setting is refused by the validator on every node; nothing switches: 0 failed", async () => {
    const o = await underLoad("broken gunicorn setting", async () => failedUp(opts({ appModule: "app:nothere" })));
    assert.equal(o.failed, 0);
    assert.match(o.result.message, /gunicorn rejected the new configuration or release; nothing was switched/);
    assert.match(o.result.message, /Failed to find attribute 'nothere'/);
    assert.match(o.result.message, /-check: /, "refused by the validation step, before any drain");
    for (const ip of nodes) assert.match(await onHost(up, ip, "systemctl show -p ExecStart --value webapp"), /app:application/);
    assert.equal(new Set((await answers()).map(a => a.node)).size, 4, "all four nodes still serve");
    // Back to the good configuration: nothing to do.
    assert.deepEqual((await localUp(opts())).remoteExecutions.map(s => s.name), []);
});

r("3. a broken nginx directive is refused by nginx -t; the old configuration keeps serving: 0 failed", async () => {
    // A wrong version override renders `http2 on;`, which the installed nginx 1.22 does not know.
    const o = await underLoad("broken nginx directive", async () => failedUp(opts({ nginxVersion: "1.26.0" })));
    assert.equal(o.failed, 0);
    assert.match(o.result.message, /pycluster-e2e-lb-nginx/);
    assert.match(o.result.message, /nginx rejected the new configuration; the running configuration is unchanged/);
    assert.match(o.result.message, /unknown directive "http2"/);
    assert.doesNotMatch(await onHost(up, "lb", "sudo nginx -T 2>/dev/null"), /http2 on;/);
    assert.deepEqual((await localUp(opts())).remoteExecutions.map(s => s.name), []);
});

r("4a. a change that validates but fails once it serves is caught by the smoke boot on every node: nothing switches, 0 failed", async () => {
    // A WSGI app on uvicorn workers: the module imports and gunicorn's checks pass, every request fails.
    const o = await underLoad("change failing at runtime (smoke boot)", async () => failedUp(opts({ appKind: "asgi" })));
    assert.equal(o.failed, 0);
    assert.match(o.result.message, /-check: /);
    assert.match(o.result.message, /booted on a spare port but \/healthz answered 500; nothing was switched/);
    for (const ip of nodes) assert.match(await onHost(up, ip, "sudo cat /etc/webapp/gunicorn.conf.py"), /^worker_class = "gevent"$/m, `${ip} runs gevent`);
    assert.deepEqual((await localUp(opts())).remoteExecutions.map(s => s.name), []);
});

r("4b. a release that fails its health gate on the node rolls back and stops the rollout; other nodes untouched", async () => {
    // Works when smoke-booted, but the hardened unit forbids what its health check does (a netlink
    // socket): only the real service fails. The node goes back to its release, the rollout stops.
    const bad = fs.mkdtempSync(path.join(os.tmpdir(), "pyc-app-bad-"));
    fs.cpSync(settings.appDir, bad, { recursive: true });
    fs.appendFileSync(
        path.join(bad, "app.py"),
        "\n_wsgi = application\n\ndef application(environ, start_response):\n    import socket\n    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW).close()\n    return _wsgi(environ, start_response)\n",
    );
    const before = (await answers()).map(a => a.release)[0];
    const o = await underLoad("release failing its health gate", async () => failedUp(opts({ appDir: bad })));
    assert.equal(o.failed, 0, "the node had drained itself before the bad release met any request");
    assert.match(o.result.message, /pycluster-e2e-app-0-app/);
    assert.match(o.result.message, /the change failed its health gate \(.*answered (500|nothing)\); rolled back to releases\/[0-9a-f]{12}, healthy again, back in rotation/);
    assert.match(o.result.message, /The rollout stops here; nodes not yet updated keep the old version/);
    assert.deepEqual([...new Set((await answers()).map(a => a.release))], [before], "every node serves the release it had");
    for (const ip of nodes.slice(1)) assert.equal((await onHost(up, ip, "readlink /srv/webapp/current")).trim(), `releases/${before}`);
    // Reverting re-uploads nothing new (the earlier release is on every node) and switches nothing.
    const revert = await localUp(opts());
    assert.deepEqual(revert.remoteExecutions.map(s => s.name).filter(n => n.endsWith("-app") || n.endsWith("-lb-admit")), [], "reverting: nothing to switch");
    for (const s of revert.remoteExecutions.filter(s => s.name.endsWith("-release"))) assert.match(s.output ?? "", /already on this host/);
    assert.equal(new Set((await answers()).map(a => a.node)).size, 4, "all four nodes in rotation");
});

r("4c. a drain whose admit never ran is a lease: the LB returns the node once it expired and the node is healthy", async () => {
    const server = `${nodes[0]}:8000`;
    const down = new RegExp(`server ${server.replace(/\./g, "\\.")} [^;]* down;`);
    await onHost(up, "lb", `sudo python3 /usr/local/lib/pycluster/hostctl.pyz upstream drain --server ${server} --lease 1 --health http://${server}/healthz`);
    assert.match(await onHost(up, "lb", "sudo nginx -T 2>/dev/null"), down);
    await new Promise(res => setTimeout(res, 1500));
    await onHost(up, "lb", "sudo systemctl start pycluster-drain-expiry.service");
    assert.doesNotMatch(await onHost(up, "lb", "sudo nginx -T 2>/dev/null"), down);
    assert.equal(new Set((await answers()).map(a => a.node)).size, 4);
});

r("5. an app node killed under load: at most 0.1% of requests fail, and it rejoins by itself", async () => {
    const name = "pycluster-e2e-app-3";
    let restartedAt = 0;
    const o = await underLoad(
        "app node killed",
        async () => {
            await up.cloud.killHost(name);
            await new Promise(res => setTimeout(res, 5000));
            restartedAt = Date.now();
            await up.cloud.startHost(name);
            // Rejoin: no `up`; the LB's passive checks let it back once gunicorn answers.
            const deadline = Date.now() + 60_000;
            while (Date.now() < deadline && (await answers(8)).every(a => a.node !== name)) await new Promise(res => setTimeout(res, 1000));
        },
        out => {
            const rejoin = out.probe.firstSeen(name, restartedAt);
            return `failures stopped ${seconds(out.probe.recoveryMs(out.startedAt))} after the kill; rejoined ${rejoin === undefined ? "never" : seconds(rejoin)} after its restart`;
        },
    );
    assert.ok(o.failed / o.sent <= 0.001, `${o.failed} of ${o.sent} failed`);
    assert.ok(o.probe.firstSeen(name, restartedAt) !== undefined, "the node serves again without an up");
});

r("6. an app node reboots: gunicorn and its kernel settings are back with no up", async () => {
    const name = "pycluster-e2e-app-2";
    const ip = nodes[2];
    const cfg = localStackConfig(opts());
    const o = await underLoad("app node reboot", async () => {
        const boot = up.cloud.hostBootId(name);
        await onHost(up, ip, "sudo systemctl reboot").catch(() => undefined);
        await up.cloud.waitForReboot(name, boot);
        const deadline = Date.now() + 60_000;
        while (Date.now() < deadline && (await answers(8)).every(a => a.node !== name)) await new Promise(res => setTimeout(res, 1000));
    });
    assert.ok(o.failed / o.sent <= 0.001, `${o.failed} of ${o.sent} failed`);
    assert.equal((await onHost(up, ip, "systemctl is-active webapp")).trim(), "active");
    assert.equal((await onHost(up, ip, "cat /proc/sys/net/core/somaxconn")).trim(), String(cfg.kernel.somaxconn));
    assert.equal((await onHost(up, ip, "cat /proc/sys/net/ipv4/ip_local_port_range")).trim().replace(/\s+/g, " "), "1024 65535");
});

r("7. a host unreachable over SSH during up: bounded retries, an error naming the host; a re-run finishes", async () => {
    const name = "pycluster-e2e-app-1";
    const netns = up.cloud.host(name).netns;
    const block = "add table inet pyc_test\nadd chain inet pyc_test input { type filter hook input priority -10; }\nadd rule inet pyc_test input tcp dport 22 reject with tcp reset\n";
    await runInNetns(netns, ["nft", "-f", "-"], { input: block });
    const started = Date.now();
    let failure: ProgramFailure;
    try {
        failure = await failedUp(opts({ gunicornTimeout: "32" }));
    } finally {
        await runInNetns(netns, ["nft", "delete", "table", "inet", "pyc_test"]);
    }
    const gaveUp = Date.now() - started;
    assert.match(failure.message, /pycluster-e2e-app-1-check: update failed: ssh \(via proxy\) debian@10\.78\.0\.4:22: .*Connection refused \(after 11 failed dials\)/);
    assert.ok(gaveUp < 120_000, `gave up after ${seconds(gaveUp)}`);
    const rerun = await localUp(opts({ gunicornTimeout: "32" }));
    settings.gunicornTimeout = "32";
    assert.equal(rerun.remoteExecutions.filter(s => s.name.endsWith("-app")).length, 4, "the re-run finishes the job");
    summary.push(`SSH unreachable during up | - | - | gave up after ${seconds(gaveUp)} (11 dials); re-run finished in ${seconds(rerun.wallMs)}`);
});

r("8. provisioning that starts while cloud-init still runs waits for it", async () => {
    const slow = "pycluster-e2e-app-4";
    const vendorData = (instance: string) =>
        instance === slow ? `#cloud-config\nruncmd:\n  - [sh, -c, "sleep 20; date +%s > /var/lib/cloud/pycluster-slow-done"]\n` : undefined;
    const grown = await localUp(opts({ appNodeCount: "5" }, { vendorData }));
    const step = (suffix: string) => grown.remoteExecutions.find(s => s.name === `${slow}-${suffix}`)!;
    const doneAt = Number((await onHost(grown, grown.outputs.appPrivateIps[4], "cat /var/lib/cloud/pycluster-slow-done")).trim()) * 1000;
    console.log(`slow cloud-init: bootstrap waited ${seconds(step("bootstrap").ms)}; cloud-init's last command ended before the next step began`);
    assert.ok(step("bootstrap").ms >= 15_000, `bootstrap waited ${step("bootstrap").ms} ms`);
    assert.ok(doneAt <= step("packages").startedAt, "packages ran after cloud-init finished");
    await localUp(opts());
});

r("9. past its request-rate limit the LB answers 503 with Retry-After at once (no resets, no timeouts) and recovers as the load drops", async () => {
    // The model's limit for these flavors is above what this shared machine can send: an
    // operator's lower limit (lbRequestRateLimit) exercises the same nginx limits.
    const limit = 200;
    const overloadS = 15;
    await localUp(opts({ lbRequestRateLimit: String(limit) }));
    const client = new PacedClient(up.outputs.lbPublicIp, "/wait?ms=20");
    let droppedAt = 0;
    try {
        client.rate(3 * limit);
        await new Promise(res => setTimeout(res, overloadS * 1000));
        droppedAt = Date.now();
        client.rate(limit / 2);
        await new Promise(res => setTimeout(res, 10_000));
    } finally {
        await client.stop();
        await localUp(opts());
    }
    const during = client.samples.filter(s => s.at < droppedAt);
    const after = client.samples.filter(s => s.at >= droppedAt);
    const o = outcomes(during);
    const a = outcomes(after);
    // Recovered = from the drop to the last request that was not answered 200.
    const recoveredMs = Math.max(0, ...after.filter(s => s.status !== 200).map(s => s.at - droppedAt));
    const refused = during.filter(s => s.status === 503).map(s => s.ms).sort((x, y) => x - y);
    const p99Refused = refused[Math.max(0, Math.ceil(0.99 * refused.length) - 1)] ?? 0;
    const line = `overload: ${3 * limit}/s for ${overloadS} s against a limit of ${limit}/s | ${during.length} | ${JSON.stringify(o)} | 503 answered in ${p99Refused} ms (p99); after the drop to ${limit / 2}/s: ${JSON.stringify(a)}, recovered ${seconds(recoveredMs)} after it`;
    summary.push(line);
    console.log(line);

    assert.ok(during.length >= 0.9 * 3 * limit * overloadS, `the client kept its rate (${during.length} requests)`);
    // Bound: resets and timeouts at most 0.1% of the requests (none is expected).
    const hard = during.filter(s => s.error !== undefined).length;
    assert.ok(hard <= 0.001 * during.length, `${hard} requests reset, timed out or failed: ${JSON.stringify(o)}`);
    assert.deepEqual(Object.keys(o).filter(k => !["200", "503 with Retry-After", "reset", "timeout"].includes(k)), [], `no 502, 504 or other errors: ${JSON.stringify(o)}`);
    assert.equal(o["503 without Retry-After"] ?? 0, 0);
    // limit/s plus a burst of one second's worth are let through; the rest is refused.
    assert.ok((o["200"] ?? 0) >= 0.8 * limit * overloadS && (o["200"] ?? 0) <= 1.2 * limit * (overloadS + 1), `served ${o["200"]} at a limit of ${limit}/s`);
    assert.ok((o["503 with Retry-After"] ?? 0) >= 0.5 * during.length, `refused ${o["503 with Retry-After"]} of ${during.length}`);
    assert.ok(p99Refused < 500, `refusals are fast: p99 ${p99Refused} ms`);
    assert.ok(recoveredMs <= 3000, `every request answered 200 again within 3 s of the drop (${recoveredMs} ms)`);
    assert.ok((a["200"] ?? 0) >= 0.9 * after.length, JSON.stringify(a));
});
