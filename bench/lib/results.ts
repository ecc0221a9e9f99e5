/**
 * The shape of bench/results/<timestamp>.json, and the pure decisions made
 * on it: whether a step held, a configuration's highest held concurrency, the
 * next refinement probe, and the targets of issue 5.
 */
import { MONITORING_COST_TARGET, MonitoringCost } from "./monitoringCost";
import { CapacityModel } from "../../config/capacity";
import { MeasuredRates } from "../../config/rates";
import { SlotOutcomes } from "./h2load";
import { AppEffective, LbEffective } from "./hosts";
import { BenchOptions, ConfigName } from "./options";

export interface HostPeak {
    peakMemMiB: number;
    peakCpuCores: number;
    meanCpuCores: number;
    peakTcpInUse: number;
    peakConntrack?: number;
}

export interface StepResult {
    concurrency: number;
    /** "step" from --steps, "refine" from the probes below a failure. */
    kind: "step" | "refine";
    /** How long the app held each request in this step, s. */
    holdS: number;
    processes: number;
    rampS: number;
    /** New connections per second the step opened. */
    rampRate: number;
    /** Requests answered 2xx. */
    ok: number;
    /** Requests answered, any status. */
    answered: number;
    /** Requests that went out (their connection came up). */
    sent: number;
    /** What happened to each request slot (one connection, one request), each counted once. */
    slots: SlotOutcomes;
    /** Requests of the step that did not get a 2xx answer. */
    failed: number;
    latency?: { p50ExcessMs: number; p99ExcessMs: number; worstP99ExcessMs: number; maxExcessMs: number };
    hosts: Record<string, HostPeak>;
    /** Requests in flight at the app nodes at the busiest moment (their TCP sockets over the step's start). */
    appInFlightPeak: number;
    machine: { minMemAvailableMiB: number; memDropMiB: number; busyCores: number; loadgenCores: number; foreignCores: number; otherCloudsCores: number };
    /** The load generators' own share: their processes' memory (PSS) at its peak, their CPU. */
    loadgen: { peakMemMiB: number; peakCpuCores: number; meanCpuCores: number };
    /** Share of the step's samples with every CPU of the machine busy (>= 90%), and the load generators' share of the busy CPU. */
    cpu: { saturatedShare: number; loadgenShareOfBusy: number };
    /** Memory per in-flight request by component, over the requests in flight at the apps' peak. */
    memoryPerRequest?: MemoryPerRequest;
    /** Why a failed step says nothing about the cluster: the load generators starved the hosts. */
    starvedBy?: string;
    /** All requests were in flight at the app nodes at the same time (within 2%). */
    simultaneous: boolean;
    held: boolean;
    aborted?: string;
    skipped?: string;
    notes: string[];
    wallS: number;
    /** Every load-generator process: where it ran, its share of the step, what it got. */
    generators?: { netns: string; connections: number; rate: number; slots?: SlotOutcomes; connectMeanMs?: number; failure?: string }[];
    /** Samples, one per second: [s, LB TCP sockets, app TCP sockets, LB cores, app cores, loadgen cores, machine busy cores, MemAvailable MiB]. */
    timeline?: number[][];
}

/** Bytes per in-flight request, each component's growth over the step divided by the requests in flight. */
export interface MemoryPerRequest {
    inFlight: number;
    /** nginx on the load balancer (PSS). */
    lbBytes: number;
    /** gunicorn on all app nodes together (PSS). */
    appBytes: number;
    /** Kernel memory (slab + TCP buffers) per TCP socket, over every socket the step opened (clients' included). */
    kernelPerSocketBytes: number;
    /** The servers' sockets: the LB holds two per request (client, upstream), an app node one. */
    serverKernelBytes: number;
    /** The load generators (PSS) and their one socket per request. */
    loadgenBytes: number;
}

/** The calibration runs: this machine's rates with the bench's own clients against the cluster. */
export interface CalibrationRun {
    kind: "handshakes" | "keepalive" | "direct";
    target: string;
    connections: number;
    requests: number;
    seconds: number;
    /** Requests (= new connections for "handshakes") answered per second. */
    perSecond: number;
    ok: number;
    failed: number;
    /** Mean cores over the run. */
    lbCores: number;
    appCores: number;
    loadgenCores: number;
    busyCores: number;
}

export interface Calibration {
    runs: CalibrationRun[];
    /** New TLS connections per second (one request each) the machine completes with every CPU busy. */
    machineHandshakesPerSecond: number;
    /** The rates per core measured now, in config/rates.ts's terms. */
    perCore: { tlsHandshakesPerLbCore: number; proxiedRequestsPerLbCore: number; sampleAppRequestsPerCore: number };
    /** Client CPU per new TLS connection, core-seconds. */
    loadgenCoreSecondsPerHandshake: number;
}

export interface ThroughputRun {
    target: "lb" | "direct";
    url: string;
    connections: number;
    seconds: number;
    requestsPerSecond: number;
    p50Ms?: number;
    p99Ms?: number;
    errors: number;
}

