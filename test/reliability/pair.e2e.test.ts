/**
 * The load-balancer pair (lbCount 2, Pulumi.pair.yaml) under load on local hosts: 2 LBs with
 * keepalived behind one public address (the router NATs it to the VIP, which either LB holds),
 * 2 app nodes and Prometheus. Each scenario prints requests sent, failed and the time to recover.
 * The tests run in order and share the cluster.
 */
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { localDown, localUp, LocalStackOptions, UpResult } from "../../local/stack";
import { LoadResult, Probe, startMixedLoad, WrkResult } from "../support/load";
import { e2eSkipReason, onHost, seconds } from "../e2e/support";
import { keepalivedEvents, pairScenario } from "../support/keepalivedJournal";
import { prepareLoadgenCgroup, removeLoadgenCgroup, startH2load, stopLoadGenerators } from "../../bench/lib/loadgen";
import { closedLoop, rampPlan } from "../../bench/lib/calibration";
import { runInNetns } from "../../local/exec";

const STACK = "pair";
// Verbose: every step of every `up`, with the time it ended (to line up with the probe's failure windows).
const log = process.env.PYCLUSTER_E2E_VERBOSE ? (l: string) => console.log(`  ${new Date().toISOString().slice(11, 23)} ${l}`) : () => undefined;
const settings: Record<string, string> = {};
// PYCLUSTER_PAIR_APP_ENV: the app's environment for a diagnostic run, e.g. {"GEVENT_MONITOR_THREAD_ENABLE":"true"} (gevent then logs a blocked event loop).
const appEnv = process.env.PYCLUSTER_PAIR_APP_ENV ? { appEnv: process.env.PYCLUSTER_PAIR_APP_ENV } : undefined;
const opts = (extra: Record<string, string> = {}): LocalStackOptions => ({ stack: STACK, log, set: { ...settings, ...extra }, setSecret: appEnv });
/**
 * Requests held in flight while the holder dies: the issue's 20,000 (PYCLUSTER_PAIR_IN_FLIGHT
 * overrides). They are opened from three internet namespaces at half the new TLS connections a
 * second this machine completes through the pair's address, measured first with the same clients
 * (the bench's calibration and ramp share). At a fixed 1,000/s, CI's slower machine opened only
 * 7,316 in 100 s: handshakes queued past what the holder completes timed out half done, and the
 * saturated holder missed its health checks. Each request waits up to 9 minutes, under the stack's
 * proxyReadTimeout (Pulumi.pair.yaml): with nginx's default 75 s the first ones were answered 504
 * before the last had opened.
 */
const IN_FLIGHT = Number(process.env.PYCLUSTER_PAIR_IN_FLIGHT ?? 20_000);
const HOLD_MS = 540_000;
const RAMP_SHARE = 0.5;

let skip: string | undefined;
let up: UpResult;
let lbs: { name: string; privateIp: string }[] = [];
let vip = "";
const summary: string[] = [];

before(async () => {
    skip = await e2eSkipReason();
    if (skip) return;
    await localDown({ stack: STACK, log });
    up = await localUp(opts());
    lbs = up.outputs.lbs;
    vip = up.outputs.lbVip;
    console.log(`pair up (2 LBs + ${up.outputs.appPrivateIps.length} app nodes + Prometheus) in ${seconds(up.wallMs)}`);
    prepareLoadgenCgroup();
});

after(async () => {
    if (summary.length) console.log(["", "scenario | requests sent | failed | time to recover", ...summary].join("\n"));
    if (skip) return;
    await stopLoadGenerators().catch(() => undefined);
    removeLoadgenCgroup();
    await localDown({ stack: STACK, log }).catch(e => console.error(`teardown: ${e}`));
});

/**
 * keepalived's state changes and failed checks on each LB since `sinceMs` (from the LB's console:
 * SSH through the address is what a move would break). Printed when a scenario fails.
 */
const vrrpEvents = (sinceMs: number) => keepalivedEvents(up.cloud, lbs.map(lb => lb.name), sinceMs);

/** The address is still on `before`, and keepalived changed no state on either LB since `sinceMs`. */
async function assertAddressStayed(before: string, sinceMs: number): Promise<void> {
    assert.equal(await holder(), before, "the address stayed on its holder");
    assert.deepEqual((await vrrpEvents(sinceMs)).filter(l => /Entering|FAULT/.test(l)), [], "no VRRP state change");
}

