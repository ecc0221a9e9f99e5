/**
 * The benchmark's command line, parsed into typed options. Pure, so every
 * rule (units, defaults, what --quick means) is unit-tested.
 */

export const CONFIG_NAMES = ["generated", "seed", "stock"] as const;
export type ConfigName = (typeof CONFIG_NAMES)[number];

export interface BenchOptions {
    /** Stack file Pulumi.<stack>.yaml of the bench cluster. */
    stack: string;
    /** Concurrent in-flight requests per step, ascending. */
    steps: number[];
    /**
     * The shortest time the app holds each request (the simulated I/O of /wait), ms. A step
     * holds longer when its ramp needs it: see stepTiming.
     */
    holdMs: number;
    /** Extra time a request may take beyond its hold before it counts as timed out, ms; undefined = 15 s + hold/4 per step. */
    graceMs?: number;
    /** New connections per second while a step ramps up; undefined = from the calibration (rampShare of the machine's handshake rate). */
    rampRate?: number;
    /** Share of the calibrated handshake rate (all CPUs busy) the steps ramp at, leaving the rest of the CPUs to the hosts. */
    rampShare: number;
    /** Seconds of each calibration run (new connections, kept-alive requests, straight to an app node); 0 = no calibration. */
    calibrateSeconds: number;
    /** Most connections one load-generator process holds (each stays under the 20,000 open-file cap). */
    chunk: number;
    configs: ConfigName[];
    /** Stack config overrides for the cluster, i.e. for the generated configuration. */
    set: Record<string, string>;
    /** After a configuration's first failing step, this many probes halve the concurrency towards the last step it held. */
    refine: number;
    /** Keep stepping up after a configuration failed a step (default: stop there, it only gets worse). */
    continueAfterFailure: boolean;
    /** Throughput run: closed-loop connections and seconds per target; 0 seconds = skip. */
    throughputConnections: number;
    throughputSeconds: number;
    /** Rounds of throughput with the exporters stopped, then running (generated only; 0 = skip). */
    monitoringCostRounds: number;
    /** Paced run for the LB's added latency: connections and the pause between a connection's requests. */
    latencyConnections: number;
    latencyPauseMs: number;
    /** MemAvailable the guard keeps free, MiB (the floor a step is aborted at). */
    memReserveMiB: number;
    /** Before each step, wait up to this long for CPU used outside the bench to drop below 25% of the machine. */
    quietWaitS: number;
    /** A step that failed while other work took CPU is measured again, up to this many times. */
    retries: number;
    /** Internet client namespaces of the bench cloud (source IPs of the load). */
    clients: number;
    keep: boolean;
    quick: boolean;
    resultsDir: string;
}

export const USAGE = `usage: npx tsx bench/bench.ts [options]

  --steps LIST          concurrency steps, e.g. 10k,25k,50k,75k,100k (default)
  --hold DURATION       shortest time the app holds each request (simulated I/O), default 20s;
                        a step holds at least 1.25 x its ramp + 10 s, so all its requests are in flight at once
  --grace DURATION      slack beyond the hold before a request counts as timed out, default 15s + hold/4, at most 50s
  --ramp-rate N         new connections per second while a step ramps up, default: from the calibration
  --ramp-share X        share of the calibrated handshake rate the steps ramp at, default 0.5
  --calibrate DURATION  length of each calibration run, default 8s (0 = none; needs --ramp-rate)
  --chunk N             most connections per load-generator process (each < 20000 open files), default 12500
  --configs LIST        generated,seed,stock (default: all three, in that order)
  --set KEY=VALUE       stack config override for the cluster (= the generated configuration); repeatable
  --refine N            probes below a configuration's first failing step, default 4
  --continue            keep stepping up after a configuration failed a step
  --throughput N@DUR    closed-loop throughput run: N connections for DUR per target, default 64@10s (0@0s = skip)
  --latency N@PAUSE     paced run for the LB's added latency: N connections, PAUSE between requests, default 16@50ms
  --mem-reserve MIB     MemAvailable kept free: a step that would go below is refused or aborted, default 2048
  --quiet-wait DURATION wait up to this long before each step for outside CPU load to settle, default 60s
  --retries N           measure a step again when it failed under outside CPU load, default 1
  --clients N           client network namespaces (source IPs), default 8
  --stack NAME          stack file Pulumi.NAME.yaml, default bench
  --keep                leave the bench cluster up (with the generated configuration back in place)
  --monitoring-cost N   rounds of throughput through the LB with every exporter stopped and running (which first alternates),
                        for generated (default 5; 0 = skip): what monitoring costs, same hosts, same run
  --quick               smoke run (about 6 minutes with the stand-up): one small step, short hold, short throughput runs
  --results DIR         where results go, default bench/results
`;