export interface ThroughputResult {
    closedLoop: ThroughputRun[];
    paced: ThroughputRun[];
    /** p50 through the LB minus p50 straight to one app node, at the paced (moderate) load. */
    lbAddedP50Ms?: number;
    /** Throughput with the exporters stopped vs running (generated only). */
    monitoringCost?: MonitoringCost;
}

export interface ConfigResult {
    name: ConfigName;
    description: string;
    /** Files of the plan that differed on the hosts before it was applied (for generated: what localUp had left). */
    differedBeforeApply: string[];
    refusedSysctls: Record<string, string[]>;
    effective?: { lb: LbEffective; apps: AppEffective[] };
    predicted?: CapacityModel;
    /** For generated: the stack's own `capacity` output (from the stack config rather than the hosts). */
    stackCapacity?: CapacityModel;
    throughput?: ThroughputResult;
    steps: StepResult[];
    maxHeld: number;
    firstFailure?: number;
    skipped?: string;
    applySeconds?: number;
    appWorkerPssMiB?: number;
}

export interface BenchResult {
    /** 2: h2load steps counted per slot, calibration, memory per component. */
    version: 2;
    startedAt: string;
    finishedAt: string;
    command: string;
    /** The program measured (commit, or snapshot). */
    program: string;
    machine: { cpus: number; memTotalMiB: number; kernel: string; loadAvgAtStart: string; otherClouds: string[] };
    options: BenchOptions;
    /** lbCount and lbHosts (the LB that held the address first): absent in results from before the pair. */
    stack: { name: string; set: Record<string, string>; targetConcurrency: number; lbCount?: number; lbHosts?: string[] };
    /** Whether the generated files on the hosts after localUp equalled the renderers' output. */
    generatedMatchedRender?: boolean;
    bytesPerRequestLearned: number;
    calibration?: Calibration;
    /** Connections per second every step ramped at, and where that figure came from. */
    ramp: { rate: number; source: string };
    /** config/rates.ts as the program had it: the model's per-core figures, to compare with the calibration. */
    modelRates: MeasuredRates;
    configs: ConfigResult[];
    targets: TargetVerdict[];
    interrupted?: string;
}

export function isHeld(s: Pick<StepResult, "slots" | "ok" | "concurrency" | "simultaneous" | "aborted" | "skipped">): boolean {
    return !s.aborted && !s.skipped && s.slots.failed === 0 && s.ok === s.concurrency && s.simultaneous;
}

/**
 * Why a step that failed says nothing about the cluster, when the load generators starved the
 * hosts: the CPUs were saturated for at least half the step and the load generators took at
 * least a third of the busy CPU, or the memory guard stopped the step while the load
 * generators held more memory than the hosts had grown by. Undefined otherwise. Pure.
 */
export function starvation(s: Pick<StepResult, "held" | "aborted" | "skipped" | "cpu" | "loadgen">, hostsMemGrowthMiB: number): string | undefined {
    if (s.held || s.skipped) return undefined;
    const pct = (x: number) => `${Math.round(100 * x)}%`;
    if (s.aborted && s.loadgen.peakMemMiB > hostsMemGrowthMiB) {
        return `the load generators held ${Math.round(s.loadgen.peakMemMiB)} MiB, more than the hosts grew by (${Math.round(hostsMemGrowthMiB)} MiB), when memory ran out`;
    }
    if (s.cpu.saturatedShare >= 0.5 && s.cpu.loadgenShareOfBusy >= 1 / 3) {
        return `every CPU was busy for ${pct(s.cpu.saturatedShare)} of the step and the load generators took ${pct(s.cpu.loadgenShareOfBusy)} of it`;
    }
    return undefined;
}

export function maxHeld(steps: StepResult[]): number {
    return Math.max(0, ...steps.filter(s => s.held).map(s => s.concurrency));
}

/** Lowest concurrency that failed (not skipped): the upper end of what a configuration holds. */
export function firstFailure(steps: StepResult[]): number | undefined {
    const failed = steps.filter(s => !s.held && !s.skipped).map(s => s.concurrency);
    return failed.length ? Math.min(...failed) : undefined;
}

/** Rounds to two significant digits (probe sizes that read well: 770, 1300, 56000). */
export function roundProbe(n: number): number {
    if (n < 10) return Math.max(1, Math.round(n));
    const e = 10 ** (Math.floor(Math.log10(n)) - 1);
    return Math.round(n / e) * e;
}

/**
 * The next refinement probe between the highest held and the lowest failed
 * concurrency: the capacity model's prediction when it lies strictly
 * between, else the midpoint (halving when nothing held yet). Undefined when
 * the bracket is too narrow to be worth a probe (within 5%).
 */
