/**
 * h2load (nghttp2's load generator, HTTP/1.1 here) as the bench's client for
 * holding steps and the calibration: its command line, the parsing of its
 * summary, and what happened to each request slot. Pure.
 *
 * Why h2load for the steps: a connection that fails is not opened again, so
 * every slot (one connection, one request) ends exactly once, as answered
 * (by status class), timed out, reset after its request went out, or never
 * connected; and `--rate` opens connections at a steady rate instead of in
 * bursts. wrk, by contrast, reconnects at once after a refused or reset
 * connection and counts one error per attempt: thousands per slot.
 */

export interface H2loadInvocation {
    url: string;
    /** Concurrent clients (connections). */
    clients: number;
    /** Requests in all: `clients` for one request per connection. */
    requests: number;
    /** New connections per second (spread over 100 ms periods); 0 = all at once. */
    connectionsPerSecond?: number;
    /** A connection (and the request on it) is given up this long after it opened (-T). */
    connectionTimeoutS?: number;
    /** Extra request headers, e.g. "Connection: close" (a new connection, and handshake, per request). */
    headers?: string[];
    /** Per-request log: start (us since epoch), status (-1 = failed), duration (us). */
    logFile?: string;
}

/** h2load's argv (without the program name). */
export function h2loadArgs(h: H2loadInvocation): string[] {
    if (!(h.clients >= 1) || h.requests < h.clients) throw new RangeError(`h2load needs requests >= clients >= 1 (${h.requests}, ${h.clients})`);
    const args = ["--h1", "-t1", `-c${h.clients}`, `-n${h.requests}`];
    if (h.connectionsPerSecond !== undefined && h.connectionsPerSecond > 0) {
        // h2load refuses more new connections per period than it has clients (a small probe split
        // over eight processes has two or three each): fewer per period, shorter periods, same rate.
        const { perPeriod, periodMs } = ratePeriods(h.connectionsPerSecond, h.clients);
        args.push(`--rate=${perPeriod}`, `--rate-period=${periodMs}ms`);
    }
    if (h.connectionTimeoutS !== undefined) args.push(`--connection-active-timeout=${Math.max(1, Math.ceil(h.connectionTimeoutS))}`);
    for (const header of h.headers ?? []) args.push("-H", header);
    if (h.logFile) args.push(`--log-file=${h.logFile}`);
    args.push(h.url);
    return args;
}

/**
 * `rate` connections per second as h2load's "N per period": periods of about 100 ms (steady
 * rather than one burst a second), at least one connection each and at most `mostPerPeriod`
 * (h2load: the rate must not exceed the number of clients). Pure.
 */
export function ratePeriods(rate: number, mostPerPeriod = Infinity): { perPeriod: number; periodMs: number } {
    if (!(rate > 0)) throw new RangeError(`a connection rate must be > 0, got ${rate}`);
    const perPeriod = Math.max(1, Math.min(mostPerPeriod, Math.round(rate / 10)));
    return { perPeriod, periodMs: Math.max(1, Math.round((perPeriod * 1000) / rate)) };
}

export interface H2loadResult {
    /** Request slots. */
    total: number;
    /** Requests that went out (their connection was established). */
    started: number;
    /** Requests answered (any status). */
    done: number;
    succeeded: number;
    failed: number;
    /** Failed for a connection error: never connected, or reset/closed while waiting. */
    errored: number;
    /** Failed because the connection timed out (-T). */
    timeout: number;
    status: { "2xx": number; "3xx": number; "4xx": number; "5xx": number };
    durationS: number;
    requestsPerSecond: number;
    /** Time to connect, including the TLS handshake, over the connections that connected (us). */
    connectUs?: { min: number; max: number; mean: number };
}