/** "10k" -> 10000, "1.5k" -> 1500, "2m" (million) is not accepted: steps are connections. */
export function parseCount(text: string): number {
    const m = /^(\d+(?:\.\d+)?)(k?)$/i.exec(text.trim());
    if (!m) throw new Error(`not a count: ${JSON.stringify(text)} (use e.g. 2500 or 10k)`);
    const n = Number(m[1]) * (m[2] ? 1000 : 1);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`not a positive whole count: ${JSON.stringify(text)}`);
    return n;
}

/** "500ms", "30s", "2m", or a bare number of seconds -> milliseconds. */
export function parseDuration(text: string): number {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
    if (!m) throw new Error(`not a duration: ${JSON.stringify(text)} (use e.g. 500ms, 30s or 2m)`);
    const factor = m[2] === "ms" ? 1 : m[2] === "m" ? 60_000 : 1000;
    return Math.round(Number(m[1]) * factor);
}

/**
 * The default grace for a hold: room for queueing under load, growing with the
 * hold, but at most 50 s: a connection stays idle for the grace after its
 * answer, and nginx (generated and Debian's alike) closes idle client
 * connections after keepalive_timeout 65 s, with a reset that wrk counts as a
 * read error although the request was answered.
 */
export function defaultGraceMs(holdMs: number): number {
    return Math.min(50_000, 15_000 + Math.round(holdMs / 4));
}

export interface StepTiming {
    /** When the last connection starts opening, ms after the first. */
    rampMs: number;
    holdMs: number;
    graceMs: number;
}

/**
 * How long a step of `concurrency` requests ramps, holds and waits. Every
 * request must still be held when the last one arrives, so the hold is at
 * least 1.25 x the ramp + 10 s (2 s + half the ramp for ramps under 16 s; never
 * below --hold): then all of them are in flight at the same time for a while. The ramp opens `rampRate`
 * connections per second. Pure.
 */
export function stepTiming(concurrency: number, o: Pick<BenchOptions, "holdMs" | "graceMs">, rampRate: number): StepTiming {
    const rampMs = Math.round((concurrency * 1000) / rampRate);
    // The plateau (all in flight) must outlast a few 1 s samples and a 3 s memory sample: 10 s, less for a short ramp.
    const plateauMs = Math.min(10_000, 2000 + rampMs / 2);
    const holdMs = rampMs === 0 ? o.holdMs : Math.max(o.holdMs, Math.ceil((rampMs * 1.25 + plateauMs) / 1000) * 1000);
    return { rampMs, holdMs, graceMs: o.graceMs ?? defaultGraceMs(holdMs) };
}

export function defaultOptions(): BenchOptions {
    return {
        stack: "bench",
        steps: [10_000, 25_000, 50_000, 75_000, 100_000],
        holdMs: 20_000,
        rampShare: 0.5,
        calibrateSeconds: 8,
        chunk: 12_500,
        configs: [...CONFIG_NAMES],
        set: {},
        refine: 4,
        continueAfterFailure: false,
        throughputConnections: 64,
        throughputSeconds: 10,
        monitoringCostRounds: 5,
        latencyConnections: 16,
        latencyPauseMs: 50,
        memReserveMiB: 2048,
        quietWaitS: 60,
        retries: 1,
        clients: 8,
        keep: false,
        quick: false,
        resultsDir: "bench/results",
    };
}

/** What --quick changes (explicit options given with it still win). */
export function quickOverrides(): Partial<BenchOptions> {
    return {
        steps: [500],
        holdMs: 3000,
        graceMs: 4000,
        calibrateSeconds: 1,
        refine: 0,
        throughputConnections: 16,
        throughputSeconds: 1,
        monitoringCostRounds: 1,
        latencyConnections: 4,
        latencyPauseMs: 50,
        quietWaitS: 5,
        retries: 0,
    };
}

/** "0", "3" -> a whole number >= 0 (counts of probes or retries). */
function wholeNumber(text: string, flag: string): number {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 0) throw new Error(`${flag} needs a whole number >= 0`);
    return n;
}

function pair(text: string, what: string): [string, string] {
    const at = text.indexOf("@");
    if (at <= 0) throw new Error(`${what} needs N@VALUE, got ${JSON.stringify(text)}`);
    return [text.slice(0, at), text.slice(at + 1)];
}

type ValueFlag = (value: string, given: Partial<BenchOptions>, set: Record<string, string>) => void;

