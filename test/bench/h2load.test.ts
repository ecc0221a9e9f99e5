import { test } from "node:test";
import assert from "node:assert/strict";
import { classifySlots, describeSlots, h2loadArgs, parseH2loadLog, parseH2loadOutput, percentiles, ratePeriods, sumSlots } from "../../bench/lib/h2load";

/** h2load 1.52 against a loopback server that answers a third, resets a third and never answers a third (-T 3). */
const MIXED = `starting benchmark...
spawning thread #0: 9 total client(s). 9 total requests
Application protocol: http/1.1
progress: 11% done
progress: 22% done
progress: 33% done

finished in 3.01s, 1.00 req/s, 39B/s
requests: 9 total, 9 started, 3 done, 3 succeeded, 6 failed, 6 errored, 3 timeout
status codes: 3 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 120B (120) total, 45B (45) headers (space savings 0.00%), 6B (6) data
                     min         max         mean         sd        +/- sd
time for request:    11.45ms     23.81ms     18.87ms      6.54ms    66.67%
time for connect:      263us      6.63ms      1.49ms      2.53ms    83.33%
time to 1st byte:    18.08ms     24.15ms     21.37ms      3.07ms    66.67%
req/s           :       0.00       52.14       23.18       25.62    83.33%
`;

/** The same against a port nothing listens on: every connection refused, once. */
const REFUSED = `starting benchmark...
spawning thread #0: 10 total client(s). 10 total requests

finished in 4.89ms, 0.00 req/s, 0B/s
requests: 10 total, 0 started, 0 done, 0 succeeded, 10 failed, 10 errored, 0 timeout
status codes: 0 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 0B (0) total, 0B (0) headers (space savings 0.00%), 0B (0) data
                     min         max         mean         sd        +/- sd
time for request:        0us         0us         0us         0us     0.00%
time for connect:        0us         0us         0us         0us     0.00%
time to 1st byte:        0us         0us         0us         0us     0.00%
req/s           :       0.00        0.00        0.00        0.00   100.00%
`;

test("argv: HTTP/1.1, one thread, a steady connection rate in 100 ms periods, a per-connection deadline", () => {
    assert.deepEqual(h2loadArgs({ url: "https://198.19.0.10/wait?ms=30000", clients: 2500, requests: 2500, connectionsPerSecond: 125, connectionTimeoutS: 52.5, logFile: "/tmp/x.log" }), [
        "--h1",
        "-t1",
        "-c2500",
        "-n2500",
        "--rate=13",
        "--rate-period=104ms",
        "--connection-active-timeout=53",
        "--log-file=/tmp/x.log",
        "https://198.19.0.10/wait?ms=30000",
    ]);
    assert.deepEqual(h2loadArgs({ url: "https://lb/", clients: 16, requests: 2000, headers: ["Connection: close"] }), ["--h1", "-t1", "-c16", "-n2000", "-H", "Connection: close", "https://lb/"]);
    assert.throws(() => h2loadArgs({ url: "https://lb/", clients: 10, requests: 5 }), /requests >= clients/);
});

test("a connection rate becomes N per period of about 100 ms, never 0 per period", () => {
    assert.deepEqual(ratePeriods(600), { perPeriod: 60, periodMs: 100 });
    assert.deepEqual(ratePeriods(5), { perPeriod: 1, periodMs: 200 });
    const r = ratePeriods(137);
    assert.ok(Math.abs((r.perPeriod * 1000) / r.periodMs - 137) < 2, JSON.stringify(r));
    assert.throws(() => ratePeriods(0), /> 0/);
    // A small probe's process (the bench split 20 slots over 8 processes at 650/s): h2load refuses
    // a rate above its clients ("the connection rate must be smaller than or equal to the number of
    // clients"), so fewer per period, shorter periods, the same rate.
    assert.deepEqual(ratePeriods(81, 2), { perPeriod: 2, periodMs: 25 });
    assert.deepEqual(h2loadArgs({ url: "https://lb/wait?ms=20000", clients: 3, requests: 3, connectionsPerSecond: 81 }).slice(4, 6), ["--rate=3", "--rate-period=37ms"]);
});

test("the summary: counts, status classes, duration and connect times", () => {
    const r = parseH2loadOutput(MIXED);
    assert.deepEqual([r.total, r.started, r.done, r.succeeded, r.failed, r.errored, r.timeout], [9, 9, 3, 3, 6, 6, 3]);
    assert.deepEqual(r.status, { "2xx": 3, "3xx": 0, "4xx": 0, "5xx": 0 });
    assert.equal(r.durationS, 3.01);
    assert.deepEqual(r.connectUs, { min: 263, max: 6630, mean: 1490 });
    assert.equal(parseH2loadOutput(REFUSED).connectUs, undefined, "no connection came up: no connect time");
    assert.throws(() => parseH2loadOutput("starting benchmark...\n"), /not an h2load summary/);
});

test("every slot counts once: answered, reset, timed out or never connected", () => {
    const mixed = classifySlots(parseH2loadOutput(MIXED));
    assert.deepEqual(mixed, { slots: 9, ok: 3, http5xx: 0, otherStatus: 0, neverConnected: 0, reset: 3, timeout: 3, failed: 6 });
    assert.equal(describeSlots(mixed), "reset 3, timeout 3");
    const refused = classifySlots(parseH2loadOutput(REFUSED));
    assert.equal(refused.neverConnected, 10, "ten refused connections are ten slots, not thousands of retries");
    assert.equal(refused.failed, 10);
    const both = sumSlots([mixed, refused]);
    assert.equal(both.slots, 19);
    assert.equal(describeSlots(both), "never connected 10, reset 3, timeout 3");
    assert.equal(describeSlots(classifySlots({ total: 5, started: 5, errored: 0, timeout: 0, status: { "2xx": 5, "3xx": 0, "4xx": 0, "5xx": 0 } })), "0");
    assert.equal(
        describeSlots(classifySlots({ total: 5, started: 5, errored: 0, timeout: 0, status: { "2xx": 2, "3xx": 0, "4xx": 0, "5xx": 3 } })),
        "5xx 3",
    );
});

test("the per-request log and exact percentiles", () => {
    const rows = parseH2loadLog("1796240054033275\t200\t9221\n1796240054033101\t503\t10136\n\n");
    assert.deepEqual(rows, [
        { startUs: 1796240054033275, status: 200, durationUs: 9221 },
        { startUs: 1796240054033101, status: 503, durationUs: 10136 },
    ]);
    assert.deepEqual(percentiles([5, 1, 4, 2, 3, 6, 7, 8, 9, 10], [50, 99]), [5, 10]);
    assert.equal(percentiles([], [50]), undefined);
});
