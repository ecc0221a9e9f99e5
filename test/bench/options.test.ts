import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { parse as parseYaml } from "yaml";
import { defaultGraceMs, parseCount, parseDuration, parseOptions, stepTiming } from "../../bench/lib/options";
import { evaluateTargets, isHeld, nextProbe, roundProbe } from "../../bench/lib/results";
import { planChunks } from "../../bench/lib/loadgen";
import { fillTemplate, loadFixtures, planScript, sysctlSettings } from "../../bench/lib/configs";
import { parseAppProbe, parseLbProbe, reservedInRange } from "../../bench/lib/hosts";

test("counts and durations in the units the command line takes", () => {
    assert.equal(parseCount("10k"), 10_000);
    assert.equal(parseCount("2.5k"), 2500);
    assert.equal(parseCount("770"), 770);
    assert.throws(() => parseCount("10m"), /not a count/);
    assert.equal(parseDuration("60s"), 60_000);
    assert.equal(parseDuration("500ms"), 500);
    assert.equal(parseDuration("2m"), 120_000);
    assert.equal(parseDuration("30"), 30_000);
});

test("defaults: the issue's steps, all three configurations, holds of at least 20 s", () => {
    const o = parseOptions([]);
    assert.deepEqual(o.steps, [10_000, 25_000, 50_000, 75_000, 100_000]);
    assert.deepEqual(o.configs, ["generated", "seed", "stock"]);
    assert.equal(o.holdMs, 20_000);
    assert.equal(o.graceMs, undefined, "grace follows each step's hold");
    assert.equal(o.keep, false);
});

test("a step holds long enough for all its requests to be in flight at once", () => {
    const o = { holdMs: 20_000, graceMs: undefined, rampRate: 600, chunk: 500 };
    assert.deepEqual(stepTiming(500, o), { rampMs: 0, holdMs: 20_000, graceMs: defaultGraceMs(20_000) });
    const big = stepTiming(100_000, o);
    assert.equal(big.rampMs, Math.round((199 * 500 * 1000) / 600));
    assert.ok(big.holdMs >= big.rampMs * 1.25 + 10_000);
    assert.equal(big.graceMs, 50_000, "capped: idle connections must not outlive nginx's keepalive_timeout");
    assert.equal(stepTiming(25_000, o).graceMs, 15_000 + stepTiming(25_000, o).holdMs / 4);
    assert.equal(stepTiming(100_000, { ...o, graceMs: 5000 }).graceMs, 5000);
});

test("options: steps sorted and unique, --set repeatable, grace follows the hold", () => {
    const o = parseOptions(["--steps", "50k,10k,50k", "--set", "targetConcurrency=100000", "--set", "gunicornBacklog=65535", "--hold", "30s", "--configs", "generated,stock", "--keep"]);
    assert.deepEqual(o.steps, [10_000, 50_000]);
    assert.deepEqual(o.set, { targetConcurrency: "100000", gunicornBacklog: "65535" });
    assert.deepEqual(o.configs, ["generated", "stock"]);
    assert.equal(o.keep, true);
    assert.throws(() => parseOptions(["--configs", "best"]), /unknown configuration "best"/);
    assert.throws(() => parseOptions(["--chunk", "25k"]), /below 19000/);
    assert.throws(() => parseOptions(["--frobnicate"]), /unknown option/);
});

test("--quick is a small smoke run; explicit options still win", () => {
    const q = parseOptions(["--quick"]);
    assert.deepEqual(q.steps, [500]);
    assert.ok(q.holdMs + (q.graceMs ?? 0) <= 10_000);
    assert.equal(q.refine, 0);
    assert.deepEqual(parseOptions(["--quick", "--steps", "1k"]).steps, [1000]);
});

test("a step's connections are split into processes under the open-file cap, spread over source IPs and over the ramp", () => {
    const chunks = planChunks(100_000, 2500, 2000, ["c1", "c2", "c3"]);
    assert.equal(chunks.length, 40);
    assert.equal(chunks.reduce((a, c) => a + c.connections, 0), 100_000);
    assert.deepEqual(chunks.slice(0, 4).map(c => c.netns), ["c1", "c2", "c3", "c1"]);
    assert.equal(chunks[1].startMs, 1250);
    assert.equal(chunks[39].startMs, 48_750);
    assert.equal(stepTiming(100_000, { holdMs: 0, rampRate: 2000, chunk: 2500 }).rampMs, chunks[39].startMs, "the timing's ramp is the plan's");
    const odd = planChunks(5001, 2500, 1000, ["c1"]);
    assert.deepEqual(odd.map(c => c.connections), [1667, 1667, 1667]);
});

test("a step holds only with every request answered 2xx, no error, all at once", () => {
    const errors = { connect: 0, reset: 0, timeout: 0, unanswered: 0, http5xx: 0, otherStatus: 0, total: 0 };
    assert.equal(isHeld({ errors, ok: 100, concurrency: 100, simultaneous: true }), true);
    assert.equal(isHeld({ errors, ok: 99, concurrency: 100, simultaneous: true }), false);
    assert.equal(isHeld({ errors, ok: 100, concurrency: 100, simultaneous: false }), false);
    assert.equal(isHeld({ errors: { ...errors, reset: 1, total: 1 }, ok: 100, concurrency: 100, simultaneous: true }), false);
    assert.equal(isHeld({ errors, ok: 100, concurrency: 100, simultaneous: true, aborted: "memory" }), false);
});

