import { test } from "node:test";
import assert from "node:assert/strict";
import { rampPlan } from "../../bench/lib/calibration";
import { lowerBaselines, memoryPerRequest, skippedStep } from "../../bench/lib/step";
import type { HostSummary } from "../../bench/lib/sampler";

const host = (startMemBytes: number, peakMemBytes: number): HostSummary => ({ peakCpuCores: 0, meanCpuCores: 0, peakMemBytes, startMemBytes, peakTcpInUse: 0, baselineTcpInUse: 0 });

test("the ramp: --ramp-rate as given, else the share of the calibrated handshake rate rounded down to 10/s, at least 10/s", () => {
    assert.deepEqual(rampPlan({ rampRate: 250, rampShare: 0.5 }, undefined), { rate: 250, source: "--ramp-rate" });
    assert.equal(rampPlan({ rampShare: 0.5 }, { machineHandshakesPerSecond: 1194.4 }).rate, 590);
    assert.match(rampPlan({ rampShare: 0.5 }, { machineHandshakesPerSecond: 1194.4 }).source, /^0\.5 x the 1194 new TLS connections\/s/);
    assert.equal(rampPlan({ rampShare: 0.5 }, { machineHandshakesPerSecond: 12 }).rate, 10);
    assert.throws(() => rampPlan({ rampShare: 0.5 }, undefined), /no calibration and no --ramp-rate/);
});

test("memory per in-flight request: each component's growth over the requests in flight at the apps; the servers hold three sockets per request", () => {
    const m = memoryPerRequest(
        {
            appInFlightPeak: 1000,
            hosts: { lb: host(100e6, 124e6), "app-0": host(50e6, 56e6), "app-1": host(50e6, 57e6) },
            kernel: { startBytes: 1e6, peakBytes: 16e6, startSockets: 10, peakSockets: 3010 },
            loadgen: { peakMemBytes: 8e6, peakCpuCores: 1 },
        },
        "lb",
        ["app-0", "app-1"],
    )!;
    assert.equal(m.lbBytes, 24_000);
    assert.equal(m.appBytes, 13_000);
    assert.equal(m.kernelPerSocketBytes, 5000);
    assert.equal(m.serverKernelBytes, 15_000);
    assert.equal(m.loadgenBytes, 8000 + 5000, "the clients' memory and their one socket per request");
    assert.equal(memoryPerRequest({ appInFlightPeak: 99, hosts: {}, kernel: { startBytes: 0, peakBytes: 0, startSockets: 0, peakSockets: 0 }, loadgen: { peakMemBytes: 0, peakCpuCores: 0 } }, "lb", []), undefined, "too few in flight to divide by");
});

test("memory per request counts from the configuration's baseline: a later step's start still holds what the workers kept from the one before", () => {
    // The first step started at 50 MB per app node; the second starts at 80 MB (memory Python kept) and peaks at 110 MB.
    const summary = (start: number, peak: number) => ({
        appInFlightPeak: 1000,
        hosts: { lb: host(100e6, 124e6), "app-0": host(start, peak) },
        kernel: { startBytes: 0, peakBytes: 0, startSockets: 0, peakSockets: 0 },
        loadgen: { peakMemBytes: 0, peakCpuCores: 0 },
    });
    const first = summary(50e6, 65e6);
    const baselines = lowerBaselines(undefined, first);
    assert.deepEqual(baselines, { lb: 100e6, "app-0": 50e6 });
    const second = summary(80e6, 110e6);
    const next = lowerBaselines(baselines, second);
    assert.deepEqual(next, { lb: 100e6, "app-0": 50e6 }, "the lower start stays");
    assert.equal(memoryPerRequest(second, "lb", ["app-0"])!.appBytes, 30_000, "from the step's own start: what the previous step left is not counted");
    assert.equal(memoryPerRequest(second, "lb", ["app-0"], next)!.appBytes, 60_000, "from the configuration's baseline");
    assert.equal(memoryPerRequest(second, "lb", ["app-0"], next)!.lbBytes, 24_000);
});

test("a step the memory guard refused: every slot failed, nothing ran, why it was skipped", () => {
    const s = skippedStep({ concurrency: 500, kind: "step", rampRate: 300 }, "memory guard: no room", []);
    assert.equal(s.failed, 500);
    assert.equal(s.slots.failed, 500);
    assert.equal(s.held, false);
    assert.equal(s.rampRate, 300);
    assert.equal(s.skipped, "memory guard: no room");
});