const r = (name: string, fn: () => Promise<void>) =>
    pairScenario(name, fn, { skip: () => skip, pair: () => up && { cloud: up.cloud, lbNames: lbs.map(lb => lb.name) } });

/** The LB whose port answers ARP for the VIP (one name; more than one is a split brain). */
async function holders(): Promise<string[]> {
    return up.cloud.whoAnswers(vip, 800);
}

async function holder(): Promise<string> {
    const h = await holders();
    assert.equal(h.length, 1, `exactly one LB answers for the VIP ${vip}: ${JSON.stringify(h)}`);
    return h[0];
}

/** wrk from two internet namespaces (GETs and POSTs) plus the 50 ms probe around `action`; returns what they saw. */
async function underLoad<T>(name: string, action: (startedAt: number) => Promise<T>, o: { connections?: number } = {}) {
    const url = `https://${up.outputs.lbPublicIp}/wait?ms=20`;
    const generators = up.cloud.clients.slice(1, 3);
    const connections = generators.length * (o.connections ?? 32);
    const load = startMixedLoad(generators.map(c => c.netns), { url, connections: o.connections ?? 32, timeoutS: 10 });
    const probe = new Probe(up.outputs.lbPublicIp, 50, 2000);
    probe.start();
    await new Promise(res => setTimeout(res, 2000));
    const startedAt = Date.now();
    let result: T;
    let seen: LoadResult;
    try {
        result = await action(startedAt);
        await new Promise(res => setTimeout(res, 3000));
    } finally {
        seen = await load.stop();
        await probe.stop();
    }
    const { sent, failed, wrk } = seen;
    const recoverMs = probe.recoveryMs(startedAt);
    const line = `${name} | ${seen.columns} | ${seconds(recoverMs)}`;
    summary.push(line);
    console.log(line);
    const windows = probe.failedWindows(startedAt);
    if (windows.length) console.log(`  the probe's failures (from ${new Date(startedAt).toISOString().slice(11, 23)}): ${windows.join("; ")}`);
    if (windows.length || failed) console.log(await nginxErrors(startedAt), "\n" + (await slowRequests(startedAt)), "\n" + (await appJournals(startedAt)));
    assert.ok(sent > 500, `the load ran (${sent} requests)`);
    return { sent, failed, recoverMs, probe, result, startedAt, wrk, connections };
}

/** Each running LB's nginx error log (warn and above) since `sinceMs`, to tell a stall's cause. */
async function nginxErrors(sinceMs: number): Promise<string> {
    // nginx stamps its log in the host's local time, UTC on the local hosts: "2026/12/03 21:05:01".
    const since = new Date(sinceMs).toISOString().slice(0, 19).replace("T", " ").replace(/-/g, "/");
    const lines = await onRunningLbs(`awk -v s=${JSON.stringify(since)} '($1" "$2) >= s' /var/log/nginx/error.log | tail -n 40`);
    return section("nginx's error log during the scenario", lines, "(nothing)");
}

/** The output lines of `script` (stdin `input`) on each running LB's console, each prefixed with the LB's name. */
async function onRunningLbs(script: string, input?: string): Promise<string[]> {
    return onRunningHosts(lbs.map(lb => lb.name), script, input);
}

/** The output lines of `script` (stdin `input`) on the console of each of `names` that runs, each prefixed with the host's name. */
async function onRunningHosts(names: string[], script: string, input?: string): Promise<string[]> {
    const lines: string[] = [];
    for (const name of names) {
        if (!up.cloud.hosts().some(h => h.name === name && h.running)) continue;
        const out = (await up.cloud.consoleRun(name, script, input)).stdout;
        lines.push(...out.split("\n").filter(Boolean).map(l => `${name}: ${l}`));
    }
    return lines;
}

/** A printout section: its title, then its lines (or `empty`), indented under it. */
const section = (title: string, lines: string[], empty: string) => [`  ${title}:`, ...(lines.length ? lines : [empty])].join("\n    ");