test("refinement probes: the model's prediction first when it lies in the bracket, then halves", () => {
    assert.equal(nextProbe(0, 10_000, 768), 770);
    assert.equal(nextProbe(770, 10_000, 768), 5400);
    assert.equal(nextProbe(0, 770, 768), 390);
    assert.equal(nextProbe(50_000, 75_000, 60_000), 60_000);
    assert.equal(nextProbe(60_000, 62_000, 60_000), undefined, "within 5%: stop");
    assert.equal(roundProbe(61_234), 61_000);
    assert.equal(roundProbe(7), 7);
});

test("targets: 50k must, 100k aim, 2x the others, LB under 1 ms", () => {
    const step = (concurrency: number, held: boolean) => ({ concurrency, held, skipped: undefined }) as never;
    const configs = [
        { name: "generated", maxHeld: 100_000, steps: [step(50_000, true), step(100_000, true)], throughput: { closedLoop: [], paced: [], lbAddedP50Ms: 0.4 } },
        { name: "seed", maxHeld: 770, steps: [step(770, true), step(10_000, false)] },
        { name: "stock", maxHeld: 0, steps: [step(500, false)] },
    ] as never;
    const t = evaluateTargets(configs);
    assert.deepEqual(t.map(x => x.met), [true, true, true, true]);
    assert.match(t[2].detail, /129\.9x/);
});

test("fixtures: placeholders are all filled, and an unknown one is an error", () => {
    const fx = loadFixtures();
    assert.match(fx.seedGunicorn, /^workers = 100$/m);
    assert.match(fx.seedGunicorn, /^worker_class = 'gevent'$/m);
    assert.match(fx.stockNginx, /worker_connections 768;/);
    assert.throws(() => fillTemplate("a {{NOPE}} b", {}), /\{\{NOPE\}\} has no value/);
    assert.equal(fillTemplate("x={{A}}", { A: "1" }), "x=1");
});

test("a plan's script writes each file atomically and waits for health", () => {
    const script = planScript({
        host: "10.80.0.3",
        files: [{ path: "/etc/webapp/gunicorn.conf.py", mode: 0o640, owner: "root", group: "webapp", content: "workers = 100\n" }],
        remove: ["/etc/sysctl.d/60-pycluster.conf"],
        sysctls: { "net.core.somaxconn": "4096" },
        enable: [],
        disable: ["pycluster-sysctl.service"],
        restart: ["webapp.service"],
        healthUrl: "http://10.80.0.3:8000/healthz",
    });
    assert.match(script, /base64 -d > '\/etc\/webapp\/gunicorn\.conf\.py\.pycbench-tmp'/);
    assert.ok(script.includes(Buffer.from("workers = 100\n").toString("base64")));
    assert.match(script, /mv -f '\/etc\/webapp\/gunicorn\.conf\.py\.pycbench-tmp' '\/etc\/webapp\/gunicorn\.conf\.py'/);
    assert.match(script, /printf '%s\\n' '4096' > '\/proc\/sys\/net\/core\/somaxconn'/);
    assert.match(script, /systemctl restart 'webapp\.service'/);
    assert.match(script, /echo applied\n$/);
    assert.deepEqual(sysctlSettings("# x\n-net.core.somaxconn = 12500\n-net.ipv4.ip_local_port_range = 1024 65535\n"), {
        "net.core.somaxconn": "12500",
        "net.ipv4.ip_local_port_range": "1024 65535",
    });
});

test("settings read back from the hosts", () => {
    const lb = parseLbProbe("worker_processes auto;\n\tworker_connections 768;\nnginx_workers 2\nworker_nofile 1024\nport_range 32768\t60999\nreserved_ports \nsomaxconn 4096\n", 2);
    assert.deepEqual(lb, { workerProcesses: 2, workerConnections: 768, workerOpenFiles: 1024, portRange: [32768, 60999], reservedPorts: 0, somaxconn: 4096 });
    const app = parseAppProbe("10.80.0.3", "workers_live 100\nworker_nofile 1024\nsomaxconn 4096\nbacklog                           = 2048\nworker_class                      = gevent\nworker_connections                = 1000\ntimeout                           = 120\nworkers                           = 100\n");
    assert.equal(app.workers, 100);
    assert.equal(app.workerClass, "gevent");
    assert.equal(app.timeout, 120);
    assert.equal(reservedInRange("80,443,8000-8010", 1024, 65535), 11);
});

test("Pulumi.bench.yaml: 1 LB + 4 app nodes on its own ranges, under the machine's open-file cap", () => {
    const doc = parseYaml(fs.readFileSync(path.join(__dirname, "..", "..", "Pulumi.bench.yaml"), "utf8")) as { config: Record<string, unknown> };
    assert.equal(doc.config["pycluster:appNodeCount"], 4);
    assert.equal(doc.config["pycluster:subnetCidr"], "10.80.0.0/24");
    assert.deepEqual(doc.config["pycluster:adminCidrs"], ["198.19.0.0/24"]);
    assert.equal(doc.config["pycluster:maxOpenFiles"], 20000);
});
