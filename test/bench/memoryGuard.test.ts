import { test } from "node:test";
import assert from "node:assert/strict";
import { learnBytesPerRequest, MiB, mustAbort, parseMeminfo, predictProcesses, predictStep, reserveBytes } from "../../bench/lib/memoryGuard";

const GiB = 1024 * MiB;

test("MemTotal and MemAvailable come from /proc/meminfo in bytes", () => {
    const m = parseMeminfo("MemTotal:       24684132 kB\nMemFree:        23011000 kB\nMemAvailable:   23692000 kB\n");
    assert.equal(m.totalBytes, 24684132 * 1024);
    assert.equal(m.availableBytes, 23692000 * 1024);
    assert.throws(() => parseMeminfo("MemTotal: 1 kB\n"), /no MemAvailable/);
});

test("the reserve is the requested MiB, or 5% of a big machine", () => {
    assert.equal(reserveBytes(24 * GiB, 2048), 2 * GiB);
    assert.equal(reserveBytes(100 * GiB, 2048), Math.round(100 * GiB * 0.05));
});

test("a step fits when its requests times the per-request cost stay above the reserve", () => {
    const p = predictStep(100_000, 96 * 1024, 20 * GiB, 2 * GiB);
    assert.equal(p.needBytes, 100_000 * 96 * 1024);
    assert.equal(p.budgetBytes, 18 * GiB);
    assert.equal(p.fits, true);
    assert.equal(p.largestThatFits, Math.floor((18 * GiB) / (96 * 1024)));
});

test("a step that would exhaust memory is refused, naming what would fit", () => {
    const p = predictStep(300_000, 96 * 1024, 20 * GiB, 2 * GiB);
    assert.equal(p.fits, false);
    assert.equal(p.largestThatFits, 196_608);
    assert.match(p.explanation, /would exhaust memory \(at most ~196608 requests fit\)/);
});

test("a configuration's processes are checked before they start (the seed's 4 x 100 workers)", () => {
    assert.equal(predictProcesses(400, 40 * MiB, 20 * GiB, 2 * GiB).fits, true);
    const tooMany = predictProcesses(400, 40 * MiB, 12 * GiB, 2 * GiB);
    assert.equal(tooMany.fits, false);
    assert.equal(tooMany.largestThatFits, 256);
    assert.match(tooMany.explanation, /at most ~256 processes fit/);
});

test("what a step took raises the per-request estimate, never lowers it, and small steps teach nothing", () => {
    assert.equal(learnBytesPerRequest(96 * 1024, 20 * GiB, 14 * GiB, 50_000), Math.round((6 * GiB) / 50_000));
    assert.equal(learnBytesPerRequest(96 * 1024, 20 * GiB, 19 * GiB, 50_000), 96 * 1024);
    assert.equal(learnBytesPerRequest(96 * 1024, 20 * GiB, 10 * GiB, 500), 96 * 1024);
});

test("the running check aborts below the reserve only", () => {
    assert.equal(mustAbort(2 * GiB - 1, 2 * GiB), true);
    assert.equal(mustAbort(2 * GiB, 2 * GiB), false);
});