/**
 * Each running LB's slowest requests since `sinceMs` (its access log: 2 s or more), with where the
 * time went (connecting to the app node, waiting for its header): whether a stall was in nginx, on
 * the way to an app node, or in one.
 */
async function slowRequests(sinceMs: number): Promise<string> {
    const filter = `import json, sys
from datetime import datetime
since = float(sys.argv[1])
slow = []
for line in open("/var/log/nginx/access.log", errors="replace"):
    try:
        e = json.loads(line)
    except ValueError:
        continue
    end = datetime.fromisoformat(e["time"]).timestamp()
    if end >= since and float(e["request_time"]) >= 2:
        slow.append((end - float(e["request_time"]), e))
for start, e in sorted(slow, key=lambda x: x[0])[:40]:
    print(f'started {datetime.utcfromtimestamp(start).strftime("%H:%M:%S.%f")[:12]} took {e["request_time"]} s, {e["status"]} {e["uri"]} from {e["remote_addr"]}: upstream {e["upstream_addr"]} ({e["upstream_status"]}) connect {e["upstream_connect_time"]} header {e["upstream_header_time"]}')
`;
    const lines = await onRunningLbs(`python3 - ${sinceMs / 1000}`, filter);
    return section("requests of 2 s or more in the LBs' access logs", lines, "(none)");
}

/**
 * What gunicorn logged on each running app node since `sinceMs`: worker boots, exits, restarts and
 * timeouts, signals, and gevent's reports of a blocked event loop (GEVENT_MONITOR_THREAD_ENABLE in
 * appEnv), to tell whether a stall was a node's workers changing or a worker that stopped.
 */
async function appJournals(sinceMs: number): Promise<string> {
    const apps = new Set<string>(up.outputs.appPrivateIps as string[]);
    const names = up.cloud.hosts().filter(h => apps.has(h.privateIp)).map(h => h.name);
    const script = `journalctl -u webapp --since @${Math.floor(sinceMs / 1000)} -o short-iso-precise --no-pager | grep -E 'Booting worker|exiting|Autorestarting|TIMEOUT|Handling signal|Shutting down|Listening at|blocked|Traceback|Error' | tail -n 30`;
    return section("gunicorn's journal on the app nodes during the scenario", await onRunningHosts(names, script), "(nothing)");
}

/** Reloads of `lb`'s nginx since `sinceMs` (hostctl applies a configuration with systemctl reload). */
async function nginxReloads(lb: string, sinceMs: number): Promise<number> {
    const out = (await up.cloud.consoleRun(lb, `journalctl -u nginx --since @${Math.floor(sinceMs / 1000)} --no-pager -o cat | grep -c '^Reloaded' || true`)).stdout;
    return Number(out.trim() || 0);
}

/**
 * A rollout through the holder's nginx reloads fails no request. A plain reload would: its old workers
 * close every idle keep-alive connection at once, and a client that had just sent on one loses that
 * request (RFC 9112 9.3.1 lets it retry; wrk does not). hostctl closes busy connections at a response
 * boundary for a second first (provisioning/host/hostctl/nginx_reload.py). The reloads are counted
 * so that a scenario that reloaded nothing cannot pass for one that reloaded safely.
 */
function assertNoFailedRequests(o: { failed: number; sent: number; wrk: WrkResult[] }, reloads: number): void {
    const sum = (f: (e: WrkResult["errors"]) => number) => o.wrk.reduce((n, w) => n + f(w.errors), 0);
    const errors = JSON.stringify(o.wrk.map(w => w.errors));
    console.log(`${reloads} reloads of the holder's nginx; wrk failed ${o.failed} of ${o.sent} (${errors})`);
    assert.ok(reloads >= 1, `the holder's nginx reloaded (${reloads})`);
    assert.equal(sum(e => e.connect + e.status + e.read + e.write + e.timeout), 0, `no failed or timed-out request through the reloads: ${errors}`);
}

