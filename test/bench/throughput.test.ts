import { test } from "node:test";
import assert from "node:assert/strict";
import { toRun } from "../../bench/lib/throughput";
import { parseWrkOutput } from "../../bench/lib/wrk";

const ANSWERED = `Running 10s test @ http://10.80.0.3:8000/
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   412.00us  100.00us   1.20ms   80.00%
    Req/Sec   160.00     10.00   180.00     90.00%
  3160 requests in 10.00s, 0.80MB read
Requests/sec:    316.00
Transfer/sec:     82.00KB
`;

// A paced run straight to an app node that completed nothing and counted no error (2026-12-04).
const NOTHING = `Running 10s test @ http://10.80.0.3:8000/
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.00us    0.00us   0.00us    -nan%
    Req/Sec     0.00      0.00     0.00      -nan%
  0 requests in 10.00s, 0.00B read
Requests/sec:      0.00
Transfer/sec:       0.00B
`;

test("a throughput run with answers is a figure; one that answered nothing, or had no wrk summary, is no figure (errors -1), not 0 req/s with no error", () => {
    const url = "http://10.80.0.3:8000/";
    const ok = toRun("direct", url, 16, 10, { label: "paced-direct", netns: "lb", result: parseWrkOutput(ANSWERED) });
    assert.equal(ok.requestsPerSecond, 316);
    assert.equal(ok.errors, 0);
    const nothing = toRun("direct", url, 16, 10, { label: "paced-direct", netns: "lb", result: parseWrkOutput(NOTHING) });
    assert.deepEqual([nothing.requestsPerSecond, nothing.errors, nothing.p50Ms], [0, -1, undefined]);
    const failed = toRun("lb", url, 16, 10, { label: "paced-lb", netns: "c0", failure: "wrk exited 1: unable to connect" });
    assert.deepEqual([failed.requestsPerSecond, failed.errors], [0, -1]);
});