const UNIT_S: Record<string, number> = { us: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

function seconds(value: string, unit: string): number {
    return Number(value) * UNIT_S[unit];
}

/** Reads h2load's summary; throws when the text has none (h2load failed, or was killed). */
export function parseH2loadOutput(output: string): H2loadResult {
    const finished = /^finished in (\d+(?:\.\d+)?)(us|ms|s|m|h), (\d+(?:\.\d+)?) req\/s/m.exec(output);
    const req = /^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/m.exec(output);
    const codes = /^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/m.exec(output);
    if (!finished || !req || !codes) throw new Error(`not an h2load summary:\n${output.slice(-2000)}`);
    const n = (m: RegExpExecArray, i: number) => Number(m[i]);
    const result: H2loadResult = {
        total: n(req, 1),
        started: n(req, 2),
        done: n(req, 3),
        succeeded: n(req, 4),
        failed: n(req, 5),
        errored: n(req, 6),
        timeout: n(req, 7),
        status: { "2xx": n(codes, 1), "3xx": n(codes, 2), "4xx": n(codes, 3), "5xx": n(codes, 4) },
        durationS: seconds(finished[1], finished[2]),
        requestsPerSecond: Number(finished[3]),
    };
    const t = "(\\d+(?:\\.\\d+)?)(us|ms|s)";
    const connect = new RegExp(`^time for connect:\\s+${t}\\s+${t}\\s+${t}`, "m").exec(output);
    if (connect && result.started > 0) {
        const us = (i: number) => seconds(connect[i], connect[i + 1]) * 1e6;
        result.connectUs = { min: us(1), max: us(3), mean: us(5) };
    }
    return result;
}

/** What happened to each request slot: every slot counts once, in exactly one class. */
export interface SlotOutcomes {
    slots: number;
    /** Answered 2xx. */
    ok: number;
    /** Answered 5xx (nginx's 502/503/504, the app's 500). */
    http5xx: number;
    /** Answered 3xx or 4xx (none is expected). */
    otherStatus: number;
    /** The connection never came up (refused, reset or closed during the TCP or TLS handshake). */
    neverConnected: number;
    /** The request went out, then the connection was reset or closed with no answer. */
    reset: number;
    /** No answer before the connection's time was up. */
    timeout: number;
    /** Slots not answered 2xx. */
    failed: number;
}

/**
 * Slots by outcome, from h2load's counts. h2load counts a slot whose connection never came up
 * as failed and errored but not started; one reset while waiting as started, errored, not done;
 * one timed out as started, errored and timeout. Pure.
 */
export function classifySlots(r: Pick<H2loadResult, "total" | "started" | "errored" | "timeout" | "status">): SlotOutcomes {
    const neverConnected = r.total - r.started;
    const timeout = r.timeout;
    const reset = Math.max(0, r.errored - timeout - neverConnected);
    const ok = r.status["2xx"];
    const http5xx = r.status["5xx"];
    const otherStatus = r.status["3xx"] + r.status["4xx"];
    return { slots: r.total, ok, http5xx, otherStatus, neverConnected, reset, timeout, failed: r.total - ok };
}

/** Sums outcomes over a step's processes. Pure. */
export function sumSlots(parts: SlotOutcomes[]): SlotOutcomes {
    const sum: SlotOutcomes = { slots: 0, ok: 0, http5xx: 0, otherStatus: 0, neverConnected: 0, reset: 0, timeout: 0, failed: 0 };
    for (const p of parts) for (const k of Object.keys(sum) as (keyof SlotOutcomes)[]) sum[k] += p[k];
    return sum;
}

/** One line for tables: the kinds that occurred, e.g. "timeout 120, 5xx 3" ("0" when every slot got a 2xx). */
export function describeSlots(s: SlotOutcomes): string {
    if (s.failed === 0) return "0";
    const parts: string[] = [];
    if (s.neverConnected) parts.push(`never connected ${s.neverConnected}`);
    if (s.reset) parts.push(`reset ${s.reset}`);
    if (s.timeout) parts.push(`timeout ${s.timeout}`);
    if (s.http5xx) parts.push(`5xx ${s.http5xx}`);
    if (s.otherStatus) parts.push(`other ${s.otherStatus}`);
    const accounted = s.neverConnected + s.reset + s.timeout + s.http5xx + s.otherStatus;
    if (accounted < s.failed) parts.push(`no result ${s.failed - accounted}`);
    return parts.join(", ");
}

/** One row of --log-file. */
export interface LoggedRequest {
    startUs: number;
    status: number;
    durationUs: number;
}

export function parseH2loadLog(text: string): LoggedRequest[] {
    const rows: LoggedRequest[] = [];
    for (const line of text.split("\n")) {
        const f = line.split("\t");
        if (f.length < 3) continue;
        rows.push({ startUs: Number(f[0]), status: Number(f[1]), durationUs: Number(f[2]) });
    }
    return rows;
}

/**
 * How long each request answered 2xx took, over the per-request logs of a step's processes
 * (a missing log is skipped: its process failed, which the step notes on its own).
 */
export function answeredDurationsUs(logFiles: string[], read: (file: string) => string): number[] {
    const us: number[] = [];
    for (const file of logFiles) {
        let text: string;
        try {
            text = read(file);
        } catch {
            continue;
        }
        for (const row of parseH2loadLog(text)) if (row.status >= 200 && row.status < 300) us.push(row.durationUs);
    }
    return us;
}

/** Exact percentiles (nearest rank) of a list of numbers; undefined when empty. Pure. */
export function percentiles(values: number[], ps: number[]): number[] | undefined {
    if (values.length === 0) return undefined;
    const sorted = [...values].sort((a, b) => a - b);
    return ps.map(p => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]);
}