r(`1. the LB holding the address powers off with ${IN_FLIGHT.toLocaleString("en")} requests in flight: the address answers again within 5 s, failures only inside that window`, async () => {
    const dying = await holder();
    const survivor = lbs.find(l => l.name !== dying)!.name;
    // Slow requests held open, one per connection; 5% more than needed, as a handshake may fail
    // under the ramp and h2load does not retry it. (The count printed below is the first poll at or
    // above IN_FLIGHT, not how many were held in the end.)
    const holdClients = up.cloud.clients.slice(3, 6);
    const url = `https://${up.outputs.lbPublicIp}/`;
    const cal = await closedLoop("handshakes", url, holdClients.map(c => c.netns), 16, 16 * 60);
    const ramp = rampPlan({ rampShare: RAMP_SHARE }, { machineHandshakesPerSecond: cal.perSecond });
    const per = Math.ceil((IN_FLIGHT * 1.05) / holdClients.length);
    // Half again the time the ramp should take, and a minute of the hold left for the power-off.
    const rampLimitMs = Math.max(75_000, 1500 * ((IN_FLIGHT * 1.05) / ramp.rate) + 30_000);
    console.log(`ramp at ${ramp.rate}/s: ${ramp.source} (${cal.ok} of ${cal.requests} in ${seconds(cal.seconds * 1000)}); given ${seconds(rampLimitMs)} to reach ${IN_FLIGHT}`);
    assert.ok(rampLimitMs <= HOLD_MS - 60_000, `this machine completes ${cal.perSecond.toFixed(0)} new TLS connections/s through the pair: opening ${IN_FLIGHT} at ${ramp.rate}/s does not fit in the ${HOLD_MS / 1000} s each is held; set PYCLUSTER_PAIR_IN_FLIGHT lower`);
    holdClients.forEach((c, i) =>
        startH2load(`held-${i + 1}`, c.netns, {
            url: `https://${up.outputs.lbPublicIp}/wait?ms=${HOLD_MS}`,
            clients: per,
            requests: per,
            connectionsPerSecond: Math.max(1, Math.round(ramp.rate / holdClients.length)),
            connectionTimeoutS: HOLD_MS / 1000 + 60,
        }),
    );
    try {
        // Wait until the holder holds them: nginx's active connections (stub_status).
        const ip = lbs.find(l => l.name === dying)!.privateIp;
        const rampStart = Date.now();
        let active = 0;
        while (Date.now() - rampStart < rampLimitMs) {
            // On the console: the ramp saturates the LB, and an SSH session through it is not the point here.
            const status = (await up.cloud.consoleRun(dying, `curl -s --max-time 5 http://${ip}:8080/stub_status || true`)).stdout;
            active = Number(/Active connections:\s*(\d+)/.exec(status)?.[1] ?? 0);
            if (active >= IN_FLIGHT) break;
            await new Promise(res => setTimeout(res, 1000));
        }
        console.log(`in flight on ${dying} before the power-off: ${active} connections (${seconds(Date.now() - rampStart)} to open)`);
        assert.ok(active >= IN_FLIGHT, `at least ${IN_FLIGHT} requests in flight (${active})`);
        assert.deepEqual(await holders(), [dying], "the address stayed on its holder while the load ramped up");

        const o = await underLoad(`holder powered off (${IN_FLIGHT.toLocaleString("en")} in flight)`, async () => up.cloud.powerOff(dying));
        const back = o.probe.samples.filter(s => s.at >= o.startedAt && s.ok).map(s => s.at);
        console.log(`public address answered again ${seconds(Math.min(...back) - o.startedAt)} after the power-off; last failed probe ${seconds(o.recoverMs)}`);
        // The held requests were on the LB that died: they are lost with it (their TCP state was there).
        const total = o.sent + active;
        console.log(`failed: wrk ${o.failed} of ${o.sent}; the ${active} held on ${dying} went down with it (counted as failed, not observed one by one): at most ${o.failed + active} of ${total} (${((100 * (o.failed + active)) / total).toFixed(1)}%)`);
        assert.ok(o.recoverMs < 5000, `recovered within 5 s (${o.recoverMs} ms)`);
        assert.deepEqual(await holders(), [survivor]);
        const late = o.probe.samples.filter(s => s.at > o.startedAt + 5000 && !s.ok);
        assert.equal(late.length, 0, `no failure after the window: ${JSON.stringify(late.slice(0, 3))}`);
    } finally {
        await stopLoadGenerators();
    }
});

