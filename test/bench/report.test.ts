import { test } from "node:test";
import assert from "node:assert/strict";
import { chartInput, latencyOf, stepsTable } from "../../bench/lib/report";
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
