import { test } from "node:test";
import assert from "node:assert/strict";
import { measureMonitoringCost, monitoringCost } from "../../bench/lib/monitoringCost";

test("the ratio is of the medians, so one noisy round does not decide it", () => {
    const c = monitoringCost([1000, 1010, 400], [980, 990, 1000], false);
    assert.equal(c.ratio, 990 / 1000);
    assert.equal(monitoringCost([], [], false).ratio, 0);
});

test("rounds alternate off and on, and the exporters are running again at the end, also after a failure", async () => {
    const states: boolean[] = [];
    let n = 0;
    const c = await measureMonitoringCost({ rounds: 2, appStatsd: false, measure: async () => 100 + n++, setExporters: async r => void states.push(r), log: () => undefined });
    assert.deepEqual(states, [false, true, false, true, true]);
    assert.deepEqual([c.offRps, c.onRps], [[100, 102], [101, 103]]);
    const after: boolean[] = [];
    await assert.rejects(measureMonitoringCost({ rounds: 1, appStatsd: false, measure: async () => { throw new Error("wrk died"); }, setExporters: async r => void after.push(r), log: () => undefined }));
    assert.deepEqual(after, [false, true]);
});