r("2. the dead LB comes back as backup: the address does not move again", async () => {
    const current = await holder();
    const dead = lbs.find(l => l.name !== current)!.name;
    const o = await underLoad("dead LB powered on", async () => {
        await up.cloud.powerOn(dead);
        // keepalived starts on boot with the pushed configuration; give it time to (not) take over.
        await new Promise(res => setTimeout(res, 15_000));
    });
    assert.equal(o.failed, 0);
    assert.deepEqual(await holders(), [current], "nopreempt: the address stays");
    const state = await onHost(up, lbs.find(l => l.name === dead)!.privateIp, "systemctl is-active keepalived; sudo journalctl -u keepalived -b --no-pager | grep -c 'Entering BACKUP STATE' || true");
    assert.match(state, /^active/m);
});

/** When each LB's nginx.conf was last switched (epoch ms): the hosts share this machine's clock. */
async function switchedAt(lbIp: string): Promise<number> {
    return 1000 * Number(await onHost(up, lbIp, "sudo stat -c %.3Y /etc/nginx/nginx.conf"));
}

r("3. an nginx setting changed with up rolls through both LBs, one at a time, the holder last: 0 failed requests", async () => {
    const before = await holder();
    const o = await underLoad("nginx setting (both LBs)", async () => localUp(opts({ clientMaxBodySize: "20m" })));
    settings.clientMaxBodySize = "20m";
    assertNoFailedRequests(o, await nginxReloads(before, o.startedAt));
    const nginxSteps = o.result.remoteExecutions.filter(s => /-lb(-2)?-nginx(-finish)?$/.test(s.name));
    assert.deepEqual(nginxSteps.map(s => s.name.replace(/^.*?-lb/, "lb")), ["lb-nginx", "lb-2-nginx", "lb-nginx-finish"]);
    for (const lb of lbs) assert.match(await onHost(up, lb.privateIp, "sudo nginx -T 2>/dev/null"), /client_max_body_size 20m;/);
    // The backup switched first and the holder after it, whichever of the two holds the address.
    const holderIp = lbs.find(l => l.name === before)!.privateIp;
    const backupIp = lbs.find(l => l.name !== before)!.privateIp;
    const [backupAt, holderAt] = [await switchedAt(backupIp), await switchedAt(holderIp)];
    console.log(`nginx switched: backup ${new Date(backupAt).toISOString()}, holder ${new Date(holderAt).toISOString()} (${seconds(holderAt - backupAt)} later)`);
    assert.ok(o.startedAt < backupAt && backupAt < holderAt, "the backup switched first, then the holder");
    const firstPass = nginxSteps[0].output ?? "";
    assert.match(firstPass, before === lbs[0].name ? /not switched: this LB holds the public address/ : /configuration validated and reloaded/, firstPass);
    // Each LB served the site through its new configuration before the rollout went on (docs/pair.md).
    const switched = nginxSteps.filter(s => /configuration validated and reloaded/.test(s.output ?? ""));
    assert.equal(switched.length, 2, "each LB switched once");
    for (const s of switched) assert.match(s.output ?? "", /configuration validated and reloaded; the site answers through it/, s.name);
    // A reload is no reason to move the address: the established connections live on the holder.
    await assertAddressStayed(before, o.startedAt);
});

/** Each node's gunicorn master PID (the app unit's MainPID), as "<host>: <pid>". */
async function gunicornPids(names: string[]): Promise<string[]> {
    const pids = await onRunningHosts(names, "systemctl show -p MainPID --value webapp.service");
    assert.equal(pids.length, names.length, `a MainPID from each of ${names.join(", ")}: ${pids.join("; ")}`);
    assert.ok(pids.every(p => /: [1-9]\d*$/.test(p)), `gunicorn runs on each: ${pids.join("; ")}`);
    return pids;
}

/** The upstream servers in an LB's running nginx configuration. */
async function upstreamOf(lbIp: string): Promise<string[]> {
    return [...(await onHost(up, lbIp, "sudo nginx -T 2>/dev/null")).matchAll(/^\s+server (\S+:\d+)[^;]*;/gm)].map(m => m[1]).sort();
}

