import { test } from "node:test";
import assert from "node:assert/strict";
import { measureMonitoringCost, monitoringCost, CostRun } from "../../bench/lib/monitoringCost";

const run = (requestsPerSecond: number, cpu?: CostRun["cpu"]): CostRun => ({ requestsPerSecond, requests: requestsPerSecond * 10, cpu });

test("the verdict is the median of the rounds' own on/off ratios, so a machine that changes speed between rounds does not decide it", () => {
    // Round 2 ran on a machine twice as fast; a ratio of medians would read 1000/1010 = 99%, the rounds say 98%.
    const c = monitoringCost([run(1000), run(2000), run(1010)], [run(980), run(1960), run(990)], [false, true, false], false);
    assert.deepEqual(c.roundRatios, [0.98, 0.98, 990 / 1010]);
    assert.equal(c.ratio, 0.98);
    // One slow "on" run is one round of three, not the verdict.
    assert.equal(monitoringCost([run(1000), run(1000), run(1000)], [run(400), run(990), run(1000)], [false, true, false], false).ratio, 0.99);
    assert.equal(monitoringCost([], [], [], false).ratio, 0);
    assert.equal(monitoringCost([run(0)], [run(5)], [false], false).ratio, 0, "an off run that served nothing gives no ratio");
});

test("the exporters' CPU share is over the on runs, and CPU per request is counted for each side", () => {
    const c = monitoringCost(
        [run(1000, { exportersUsec: 0, clusterUsec: 2_000_000 }), run(1000, { exportersUsec: 0, clusterUsec: 2_000_000 })],
        [run(1000, { exportersUsec: 50_000, clusterUsec: 2_000_000 }), run(500, { exportersUsec: 30_000, clusterUsec: 2_000_000 })],
        [false, true],
        false,
    );
    assert.equal(c.exporterCpuShare, 80_000 / 4_000_000);
    assert.deepEqual(c.cpuUsPerRequest, { off: 4_000_000 / 20_000, on: 4_000_000 / 15_000 });
    assert.equal(monitoringCost([run(1000)], [run(990)], [false], false).exporterCpuShare, undefined, "no CPU counters, no CPU figure");
});

test("rounds alternate which side runs first, read the CPU around every run, and leave the exporters running, also after a failure", async () => {
    const states: boolean[] = [];
    const events: string[] = [];
    let n = 0;
    let usec = 0;
    const c = await measureMonitoringCost({
        rounds: 3,
        appStatsd: false,
        beforeRound: async () => void events.push("quiet"),
        measure: async () => {
            events.push("measure");
            usec += 1000;
            return { requestsPerSecond: 100 + n++, requests: 1000 };
        },
        cpu: () => ({ exportersUsec: states.at(-1) ? usec / 10 : 0, clusterUsec: usec }),
        setExporters: async r => void states.push(r),
        log: () => undefined,
    });
    assert.deepEqual(states, [false, true, true, false, false, true, true]);
    assert.deepEqual(c.onFirst, [false, true, false]);
    assert.deepEqual([c.offRps, c.onRps], [[100, 103, 104], [101, 102, 105]]);
    assert.deepEqual(events, ["quiet", "measure", "measure", "quiet", "measure", "measure", "quiet", "measure", "measure"]);
    assert.ok(c.exporterCpuShare !== undefined && c.exporterCpuShare > 0);
    const after: boolean[] = [];
    await assert.rejects(
        measureMonitoringCost({ rounds: 1, appStatsd: false, measure: async () => { throw new Error("wrk died"); }, setExporters: async r => void after.push(r), log: () => undefined }),
    );
    assert.deepEqual(after, [false, true]);
});
