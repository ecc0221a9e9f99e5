/**
 * The benchmark's smoke run (`npm run bench -- --quick`) end to end: it stands
 * the bench stack up on local hosts, runs the three configurations, writes its
 * results and tears everything down. Guards the bench against rot; the real
 * measurements are in bench/README.md.
 */
import { spawn } from "node:child_process";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, test } from "node:test";
import { localDown } from "../../local/stack";
import type { BenchResult } from "../../bench/lib/results";
import { e2eSkipReason } from "../e2e/support";

const ROOT = path.join(__dirname, "..", "..");
const results = fs.mkdtempSync(path.join(os.tmpdir(), "pycbench-quick-"));
let child: ReturnType<typeof spawn> | undefined;

after(async () => {
    // The bench tears its cluster down itself; this covers a bench that died before it could.
    if (child && child.exitCode === null) child.kill("SIGTERM");
    await localDown({ stack: "bench", log: () => undefined }).catch(() => undefined);
    fs.rmSync(results, { recursive: true, force: true });
});

test("bench --quick: calibrated, three configurations on the bench stack, every slot counted once, results written, cluster removed", { timeout: 15 * 60_000 }, async t => {
    const skip = await e2eSkipReason();
    if (skip) return t.skip(skip);
    const started = Date.now();
    let out = "";
    const code = await new Promise<number>((resolve, reject) => {
        child = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "bench", "bench.ts"), "--quick", "--results", results], { cwd: ROOT });
        child.stdout!.on("data", d => (out += d));
        child.stderr!.on("data", d => (out += d));
        child.on("error", reject);
        child.on("exit", c => resolve(c ?? 1));
    });
    const tail = out.split("\n").slice(-60).join("\n");
    assert.equal(code, 0, `the bench failed:\n${tail}`);
    console.log(`# bench --quick: ${((Date.now() - started) / 1000).toFixed(0)} s`);
    // Where the time went: the bench's own timestamped lines.
    for (const line of out.split("\n").filter(l => l.startsWith("[bench "))) console.log(`#   ${line}`);

    const files = fs.readdirSync(results);
    const json = files.find(f => f.endsWith(".json"));
    assert.ok(json, `no results JSON in ${files.join(", ")}`);
    assert.ok(files.includes(json.replace(/\.json$/, ".svg")), "the chart is written beside the results");
    assert.match(fs.readFileSync(path.join(results, json.replace(/\.json$/, ".svg")), "utf8"), /^<svg[^>]*>[\s\S]*<\/svg>\s*$/);
    const r = JSON.parse(fs.readFileSync(path.join(results, json), "utf8")) as BenchResult;

    assert.equal(r.interrupted, undefined);
    assert.deepEqual(r.configs.map(c => c.name), ["generated", "seed", "stock"]);
    assert.equal(r.generatedMatchedRender, true, "the files up left on the hosts are what the renderers produce");
    const [generated, seed, stock] = r.configs;
    for (const c of r.configs) {
        assert.equal(c.steps.length, 1, `${c.name}: one step in --quick`);
        assert.ok(c.predicted, `${c.name}: the capacity model read from the settings in effect`);
        assert.ok((c.throughput?.closedLoop.find(x => x.target === "lb")?.requestsPerSecond ?? 0) > 0, `${c.name}: throughput through the LB`);
    }
    // Calibrated first: the steps ramp at a share of what this machine handshakes.
    const cal = r.calibration!;
    assert.deepEqual(cal.runs.map(x => x.kind), ["handshakes", "keepalive", "direct"]);
    for (const x of cal.runs) assert.ok(x.perSecond > 0 && x.failed === 0 && x.lbCores + x.appCores > 0, `calibration ${x.kind}: ${JSON.stringify(x)}`);
    assert.ok(cal.perCore.tlsHandshakesPerLbCore > 0 && cal.perCore.proxiedRequestsPerLbCore > 0 && cal.perCore.sampleAppRequestsPerCore > 0);
    assert.equal(r.ramp.rate, Math.max(10, Math.floor((0.5 * cal.machineHandshakesPerSecond) / 10) * 10));
    const step = generated.steps[0];
    assert.equal(step.held, true, `generated holds ${step.concurrency}: ${JSON.stringify(step.slots)}`);
    assert.equal(step.slots.failed, 0);
    assert.equal(step.rampRate, r.ramp.rate);
    // The load generators' own share is measured, and so is each component's memory per request.
    assert.ok(step.loadgen.peakMemMiB > 0 && step.loadgen.meanCpuCores > 0, JSON.stringify(step.loadgen));
    const m = step.memoryPerRequest!;
    assert.ok(m && m.inFlight >= 490 && m.lbBytes > 0 && m.appBytes > 0, JSON.stringify(m));
    assert.equal(generated.predicted!.ceiling, r.stack.targetConcurrency * 1.2, "generated is sized for the stack's target with 20% headroom");
    assert.ok(seed.steps[0].answered > 0, "seed answered");
    // Stock gunicorn: 5 sync workers per node hold 20 requests at once: 500 cannot be held.
    assert.equal(stock.predicted!.ceiling, 20);
    assert.equal(stock.steps[0].held, false);
    assert.ok(stock.steps[0].slots.timeout > 0, "stock's requests beyond its 20 workers time out");
    // Every slot is counted once, whatever happened to it.
    for (const c of r.configs) {
        const x = c.steps[0].slots;
        assert.equal(x.ok + x.http5xx + x.otherStatus + x.neverConnected + x.reset + x.timeout, x.slots, `${c.name}: ${JSON.stringify(x)}`);
        assert.equal(x.slots, c.steps[0].concurrency);
    }
    assert.ok(r.targets.some(x => x.target.includes("LB adds") && x.met !== undefined), "the LB's added latency is measured");
    // What monitoring costs: one round off and on, same hosts; the exporters run again afterwards.
    const cost = generated.throughput?.monitoringCost;
    assert.ok(cost && cost.offRps.length === 1 && cost.onRps.length === 1 && cost.offRps[0] > 0 && cost.onRps[0] > 0, JSON.stringify(cost));
    assert.ok(r.targets.some(x => x.target.includes("monitoring on") && x.met !== undefined), "the monitoring cost is judged");
    assert.match(out, /Capacity model, predicted vs measured:/);
    assert.match(out, /Rates model \(config\/rates\.ts\) vs this run:/);
    assert.match(out, /steps ramp at \d+ new connections\/s: 0\.5 x the \d+ new TLS connections\/s this machine completed in the calibration/);

    // Torn down: no host of the bench cloud is left.
    assert.ok(!fs.existsSync("/var/lib/pycluster-local/pycbench/state.json"), "the bench's local cloud is gone");
});