r("4. scaling the app tier 2 -> 3 -> 2 under load: the upstream changes on both LBs, the address stays; 0 failed requests", async () => {
    const before = await holder();
    const nodes = up.outputs.appPrivateIps.length;
    // PYCLUSTER_PAIR_SCALE_ROUNDS repeats the 2 -> 3 -> 2 round, to chase the stall below.
    const rounds = Number(process.env.PYCLUSTER_PAIR_SCALE_ROUNDS ?? 1);
    for (const count of Array.from({ length: rounds }, () => [nodes + 1, nodes]).flat()) {
        // 2 x 8 connections: at 2 x 32 the two vCPUs went to wrk and TLS, and each up took over 3 minutes.
        const staying = appHosts().filter(name => Number(/(\d+)$/.exec(name)![1]) < nodes);
        assert.equal(staying.length, nodes, `the nodes that stay: ${staying.join(", ")}`);
        const pidsBefore = await gunicornPids(staying);
        const o = await underLoad(`app tier ${count === nodes ? `back to ${count}` : `${nodes} -> ${count}`} (both LBs, 16 connections)`, async () => localUp(opts({ appNodeCount: String(count) })), { connections: 8 });
        const ips = (o.result.outputs.appPrivateIps as string[]).map(ip => `${ip}:8000`).sort();
        assert.equal(ips.length, count);
        // Scaling leaves the serving nodes alone (docs/rollout.md): no step of theirs ran, their gunicorn kept its master.
        const theirSteps = o.result.remoteExecutions.map(s => s.name).filter(n => staying.some(h => n.startsWith(`${h}-`)));
        assert.deepEqual(theirSteps, [], `steps of the nodes that stay ran on a scale to ${count}`);
        assert.deepEqual(await gunicornPids(staying), pidsBefore, "the staying nodes' gunicorn masters");
        for (const lb of lbs) assert.deepEqual(await upstreamOf(lb.privateIp), ips, `${lb.name}'s upstream`);
        // No timeout either. The one stall seen (every connection timing out once during a scale-up,
        // docs/pair.md) came while the serving nodes were rolled one by one; scaling no longer touches
        // them, and the stall has not come back. Should it, the probe's failure windows and the
        // journals printed above are there to find it.
        assertNoFailedRequests(o, await nginxReloads(before, o.startedAt));
        await assertAddressStayed(before, o.startedAt);
    }
});

/** Alert names firing in Prometheus now. */
async function firing(): Promise<string[]> {
    // On the monitoring host's console: SSH goes through the public address, which a split brain makes flap.
    const mon = (up.outputs.monitoring.prometheus.url as string).replace(/\/$/, "");
    const monHost = up.cloud.hosts().find(h => h.privateIp === /http:\/\/([\d.]+)/.exec(mon)![1])!.name;
    const out = (await up.cloud.consoleRun(monHost, `curl -s '${mon}/api/v1/alerts'`)).stdout;
    return (JSON.parse(out).data.alerts as { labels: { alertname: string }; state: string }[]).filter(a => a.state === "firing").map(a => a.labels.alertname);
}

async function waitFor(what: string, check: () => Promise<boolean>, limitMs: number): Promise<number> {
    const started = Date.now();
    while (!(await check())) {
        if (Date.now() - started > limitMs) assert.fail(`${what}: not within ${seconds(limitMs)}`);
        await new Promise(res => setTimeout(res, 2000));
    }
    return Date.now() - started;
}

r("5. split brain: VRRP between the LBs cut -> both hold the address and the alert fires; restored -> one holder, alert resolved", async () => {
    assert.deepEqual((await firing()).filter(a => a.startsWith("Lb")), [], "no pair alert before");
    await up.cloud.cutVrrp(lbs[0].name, lbs[1].name);
    try {
        const both = await waitFor("both LBs claim the VIP", async () => (await holders()).length === 2, 15_000);
        console.log(`VRRP cut: both LBs MASTER after ${seconds(both)}`);
        const fired = await waitFor("LbSplitBrain fires", async () => (await firing()).includes("LbSplitBrain"), 120_000);
        console.log(`LbSplitBrain firing ${seconds(fired)} after both claimed the address`);
    } finally {
        await up.cloud.restoreVrrp(lbs[0].name, lbs[1].name);
    }
    const one = await waitFor("one holder again", async () => (await holders()).length === 1, 15_000);
    console.log(`VRRP restored: one holder after ${seconds(one)}`);
    await waitFor("LbSplitBrain resolves", async () => !(await firing()).includes("LbSplitBrain"), 120_000);
});

