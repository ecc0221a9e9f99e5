/**
 * Load during failure tests: wrk (a real load tool) from client network
 * namespaces for the counts, and a probe in this process that samples the
 * site every 50 ms so the time to recover can be measured.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as https from "https";
import { parseWrkOutput, WrkResult } from "../../bench/lib/wrk";

export type { WrkResult } from "../../bench/lib/wrk";

const failures = (r: WrkResult) => r.errors.status + r.errors.connect + r.errors.read + r.errors.write + r.errors.timeout;

interface WrkRun {
    /** Stops the load (SIGINT: wrk prints its summary) and returns the numbers. */
    stop(): Promise<WrkResult>;
}

/**
 * wrk's script for POST requests with a small form body. nginx passes a request it has sent to a
 * node on to another one only when the request is idempotent (proxy_next_upstream), so a POST load
 * shows every failure a GET load lets nginx hide by retrying.
 */
const POST_SCRIPT = `wrk.method = "POST"
wrk.body = "note=pycluster-load"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
`;

/** wrk in a network namespace until stopped; GET unless `method` says POST. */
function startWrk(o: { netns: string; url: string; connections: number; threads?: number; timeoutS?: number; method?: "GET" | "POST" }): WrkRun {
    const scriptDir = o.method === "POST" ? fs.mkdtempSync(path.join(os.tmpdir(), "pyc-wrk-")) : undefined;
    const script = scriptDir ? ["-s", path.join(scriptDir, "post.lua")] : [];
    if (scriptDir) fs.writeFileSync(script[1], POST_SCRIPT);
    const args = ["netns", "exec", o.netns, "wrk", `-t${o.threads ?? 1}`, `-c${o.connections}`, "-d3600s", `--timeout`, `${o.timeoutS ?? 10}s`, ...script, o.url];
    const child = spawn("ip", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", d => (out += d));
    child.stderr.on("data", d => (out += d));
    const exited = new Promise<void>(resolve => child.on("exit", () => resolve()));
    return {
        async stop() {
            // `ip netns exec` execs wrk: the PID is wrk's own.
            child.kill("SIGINT");
            await exited;
            if (scriptDir) fs.rmSync(scriptDir, { recursive: true, force: true });
            return parseWrkOutput(out); // the benchmark's reader: "Non-2xx" counts land in errors.status
        },
    };
}

/** What a mixed load saw: each wrk's numbers, their totals, and the summary tables' columns. */
export interface LoadResult {
    wrk: WrkResult[];
    sent: number;
    failed: number;
    /** "sent (GET n, POST n) | failed (share: each wrk's errors)", the failure suites' summary columns. */
    columns: string;
}

/**
 * The failure suites' load: one wrk per namespace, GETs from the first and POSTs from the others
 * (nginx retries a failed GET on another node unseen, never a POST it has sent).
 */
export function startMixedLoad(netnses: string[], o: { url: string; connections: number; timeoutS?: number }): { stop(): Promise<LoadResult> } {
    const methods = netnses.map((_, i): "GET" | "POST" => (i === 0 ? "GET" : "POST"));
    const runs = netnses.map((netns, i) => startWrk({ ...o, netns, method: methods[i] }));
    return {
        async stop() {
            const wrk = await Promise.all(runs.map(r => r.stop()));
            const sent = wrk.reduce((n, w) => n + w.requests, 0);
            const failed = wrk.reduce((n, w) => n + failures(w), 0);
            const byMethod = methods.map((m, i) => `${m} ${wrk[i].requests}`).join(", ");
            const detail = failed ? ` (${((100 * failed) / sent).toFixed(3)}%: ${JSON.stringify(wrk.map(w => w.errors))})` : "";
            return { wrk, sent, failed, columns: `${sent} (${byMethod}) | ${failed}${detail}` };
        },
    };
}

export interface Sample {
    at: number;
    ok: boolean;
    node?: string;
    error?: string;
}

/** Samples https://<host>/ every `intervalMs` (each in flight at most `timeoutMs`), recording who answered. */
export class Probe {
    readonly samples: Sample[] = [];
    private timer?: NodeJS.Timeout;
    private readonly agent = new https.Agent({ keepAlive: true, maxSockets: 8, rejectUnauthorized: false });

    constructor(
        private readonly host: string,
        private readonly intervalMs = 50,
        private readonly timeoutMs = 5000,
    ) {}

    start(): void {
        this.timer = setInterval(() => this.once(), this.intervalMs);
    }

    private once(): void {
        const at = Date.now();
        const req = https.get({ host: this.host, path: "/", agent: this.agent, timeout: this.timeoutMs }, res => {
            let body = "";
            res.on("data", d => (body += d));
            res.on("end", () => {
                let node: string | undefined;
                try {
                    node = JSON.parse(body).node;
                } catch {
                    node = undefined;
                }
                this.samples.push({ at, ok: res.statusCode === 200, node, error: res.statusCode === 200 ? undefined : `HTTP ${res.statusCode}` });
            });
        });
        req.on("timeout", () => req.destroy(new Error("timeout")));
        req.on("error", e => this.samples.push({ at, ok: false, error: e.message }));
    }

    async stop(): Promise<void> {
        if (this.timer) clearInterval(this.timer);
        await new Promise(r => setTimeout(r, this.timeoutMs + 200));
        this.agent.destroy();
    }

    /** ms from `since` to the end of the last failed sample (0 when none failed). */
    recoveryMs(since: number): number {
        const failed = this.samples.filter(s => s.at >= since && !s.ok);
        return failed.length === 0 ? 0 : Math.max(...failed.map(s => s.at)) - since;
    }

    /**
     * The failed samples since `since`, as windows (failures less than a second apart join one):
     * "12.3-14.0 s: 31 failed (timeout x30, ECONNRESET)", for reports.
     */
    failedWindows(since: number): string[] {
        const windows: { from: number; to: number; errors: Map<string, number> }[] = [];
        for (const s of this.samples.filter(x => x.at >= since && !x.ok).sort((a, b) => a.at - b.at)) {
            const last = windows[windows.length - 1];
            const w = last && s.at - last.to < 1000 ? last : (windows.push({ from: s.at, to: s.at, errors: new Map() }), windows[windows.length - 1]);
            w.to = s.at;
            w.errors.set(s.error ?? "?", (w.errors.get(s.error ?? "?") ?? 0) + 1);
        }
        const sec = (ms: number) => ((ms - since) / 1000).toFixed(1);
        return windows.map(w => {
            const n = [...w.errors.values()].reduce((a, b) => a + b, 0);
            const what = [...w.errors].map(([e, k]) => (k > 1 ? `${e} x${k}` : e)).join(", ");
            return `${sec(w.from)}-${sec(w.to)} s: ${n} failed (${what})`;
        });
    }

    /** ms from `since` until `node` first answered again (undefined if it never did). */
    firstSeen(node: string, since: number): number | undefined {
        const seen = this.samples.filter(s => s.at >= since && s.ok && s.node === node).map(s => s.at);
        return seen.length === 0 ? undefined : Math.min(...seen) - since;
    }
}

/** What happened to one request of a PacedClient. */
export interface PacedSample {
    /** When it was sent (ms since the epoch). */
    at: number;
    /** ms until it ended (answer, error or timeout). */
    ms: number;
    status?: number;
    /** The Retry-After header of the answer, if any. */
    retryAfter?: string;
    /** "reset" (connection reset or closed with no answer), "timeout", or another error code. */
    error?: string;
}

/**
 * Sends GET requests to https://<host><path> at a set rate, whatever the answers (an open loop:
 * a slow server does not slow the client down, as real clients do not), over kept-alive
 * connections, and records what happened to each one.
 */
export class PacedClient {
    readonly samples: PacedSample[] = [];
    private timer?: NodeJS.Timeout;
    private inFlight = 0;
    private readonly agent: https.Agent;

    constructor(
        private readonly host: string,
        private readonly path: string,
        private readonly timeoutMs = 10_000,
        sockets = 64,
    ) {
        this.agent = new https.Agent({ keepAlive: true, maxSockets: sockets, rejectUnauthorized: false });
    }

    /** Sends `perSecond` requests a second (in 10 ms ticks) until the rate changes or stop(). */
    rate(perSecond: number): void {
        if (this.timer) clearInterval(this.timer);
        let owed = 0;
        this.timer = setInterval(() => {
            owed += perSecond / 100;
            for (; owed >= 1; owed--) this.once();
        }, 10);
    }

    private once(): void {
        const at = Date.now();
        this.inFlight++;
        let done = false;
        const end = (s: Omit<PacedSample, "at" | "ms">) => {
            if (done) return;
            done = true;
            this.inFlight--;
            this.samples.push({ at, ms: Date.now() - at, ...s });
        };
        const req = https.get({ host: this.host, path: this.path, agent: this.agent, timeout: this.timeoutMs }, res => {
            res.resume();
            res.on("end", () => end({ status: res.statusCode, retryAfter: res.headers["retry-after"] as string | undefined }));
            res.on("error", () => end({ error: "reset" }));
        });
        req.on("timeout", () => {
            end({ error: "timeout" });
            req.destroy();
        });
        req.on("error", (e: NodeJS.ErrnoException) => end({ error: e.code === "ECONNRESET" || e.message === "socket hang up" ? "reset" : (e.code ?? e.message) }));
    }

    /** Stops sending, waits for the requests in flight (at most the timeout), closes the connections. */
    async stop(): Promise<void> {
        if (this.timer) clearInterval(this.timer);
        const deadline = Date.now() + this.timeoutMs + 1000;
        while (this.inFlight > 0 && Date.now() < deadline) await new Promise(r => setTimeout(r, 50));
        this.agent.destroy();
    }
}

/** Requests by outcome: 200, 503 with and without Retry-After, other statuses, resets, timeouts, other errors. */
export function outcomes(samples: PacedSample[]): Record<string, number> {
    const out: Record<string, number> = {};
    for (const s of samples) {
        const key = s.error ?? (s.status === 503 ? (s.retryAfter ? "503 with Retry-After" : "503 without Retry-After") : String(s.status));
        out[key] = (out[key] ?? 0) + 1;
    }
    return out;
}
