import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { parse as parseYaml } from "yaml";
import { defaultGraceMs, parseCount, parseDuration, parseOptions, stepTiming } from "../../bench/lib/options";
import { evaluateTargets, isHeld, nextProbe, roundProbe, starvation } from "../../bench/lib/results";
import { planProcesses } from "../../bench/lib/loadgen";
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
    const o = { holdMs: 20_000, graceMs: undefined };
    assert.deepEqual(stepTiming(500, o, 1000), { rampMs: 500, holdMs: 20_000, graceMs: defaultGraceMs(20_000) });
    assert.equal(stepTiming(500, { holdMs: 3000, graceMs: 4000 }, 280).holdMs, 6000, "a short ramp: 1.25 x 1.8 s + 2.9 s");
    const big = stepTiming(100_000, o, 400);
    assert.equal(big.rampMs, 250_000, "100,000 connections at 400/s");
    assert.ok(big.holdMs >= big.rampMs * 1.25 + 10_000);
    assert.equal(big.graceMs, 50_000, "capped at 50 s");
    assert.equal(stepTiming(25_000, o, 600).graceMs, 15_000 + stepTiming(25_000, o, 600).holdMs / 4);
    assert.equal(stepTiming(100_000, { ...o, graceMs: 5000 }, 600).graceMs, 5000);
});