/** A status and its Retry-After from the public address, from the internet (curl in a client namespace). */
async function publicAnswer(): Promise<{ status: number; retryAfter?: string }> {
    const r = await runInNetns(up.cloud.clients[1].netns, ["curl", "-sk", "-o", "/dev/null", "-D", "-", "--max-time", "5", `https://${up.outputs.lbPublicIp}/`], { allowFailure: true });
    const status = Number(/^HTTP\/\S+ (\d+)/m.exec(r.stdout)?.[1] ?? 0);
    return { status, retryAfter: /^retry-after: *(\S+)/im.exec(r.stdout)?.[1] };
}

/** The app nodes running in the local cloud now (scenario 4 changed their number after the first up). */
const appHosts = () => up.cloud.hosts().filter(h => h.running && /-app-\d+$/.test(h.name)).map(h => h.name);

r("6. every app node down: the holder keeps the address and answers 503 + Retry-After; the holder cut off from the app nodes: the address moves to the LB that reaches them", async () => {
    const before = await holder();
    const peer = lbs.find(l => l.name !== before)!;
    const apps = appHosts();
    assert.ok(apps.length >= 2, JSON.stringify(apps));
    const since = Date.now();
    for (const app of apps) await up.cloud.consoleRun(app, "systemctl stop webapp");
    try {
        // Three failed checks in a row would FAULT an LB: 2 s apart, each up to 4.5 s probing the nodes.
        await new Promise(res => setTimeout(res, 25_000));
        const answer = await publicAnswer();
        console.log(`every app node stopped: the public address answers ${answer.status} (Retry-After ${answer.retryAfter}); holders ${JSON.stringify(await holders())}`);
        assert.deepEqual(await holders(), [before], "the address stays: neither LB reaches an app node, so moving it would only drop connections");
        assert.equal(answer.status, 503);
        assert.ok(answer.retryAfter, "503 with Retry-After");
        const events = await vrrpEvents(since);
        assert.deepEqual(events.filter(l => /Entering|FAULT/.test(l)), [], "no VRRP state change");
        assert.ok(events.some(l => /nor from the peer: keeping the address/.test(l)), `the check says why it keeps the address:\n${events.join("\n")}`);
    } finally {
        for (const app of apps) await up.cloud.consoleRun(app, "systemctl start webapp");
    }
    await waitFor("the site answers 200 again", async () => (await publicAnswer()).status === 200, 60_000);

    // Now only the holder loses the app nodes (their firewalls drop its connections): its peer reaches
    // them, so the holder lets go of the address and the peer serves.
    const holderIp = lbs.find(l => l.name === before)!.privateIp;
    const block = `add table inet pyc_test\nadd chain inet pyc_test input { type filter hook input priority -10; }\nadd rule inet pyc_test input ip saddr ${holderIp} tcp dport 8000 drop\n`;
    const cutAt = Date.now();
    for (const app of apps) await runInNetns(up.cloud.host(app).netns, ["nft", "-f", "-"], { input: block });
    let moved: number;
    try {
        moved = await waitFor(`the address moves to ${peer.name}`, async () => JSON.stringify(await holders()) === JSON.stringify([peer.name]), 60_000);
        const answer = await publicAnswer();
        console.log(`holder cut off from the app nodes: the address moved to ${peer.name} after ${seconds(moved)}; the public address answers ${answer.status}`);
        assert.equal(answer.status, 200);
    } finally {
        for (const app of apps) await runInNetns(up.cloud.host(app).netns, ["nft", "delete", "table", "inet", "pyc_test"], { allowFailure: true });
    }
    // Reconnected, the former holder rejoins as backup: nopreempt, the address stays.
    await new Promise(res => setTimeout(res, 15_000));
    assert.deepEqual(await holders(), [peer.name]);
    const events = await vrrpEvents(cutAt);
    assert.ok(events.some(l => /the peer reaches one/.test(l)), `the holder's check said why it let go:\n${events.join("\n")}`);
    summary.push(`every app node down | - | - | address kept, 503 + Retry-After`);
    summary.push(`holder cut off from the app nodes | - | - | address on the peer after ${seconds(moved)}`);
});
