/**
 * wrk (Debian's, 4.1) as the load generator: its command line, the Lua
 * script that shapes the load, and the parsing of what it prints. Pure.
 *
 * Three shapes of load, chosen by the script's first argument:
 *  - once:  every connection sends one request and then stays idle: a step of
 *           N connections is N requests in flight at the same time, each
 *           answered (or not) exactly once, so "all N answered OK" is exact.
 *  - loop:  closed loop, each connection sends its next request as soon as
 *           the previous one is answered (throughput).
 *  - paced: like loop, with a fixed pause between a connection's requests
 *           (a moderate, steady load for latency).
 * The script prints one line `PYCBENCH {json}` in done(): counts per status
 * code, requests sent, and latency percentiles in microseconds.
 */

export type WrkMode = "once" | "loop" | "paced";

export const RESULT_MARKER = "PYCBENCH";

/**
 * The Lua script. Thread-local counters are globals (wrk's thread:get reads
 * globals only); the request wrk builds once to check the script is not
 * counted (it happens before any delay() call).
 */
export function renderLuaScript(): string {
    return `-- pycluster bench: load shapes for wrk (rendered by bench/lib/wrk.ts)
mode, path, param = "loop", "/", 0
sent, delays = 0, 0
codes = {}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  mode = args[1] or "loop"
  path = args[2] or "/"
  param = tonumber(args[3] or "0")
  if mode ~= "loop" then
    -- once: the first \`param\` requests of this thread (one per connection) go out at once,
    -- later ones (none, unless a connection was re-opened after an error) wait an hour.
    function delay()
      delays = delays + 1
      if mode == "paced" then return param end
      if delays <= param then return 0 end
      return 3600000
    end
  end
  function response(status, headers, body)
    codes[status] = (codes[status] or 0) + 1
  end
end

function request()
  if mode == "loop" or delays > 0 then sent = sent + 1 end
  return wrk.format("GET", path)
end

function done(summary, latency, requests)
  local total, s = {}, 0
  for _, t in ipairs(threads) do
    s = s + (t:get("sent") or 0)
    for k, v in pairs(t:get("codes") or {}) do total[k] = (total[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(total) do parts[#parts + 1] = string.format('"%d":%d', k, v) end
  local e = summary.errors
  io.write(string.format(
    '${RESULT_MARKER} {"mode":"%s","sent":%d,"codes":{%s},"requests":%d,"durationUs":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latencyUs":{"min":%d,"mean":%.0f,"max":%d,"p50":%d,"p90":%d,"p99":%d}}\\n',
    mode, s, table.concat(parts, ","), summary.requests, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
`;
}

export interface WrkInvocation {
    url: string;
    connections: number;
    threads: number;
    durationS: number;
    timeoutS: number;
    scriptPath: string;
    mode: WrkMode;
    /** Path and query of every request. */
    path: string;
    /** once: connections per thread; paced: pause in ms; loop: unused. */
    param?: number;
}

/** wrk's argv (without the program name). Connections are split evenly over threads. */
export function wrkArgs(w: WrkInvocation): string[] {
    if (w.connections < w.threads) throw new RangeError(`wrk needs at least one connection per thread (${w.connections} < ${w.threads})`);
    if (w.connections % w.threads !== 0) throw new RangeError(`${w.connections} connections do not split evenly over ${w.threads} threads`);
    const param = w.mode === "once" ? w.connections / w.threads : (w.param ?? 0);
    return [
        `-t${w.threads}`,
        `-c${w.connections}`,
        `-d${Math.max(1, Math.ceil(w.durationS))}s`,
        "--timeout",
        `${Math.max(1, Math.ceil(w.timeoutS))}s`,
        "-s",
        w.scriptPath,
        w.url,
        "--",
        w.mode,
        w.path,
        String(param),
    ];
}

export interface WrkErrors {
    connect: number;
    read: number;
    write: number;
    /** Responses that came after --timeout (wrk does not count requests never answered). */
    timeout: number;
    /** Responses with a status >= 400, as wrk counts them. */
    status: number;
}

export interface WrkResult {
    /** Responses wrk parsed (any status). */
    requests: number;
    durationS: number;
    requestsPerSecond: number;
    errors: WrkErrors;
    /** From the script: requests written, and responses per status code. */
    sent?: number;
    codes?: Record<string, number>;
    latencyUs?: { min: number; mean: number; max: number; p50: number; p90: number; p99: number };
    /** Average latency from wrk's own table, when the script line is missing. */
    latencyAvgUs?: number;
}

