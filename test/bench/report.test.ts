import { test } from "node:test";
import assert from "node:assert/strict";
import { calibrationTable, chartInput, latencyOf, ratesTable, stepsTable } from "../../bench/lib/report";
import type { BenchResult, StepResult } from "../../bench/lib/results";

function step(concurrency: number, slots: StepResult["slots"], held: boolean, p99ExcessMs: number): StepResult {
    return {
        concurrency,
        kind: "step",
        holdS: 20,
        processes: 1,
        rampS: 0,
        rampRate: 400,
        ok: slots.ok,
        answered: concurrency,
        sent: concurrency,
        slots,
        failed: slots.failed,
        latency: { p50ExcessMs: p99ExcessMs / 2, p99ExcessMs, worstP99ExcessMs: p99ExcessMs, maxExcessMs: p99ExcessMs },
        hosts: {},
        appInFlightPeak: concurrency,
        machine: { minMemAvailableMiB: 0, memDropMiB: 0, busyCores: 0, loadgenCores: 0, foreignCores: 0, otherCloudsCores: 0 },
        loadgen: { peakMemMiB: 10, peakCpuCores: 0.1, meanCpuCores: 0.05 },
        cpu: { saturatedShare: 0, loadgenShareOfBusy: 0.1 },
        simultaneous: true,
        held,
        notes: [],
        wallS: 1,
    };
}

const failed = step(2500, { slots: 2500, ok: 20, http5xx: 4, otherStatus: 0, neverConnected: 600, reset: 0, timeout: 1876, failed: 2480 }, false, -3317);
const held = step(20, { slots: 20, ok: 20, http5xx: 0, otherStatus: 0, neverConnected: 0, reset: 0, timeout: 0, failed: 0 }, true, 8);

test("latency is reported only for steps without errors: a failed step's histogram times its error answers", () => {
    assert.equal(latencyOf(failed), undefined);
    assert.deepEqual(latencyOf(held), held.latency);
    const result = {
        stack: { name: "bench", set: {}, targetConcurrency: 100000 },
        startedAt: "t",
        machine: { cpus: 2, memTotalMiB: 24_000 },
        options: { holdMs: 20_000 },
        configs: [{ name: "stock", steps: [held, failed], maxHeld: 20 }],
    } as unknown as BenchResult;
    const rows = stepsTable(result).split("\n").slice(2);
    assert.match(rows[0], /\| 8 ms +\|/);
    assert.doesNotMatch(rows[1], /-3317|-1659/);
    assert.match(rows[1], /FAILED/);
    const points = chartInput(result).series[0].points;
    assert.deepEqual(points.map(p => p.p99ExcessS), [0.008, undefined]);
});

test("a pair: the LB columns show the recorded holder, and the backup LB is not counted as an app node", () => {
    const usage = (peakMemMiB: number, peakCpuCores: number) => ({ peakMemMiB, peakCpuCores, meanCpuCores: peakCpuCores / 2, peakTcpInUse: 0 });
    const s = { ...held, hosts: { "pycluster-bench-lb": usage(100, 0.2), "pycluster-bench-lb-2": usage(900, 1.5), "pycluster-bench-app-0": usage(300, 0.5), "pycluster-bench-app-1": usage(400, 0.25) } };
    const result = (lbHosts?: string[]) =>
        ({
            stack: { name: "bench", set: { lbCount: "2" }, targetConcurrency: 100000, lbCount: lbHosts ? 2 : undefined, lbHosts },
            startedAt: "t",
            machine: { cpus: 2, memTotalMiB: 24_000 },
            options: { holdMs: 20_000 },
            configs: [{ name: "generated", steps: [s], maxHeld: 20 }],
        }) as unknown as BenchResult;
    const row = (r: BenchResult) => stepsTable(r).split("\n")[2].split("|").map(c => c.trim());
    // columns: config, in flight, ramp/hold, ok, failed, p50, p99, at apps, LB, apps, clients, result
    const pair = row(result(["pycluster-bench-lb-2", "pycluster-bench-lb"]));
    assert.equal(pair[9], "900 MiB / 1.50", "the holder (lb-2) is the LB");
    assert.equal(pair[10], "400 MiB / 0.75", "apps: the two app nodes only, not the backup LB");
    const before = row(result(undefined));
    assert.equal(before[9], "100 MiB / 0.20", "results from before the pair: the host named -lb");
    assert.equal(before[10], "900 MiB / 2.25", "and every other host counted as an app node, as those results were");
});

test("calibration and rates: the ramp's source, the model's figures against this run's, predicted for the cores each part had", () => {
    const run = (kind: string, perSecond: number, lbCores: number, appCores: number) => ({ kind, target: "t", connections: 64, requests: 1000, seconds: 5, perSecond, ok: 1000, failed: 0, lbCores, appCores, loadgenCores: 0.3, busyCores: 1.99 });
    const result = {
        machine: { cpus: 2 },
        ramp: { rate: 490, source: "0.5 x the 988 new TLS connections/s this machine completed in the calibration" },
        calibration: {
            runs: [run("handshakes", 988, 0.66, 0.68), run("keepalive", 3118, 0.39, 1.15), run("direct", 4399, 0, 1.12)],
            machineHandshakesPerSecond: 988,
            perCore: { tlsHandshakesPerLbCore: 1497, proxiedRequestsPerLbCore: 7995, sampleAppRequestsPerCore: 3928 },
            loadgenCoreSecondsPerHandshake: 0.0006,
        },
        modelRates: {
            provenance: { date: "2026-12-01" },
            tlsHandshakesPerLbCore: 1500,
            proxiedRequestsPerLbCore: 8000,
            sampleAppRequestsPerCore: 4000,
            lbBytesPerInFlight: 22 * 1024,
            appBytesPerInFlight: 14 * 1024,
            kernelBytesPerSocket: 2048,
        },
        configs: [],
    } as unknown as BenchResult;
    const cal = calibrationTable(result);
    assert.match(cal, /\| handshakes \| new TLS connection per request, through the LB \| 64 +\| 988 /);
    assert.match(cal, /steps ramp at 490 new connections\/s: 0\.5 x the 988/);
    const rates = ratesTable(result);
    assert.match(rates, /\| TLS handshakes per LB core \(\/s\) +\| 1500 +\| 1497 +\| 1\.00 +\|/);
    assert.match(rates, /\| LB memory per in-flight request +\| 22\.0 KiB +\| - +\| - +\|/, "no held step: no memory figure");
    // Handshakes: the LB's 0.66 cores x 1500 = 990/s bind before the apps' 0.68 x 4000.
    assert.match(rates, /\| handshakes \| 990\/s \(LB 0\.66 cores\) +\| 988\/s +\| 1\.00 +\|/);
    assert.match(rates, /\| keepalive +\| 3120\/s \(LB 0\.39 cores\) +\| 3118\/s +\| 1\.00 +\|/);
    assert.match(rates, /\| direct +\| 4480\/s \(apps 1\.12 cores\) +\| 4399\/s +\| 0\.98 +\|/);
});
