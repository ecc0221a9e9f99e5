import { test } from "node:test";
import assert from "node:assert/strict";
import { mergeLatency, parseWrkOutput, parseWrkTime, renderLuaScript, sumResults, wrkArgs } from "../../bench/lib/wrk";

// What Debian's wrk 4.1 printed on these machines (trimmed of nothing: these are whole outputs).
const PLAIN = `Running 2s test @ https://198.19.0.10/
  2 threads and 20 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.13ms    2.07ms  40.71ms   94.18%
    Req/Sec     5.08k     1.39k   10.66k    85.00%
  20242 requests in 2.01s, 4.88MB read
Requests/sec:  10062.61
Transfer/sec:      2.43MB
`;

const FAILED_STEP = `Running 1m test @ https://198.19.0.10/
  1 threads and 2500 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.00us    0.00us   0.00us    -nan%
    Req/Sec     0.00      0.00     0.00      -nan%
  0 requests in 1.88m, 0.00B read
  Socket errors: connect 897, read 2500, write 0, timeout 0
Requests/sec:      0.00
Transfer/sec:       0.00B
PYCBENCH {"mode":"once","sent":0,"codes":{},"requests":0,"durationUs":112800000,"errors":{"connect":897,"read":2500,"write":0,"status":0,"timeout":0},"latencyUs":{"min":0,"mean":0,"max":0,"p50":0,"p90":0,"p99":0}}
`;

const WITH_502 = `Running 1m test @ https://198.19.0.10/
  1 threads and 5000 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.15s     1.02s   5.09s    80.00%
    Req/Sec     0.00      0.00     0.00    100.00%
  5005 requests in 1.42m, 1.31MB read
  Socket errors: connect 0, read 6458, write 0, timeout 0
  Non-2xx or 3xx responses: 1843
Requests/sec:     58.70
Transfer/sec:     15.68KB
PYCBENCH {"mode":"once","sent":5005,"codes":{"200":3162,"502":1843},"requests":5005,"durationUs":85200000,"errors":{"connect":0,"read":6458,"write":0,"status":1843,"timeout":0},"latencyUs":{"min":312000,"mean":4150000,"max":5091156,"p50":4149054,"p90":5000000,"p99":5078758}}
`;

test("wrk times in every unit it prints become microseconds", () => {
    assert.equal(parseWrkTime("812.00us"), 812);
    assert.equal(parseWrkTime("2.13ms"), 2130);
    assert.equal(parseWrkTime("5.01s"), 5_010_000);
    assert.equal(parseWrkTime("1.88m"), 112_800_000);
    assert.throws(() => parseWrkTime("-nan%"), /not a wrk time/);
});

test("a plain wrk summary: requests, duration, rate, no errors", () => {
    const r = parseWrkOutput(PLAIN);
    assert.equal(r.requests, 20242);
    assert.equal(r.durationS, 2.01);
    assert.equal(r.requestsPerSecond, 10062.61);
    assert.deepEqual(r.errors, { connect: 0, read: 0, write: 0, timeout: 0, status: 0 });
    assert.equal(r.latencyAvgUs, 2130);
    assert.equal(r.codes, undefined, "no script line, no per-code counts");
});

test("the script's line wins for counts, codes and percentiles", () => {
    const r = parseWrkOutput(WITH_502);
    assert.equal(r.requests, 5005);
    assert.equal(r.durationS, 85.2);
    assert.deepEqual(r.codes, { "200": 3162, "502": 1843 });
    assert.equal(r.sent, 5005);
    assert.deepEqual(r.errors, { connect: 0, read: 6458, write: 0, status: 1843, timeout: 0 });
    assert.equal(r.latencyUs?.p99, 5078758);
});

test("a step where nothing was answered has no latency (wrk's zeros are not a measurement)", () => {
    const r = parseWrkOutput(FAILED_STEP);
    assert.equal(r.requests, 0);
    assert.equal(r.errors.connect, 897);
    assert.equal(r.latencyUs, undefined);
    assert.equal(mergeLatency([r]), undefined);
});

test("output that is not a wrk summary is an error, with the output in the message", () => {
    assert.throws(() => parseWrkOutput("unable to connect to 198.19.0.10:https Connection refused\n"), /not a wrk summary:\nunable to connect/);
});

test("several processes of a step add up; percentiles are weighted by answers", () => {
    const a = parseWrkOutput(WITH_502);
    const b = parseWrkOutput(FAILED_STEP);
    const s = sumResults([a, b]);
    assert.equal(s.requests, 5005);
    assert.equal(s.errors.read, 6458 + 2500);
    assert.equal(s.errors.connect, 897);
    assert.deepEqual(s.codes, { "200": 3162, "502": 1843 });
    const c = { ...a, requests: 15015, latencyUs: { ...a.latencyUs!, p50: 1_000_000, p99: 2_000_000 } };
    const m = mergeLatency([a, c])!;
    assert.equal(m.p50Us, Math.round((4149054 * 5005 + 1_000_000 * 15015) / 20020));
    assert.equal(m.maxP99Us, 5078758);
});

test("wrk's command line: one request per connection in the once shape, the script's arguments after --", () => {
    const args = wrkArgs({ url: "https://198.19.0.10/wait?ms=60000", connections: 2500, threads: 1, durationS: 90, timeoutS: 90, scriptPath: "/tmp/s.lua", mode: "once", path: "/wait?ms=60000" });
    assert.deepEqual(args, ["-t1", "-c2500", "-d90s", "--timeout", "90s", "-s", "/tmp/s.lua", "https://198.19.0.10/wait?ms=60000", "--", "once", "/wait?ms=60000", "2500"]);
    const paced = wrkArgs({ url: "https://x/", connections: 16, threads: 2, durationS: 10, timeoutS: 10, scriptPath: "/s", mode: "paced", path: "/", param: 50 });
    assert.deepEqual(paced.slice(-3), ["paced", "/", "50"]);
    assert.throws(() => wrkArgs({ url: "https://x/", connections: 15, threads: 2, durationS: 1, timeoutS: 1, scriptPath: "/s", mode: "loop", path: "/" }), /split evenly/);
});

test("the Lua script defines wrk's hooks and prints one marked JSON line", () => {
    const lua = renderLuaScript();
    for (const hook of ["function setup(", "function init(", "function request(", "function done(", "function delay(", "function response("]) assert.ok(lua.includes(hook), hook);
    assert.match(lua, /PYCBENCH \{"mode":"%s"/);
});