/** The flags that take a value: each parses and checks it into the options given (or the --set overrides). */
const VALUE_FLAGS = new Map<string, ValueFlag>([
    [
        "--steps",
        (v, given) => {
            const steps = v.split(",").filter(Boolean).map(parseCount);
            if (steps.length === 0) throw new Error("--steps needs at least one step");
            given.steps = [...new Set(steps)].sort((a, b) => a - b);
        },
    ],
    [
        "--hold",
        (v, given) => {
            given.holdMs = parseDuration(v);
            if (given.holdMs < 100) throw new Error("--hold must be at least 100ms");
        },
    ],
    ["--grace", (v, given) => (given.graceMs = parseDuration(v))],
    ["--ramp-rate", (v, given) => (given.rampRate = parseCount(v))],
    [
        "--ramp-share",
        (v, given) => {
            const share = Number(v);
            if (!(share > 0 && share <= 1)) throw new Error("--ramp-share needs a number in (0, 1]");
            given.rampShare = share;
        },
    ],
    ["--calibrate", (v, given) => (given.calibrateSeconds = parseDuration(v) / 1000)],
    [
        "--chunk",
        (v, given) => {
            given.chunk = parseCount(v);
            if (given.chunk > 19_000) throw new Error("--chunk must stay below 19000: a process may open at most 20000 files here");
        },
    ],
    [
        "--configs",
        (v, given) => {
            const names = v.split(",").filter(Boolean);
            for (const n of names) {
                if (!(CONFIG_NAMES as readonly string[]).includes(n)) throw new Error(`unknown configuration ${JSON.stringify(n)}: use ${CONFIG_NAMES.join(", ")}`);
            }
            if (names.length === 0) throw new Error("--configs needs at least one configuration");
            given.configs = [...new Set(names)] as ConfigName[];
        },
    ],
    [
        "--set",
        (kv, _given, set) => {
            const eq = kv.indexOf("=");
            if (eq <= 0) throw new Error(`--set needs KEY=VALUE, got ${JSON.stringify(kv)}`);
            set[kv.slice(0, eq)] = kv.slice(eq + 1);
        },
    ],
    ["--refine", (v, given) => (given.refine = wholeNumber(v, "--refine"))],
    [
        "--throughput",
        (v, given) => {
            const [n, d] = pair(v, "--throughput");
            given.throughputConnections = n === "0" ? 0 : parseCount(n);
            given.throughputSeconds = parseDuration(d) / 1000;
        },
    ],
    ["--monitoring-cost", (v, given) => (given.monitoringCostRounds = wholeNumber(v, "--monitoring-cost"))],
    [
        "--latency",
        (v, given) => {
            const [n, d] = pair(v, "--latency");
            given.latencyConnections = n === "0" ? 0 : parseCount(n);
            given.latencyPauseMs = parseDuration(d);
        },
    ],
    ["--mem-reserve", (v, given) => (given.memReserveMiB = parseCount(v))],
    ["--quiet-wait", (v, given) => (given.quietWaitS = parseDuration(v) / 1000)],
    ["--retries", (v, given) => (given.retries = wholeNumber(v, "--retries"))],
    [
        "--clients",
        (v, given) => {
            given.clients = parseCount(v);
            if (given.clients > 50) throw new Error("--clients: at most 50 client namespaces");
        },
    ],
    ["--stack", (v, given) => (given.stack = v)],
    ["--results", (v, given) => (given.resultsDir = v)],
]);

/** The flags without a value. */
const SWITCHES = new Map<string, (given: Partial<BenchOptions>) => void>([
    ["--continue", given => (given.continueAfterFailure = true)],
    ["--keep", given => (given.keep = true)],
    ["--quick", given => (given.quick = true)],
]);

export function parseOptions(argv: string[]): BenchOptions {
    const given: Partial<BenchOptions> = {};
    const set: Record<string, string> = {};
    for (let i = 0; i < argv.length; i++) {
        const flag = argv[i];
        const withValue = VALUE_FLAGS.get(flag);
        const toggle = SWITCHES.get(flag);
        if (withValue) {
            const v = argv[++i];
            if (v === undefined || v.startsWith("--")) throw new Error(`${flag} needs a value\n${USAGE}`);
            withValue(v, given, set);
        } else if (toggle) {
            toggle(given);
        } else if (flag === "--help" || flag === "-h") {
            throw new Error(USAGE);
        } else {
            throw new Error(`unknown option ${JSON.stringify(flag)}\n${USAGE}`);
        }
    }
    const base = defaultOptions();
    const quick = given.quick ? quickOverrides() : {};
    const o = { ...base, ...quick, ...given, set };
    if (o.calibrateSeconds === 0 && o.rampRate === undefined) throw new Error("--calibrate 0 needs --ramp-rate: without a calibration the bench does not know what this machine can ramp at");
    return o;
}