export function nextProbe(held: number, failed: number, predicted?: number): number | undefined {
    if (failed <= held + 1 || failed - held < 0.05 * failed) return undefined;
    if (predicted !== undefined) {
        const p = roundProbe(predicted);
        if (p > held && p < failed) return p;
    }
    const mid = held === 0 ? failed / 2 : (held + failed) / 2;
    const probe = roundProbe(mid);
    return probe > held && probe < failed ? probe : undefined;
}

export interface TargetVerdict {
    target: string;
    met: boolean | undefined;
    detail: string;
}

/** Memory per in-flight request the server processes (nginx + gunicorn) may take together (issue 15). */
export const SERVER_MEMORY_TARGET = 32 * 1024;

/** Issues 5 and 15's targets, for the generated configuration. */
export function evaluateTargets(configs: ConfigResult[]): TargetVerdict[] {
    const by = (n: ConfigName) => configs.find(c => c.name === n && !c.skipped);
    const gen = by("generated");
    const out: TargetVerdict[] = [];
    const heldAt = (c: ConfigResult | undefined, n: number) => c?.steps.some(s => s.held && s.concurrency >= n);
    const tried = (c: ConfigResult | undefined, n: number) => c?.steps.some(s => s.concurrency >= n && !s.skipped);
    const hold = (n: number, label: string) => {
        if (!gen || !tried(gen, n)) return out.push({ target: label, met: undefined, detail: `not measured (no step at ${n} or above ran)` });
        return out.push({ target: label, met: !!heldAt(gen, n), detail: `generated held up to ${gen.maxHeld}${gen.firstFailure ? `, first failure at ${gen.firstFailure}` : ""}` });
    };
    hold(50_000, "generated holds 50,000 in flight with 0 errors (must)");
    hold(100_000, "generated holds 100,000 in flight with 0 errors (aim)");
    const others = (["seed", "stock"] as const).map(by).filter((c): c is ConfigResult => !!c);
    if (!gen || others.length === 0) {
        out.push({ target: "generated holds >= 2x what seed and stock hold", met: undefined, detail: "needs generated and seed or stock in the same run" });
    } else {
        const best = Math.max(...others.map(c => c.maxHeld));
        const ok = gen.maxHeld >= 2 * best && gen.maxHeld > 0;
        out.push({
            target: "generated holds >= 2x what seed and stock hold",
            met: ok,
            detail: `generated ${gen.maxHeld} vs ${others.map(c => `${c.name} ${c.maxHeld}`).join(", ")} (${best > 0 ? `${(gen.maxHeld / best).toFixed(1)}x` : "they held no step"})`,
        });
    }
    const largest = gen?.steps.filter(s => s.held && s.memoryPerRequest).sort((a, b) => b.concurrency - a.concurrency)[0];
    const mem = largest?.memoryPerRequest;
    out.push({
        target: `memory per in-flight request on the server side (nginx + gunicorn) <= ${SERVER_MEMORY_TARGET / 1024} KiB`,
        met: mem === undefined ? undefined : mem.lbBytes + mem.appBytes <= SERVER_MEMORY_TARGET,
        detail:
            mem === undefined
                ? "not measured (no held step)"
                : `${((mem.lbBytes + mem.appBytes) / 1024).toFixed(1)} KiB at ${largest!.concurrency} (LB ${(mem.lbBytes / 1024).toFixed(1)}, apps ${(mem.appBytes / 1024).toFixed(1)}; ` +
                  `the servers' sockets add ${(mem.serverKernelBytes / 1024).toFixed(1)} KiB of kernel memory)`,
    });
    const cost = gen?.throughput?.monitoringCost;
    out.push({
        target: `with monitoring on, throughput through the LB stays >= ${MONITORING_COST_TARGET * 100}% of off`,
        met: cost === undefined || cost.offRps.length === 0 ? undefined : cost.ratio >= MONITORING_COST_TARGET,
        detail:
            cost === undefined || cost.offRps.length === 0
                ? "not measured"
                : `${(cost.ratio * 100).toFixed(1)}% (median of ${cost.offRps.length} rounds' on/off, req/s on ${cost.onRps.map(x => x.toFixed(0)).join("/")} vs off ${cost.offRps.map(x => x.toFixed(0)).join("/")}` +
                  (cost.exporterCpuShare !== undefined ? `; the exporters used ${(cost.exporterCpuShare * 100).toFixed(1)}% of the cluster's CPU in the on runs` : "") +
                  (cost.cpuUsPerRequest ? `, cluster CPU per request ${cost.cpuUsPerRequest.on.toFixed(0)} µs on vs ${cost.cpuUsPerRequest.off.toFixed(0)} off` : "") +
                  `; app statsd ${cost.appStatsd ? "on" : "off"})`,
    });
    const added = gen?.throughput?.lbAddedP50Ms;
    out.push({
        target: "the LB adds < 1 ms at p50 at moderate load",
        met: added === undefined ? undefined : added < 1,
        detail: added === undefined ? "not measured" : `p50 through the LB - p50 direct = ${added.toFixed(2)} ms`,
    });
    return out;
}