test("the ramp comes from the calibration unless --ramp-rate says otherwise", () => {
    assert.equal(parseOptions([]).rampRate, undefined);
    assert.equal(parseOptions([]).rampShare, 0.5);
    assert.equal(parseOptions(["--ramp-rate", "300"]).rampRate, 300);
    assert.equal(parseOptions(["--ramp-share", "0.25"]).rampShare, 0.25);
    assert.throws(() => parseOptions(["--ramp-share", "1.5"]), /in \(0, 1\]/);
    assert.throws(() => parseOptions(["--calibrate", "0"]), /--calibrate 0 needs --ramp-rate/);
    assert.equal(parseOptions(["--calibrate", "0", "--ramp-rate", "200"]).calibrateSeconds, 0);
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

test("a step's connections are split into processes under the open-file cap, over every source IP, sharing the ramp rate", () => {
    const plan = planProcesses(100_000, 12_500, 400, ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"]);
    assert.equal(plan.length, 8);
    assert.equal(plan.reduce((a, p) => a + p.connections, 0), 100_000);
    assert.equal(plan.reduce((a, p) => a + p.rate, 0), 400);
    assert.deepEqual(plan.map(p => p.netns), ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"]);
    const capped = planProcesses(100_000, 5000, 400, ["c1", "c2"]);
    assert.equal(capped.length, 20, "no process above 5000 connections");
    assert.deepEqual(capped.slice(0, 3).map(p => p.netns), ["c1", "c2", "c1"]);
    const odd = planProcesses(5001, 12_500, 100, ["c1", "c2", "c3"]);
    assert.deepEqual(odd.map(p => p.connections), [1667, 1667, 1667]);
    assert.equal(planProcesses(3, 12_500, 100, ["c1", "c2", "c3", "c4"]).length, 3, "never a process without connections");
    assert.throws(() => planProcesses(10, 100, 0, ["c1"]), /ramp rate must be > 0/);
});

test("a step holds only with every request answered 2xx, all at once", () => {
    const slots = { slots: 100, ok: 100, http5xx: 0, otherStatus: 0, neverConnected: 0, reset: 0, timeout: 0, failed: 0 };
    assert.equal(isHeld({ slots, ok: 100, concurrency: 100, simultaneous: true }), true);
    assert.equal(isHeld({ slots: { ...slots, ok: 99, timeout: 1, failed: 1 }, ok: 99, concurrency: 100, simultaneous: true }), false);
    assert.equal(isHeld({ slots, ok: 100, concurrency: 100, simultaneous: false }), false);
    assert.equal(isHeld({ slots, ok: 100, concurrency: 100, simultaneous: true, aborted: "memory" }), false);
});

test("a failed step blames the load generators only when they took the machine", () => {
    const failed = { held: false, cpu: { saturatedShare: 0.8, loadgenShareOfBusy: 0.45 }, loadgen: { peakMemMiB: 900, peakCpuCores: 1.2, meanCpuCores: 0.9 } };
    assert.match(starvation(failed, 2000)!, /every CPU was busy for 80% of the step and the load generators took 45% of it/);
    assert.equal(starvation({ ...failed, cpu: { saturatedShare: 0.8, loadgenShareOfBusy: 0.2 } }, 2000), undefined, "the hosts took the CPU: the cluster failed");
    assert.equal(starvation({ ...failed, cpu: { saturatedShare: 0.3, loadgenShareOfBusy: 0.6 } }, 2000), undefined, "CPU to spare: not starved");
    assert.equal(starvation({ ...failed, held: true }, 2000), undefined);
    const memory = { ...failed, cpu: { saturatedShare: 0, loadgenShareOfBusy: 0 }, aborted: "MemAvailable below the reserve", loadgen: { peakMemMiB: 15_000, peakCpuCores: 2, meanCpuCores: 1 } };
    assert.match(starvation(memory, 2700)!, /the load generators held 15000 MiB, more than the hosts grew by \(2700 MiB\)/);
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

test("targets: 50k must, 100k aim, 2x the others, server memory per request, LB under 1 ms", () => {
    const memory = { inFlight: 100_000, lbBytes: 20 * 1024, appBytes: 11 * 1024, kernelPerSocketBytes: 3 * 1024, serverKernelBytes: 9 * 1024, loadgenBytes: 40 * 1024 };
    const step = (concurrency: number, held: boolean) => ({ concurrency, held, skipped: undefined, memoryPerRequest: held ? memory : undefined }) as never;
    const configs = [
        { name: "generated", maxHeld: 100_000, steps: [step(50_000, true), step(100_000, true)], throughput: { closedLoop: [], paced: [], lbAddedP50Ms: 0.4 } },
        { name: "seed", maxHeld: 770, steps: [step(770, true), step(10_000, false)] },
        { name: "stock", maxHeld: 0, steps: [step(500, false)] },
    ] as never;
    const t = evaluateTargets(configs);
    assert.deepEqual(t.map(x => x.met), [true, true, true, true, undefined, true], "monitoring's cost: not measured in this run");
    assert.equal(t[4].detail, "not measured");
    const withCost = (offRps: number[], onRps: number[]) =>
        evaluateTargets([{ name: "generated", maxHeld: 0, steps: [], throughput: { closedLoop: [], paced: [], monitoringCost: { offRps, onRps, ratio: onRps[0] / offRps[0], appStatsd: false } } }] as never)[4];
    assert.equal(withCost([2000], [1960]).met, true);
    assert.match(withCost([2000], [1960]).detail, /^98\.0% \(median of 1 rounds' on\/off, req\/s on 1960 vs off 2000; app statsd off\)$/);
    assert.equal(withCost([2000], [1800]).met, false, "90% is not 95%");
    assert.match(t[2].detail, /129\.9x/);
    assert.match(t[3].detail, /31\.0 KiB at 100000 \(LB 20\.0, apps 11\.0; the servers' sockets add 9\.0 KiB/);
    const heavy = evaluateTargets([{ name: "generated", maxHeld: 100_000, steps: [{ concurrency: 100_000, held: true, memoryPerRequest: { ...memory, lbBytes: 24 * 1024 } }] }] as never);
    assert.equal(heavy[3].met, false);
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
        sysctls: { "net.core.somaxconn": "4096", "net.ipv4.ip_local_port_range": "1024 65535" },
        enable: [],
        disable: ["pycluster-sysctl.service"],
        restart: ["webapp.service"],
        healthUrl: "http://10.80.0.3:8000/healthz",
    });
    // lib/shell's quoting: bare where no shell would read a word differently, quoted where it would.
    assert.match(script, /base64 -d > \/etc\/webapp\/gunicorn\.conf\.py\.pycbench-tmp /);
    assert.ok(script.includes(Buffer.from("workers = 100\n").toString("base64")));
    assert.match(script, /mv -f \/etc\/webapp\/gunicorn\.conf\.py\.pycbench-tmp \/etc\/webapp\/gunicorn\.conf\.py\n/);
    assert.match(script, /printf '%s\\n' 4096 > \/proc\/sys\/net\/core\/somaxconn /);
    assert.match(script, /printf '%s\\n' '1024 65535' > \/proc\/sys\/net\/ipv4\/ip_local_port_range /);
    assert.match(script, /systemctl restart webapp\.service\n/);
    assert.match(script, /echo applied\n$/);
    assert.deepEqual(sysctlSettings("# x\n-net.core.somaxconn = 12500\n-net.ipv4.ip_local_port_range = 1024 65535\n"), {
        "net.core.somaxconn": "12500",
        "net.ipv4.ip_local_port_range": "1024 65535",
    });
});

test("settings read back from the hosts", () => {
    const lb = parseLbProbe("worker_processes auto;\n\tworker_connections 768;\nnginx_workers 2\nworker_nofile 1024\nport_range 32768\t60999\nreserved_ports \nsomaxconn 4096\n", 2);
    assert.deepEqual(lb, { workerProcesses: 2, workerConnections: 768, workerOpenFiles: 1024, portRange: [32768, 60999], reservedPorts: 0, somaxconn: 4096 });
    const capped = parseLbProbe("worker_connections 768;\nnginx_workers 2\nworker_nofile 1024\nport_range 1024 65535\nsomaxconn 4096\nmax_conns 26000\nmax_conns 25000\n", 2);
    assert.equal(capped.upstreamMaxConns, 25000, "the smallest node's max_conns");
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