const UNIT_US: Record<string, number> = { us: 1, ms: 1000, s: 1_000_000, m: 60_000_000, h: 3_600_000_000 };

/** "5.01s", "38.05ms", "812.00us", "1.25m" -> microseconds. */
export function parseWrkTime(text: string): number {
    const m = /^(\d+(?:\.\d+)?)(us|ms|s|m|h)$/.exec(text.trim());
    if (!m) throw new Error(`not a wrk time: ${JSON.stringify(text)}`);
    return Number(m[1]) * UNIT_US[m[2]];
}

/**
 * Reads wrk's summary (the fixed text it always prints) and, when present,
 * the script's PYCBENCH line, which is preferred for counts and percentiles.
 * Throws when the text is not a wrk summary (wrk failed to start).
 */
export function parseWrkOutput(output: string): WrkResult {
    const summary = /(\d+) requests in (\d+(?:\.\d+)?(?:us|ms|s|m|h)), /.exec(output);
    if (!summary) throw new Error(`not a wrk summary:\n${output.slice(0, 2000)}`);
    const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
    const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(output);
    const rps = /Requests\/sec:\s+(\d+(?:\.\d+)?)/.exec(output);
    const latencyRow = /^\s*Latency\s+(\S+)\s+/m.exec(output);
    const result: WrkResult = {
        requests: Number(summary[1]),
        durationS: parseWrkTime(summary[2]) / 1e6,
        requestsPerSecond: rps ? Number(rps[1]) : 0,
        errors: {
            connect: socket ? Number(socket[1]) : 0,
            read: socket ? Number(socket[2]) : 0,
            write: socket ? Number(socket[3]) : 0,
            timeout: socket ? Number(socket[4]) : 0,
            status: non2xx ? Number(non2xx[1]) : 0,
        },
    };
    if (latencyRow && /^\d/.test(latencyRow[1])) result.latencyAvgUs = parseWrkTime(latencyRow[1]);
    const line = output.split("\n").find(l => l.startsWith(`${RESULT_MARKER} `));
    if (line) {
        const data = JSON.parse(line.slice(RESULT_MARKER.length + 1)) as {
            sent: number;
            codes: Record<string, number>;
            errors: WrkErrors;
            latencyUs: WrkResult["latencyUs"];
        };
        result.sent = data.sent;
        result.codes = data.codes;
        result.errors = { ...data.errors };
        // wrk reports percentiles of an empty histogram as 0: no latency then.
        if (result.requests > 0) result.latencyUs = data.latencyUs;
    }
    return result;
}

/** Sums the results of several wrk processes of one step (percentiles: see mergeLatency). */
export function sumResults(results: WrkResult[]): Omit<WrkResult, "latencyUs" | "latencyAvgUs" | "durationS" | "requestsPerSecond"> {
    const codes: Record<string, number> = {};
    let sent = 0;
    const errors: WrkErrors = { connect: 0, read: 0, write: 0, timeout: 0, status: 0 };
    let requests = 0;
    for (const r of results) {
        requests += r.requests;
        sent += r.sent ?? r.requests;
        for (const k of Object.keys(errors) as (keyof WrkErrors)[]) errors[k] += r.errors[k];
        for (const [code, n] of Object.entries(r.codes ?? {})) codes[code] = (codes[code] ?? 0) + n;
    }
    return { requests, sent, codes, errors };
}

/**
 * Percentiles over several processes, weighting each process's percentile by
 * its answered requests (exact when the processes see the same distribution,
 * which equal chunks of one step do; the max of the p99s is reported too).
 */
export function mergeLatency(results: WrkResult[]): { p50Us: number; p99Us: number; maxP99Us: number; maxUs: number } | undefined {
    const withLatency = results.filter(r => r.latencyUs && r.requests > 0);
    if (withLatency.length === 0) return undefined;
    const weight = withLatency.reduce((s, r) => s + r.requests, 0);
    const avg = (f: (r: WrkResult) => number) => withLatency.reduce((s, r) => s + f(r) * r.requests, 0) / weight;
    return {
        p50Us: Math.round(avg(r => r.latencyUs!.p50)),
        p99Us: Math.round(avg(r => r.latencyUs!.p99)),
        maxP99Us: Math.max(...withLatency.map(r => r.latencyUs!.p99)),
        maxUs: Math.max(...withLatency.map(r => r.latencyUs!.max)),
    };
}
