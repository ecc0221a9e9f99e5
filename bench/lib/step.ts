/**
 * One step's result from what its run left: the load generators' summaries and
 * per-request logs, the sampler's summary; a step the memory guard refused; the
 * line the bench prints for a step. Pure: bench/bench.ts runs the step.
 */
import { classifySlots, describeSlots, percentiles, SlotOutcomes, sumSlots } from "./h2load";
import type { FinishedH2load, ProcessPlan } from "./loadgen";
import { MiB } from "./memoryGuard";
import { isHeld, MemoryPerRequest, starvation, StepResult } from "./results";
import type { SampleSummary } from "./sampler";

/** A step's identity: its size, whether it is a step or a refinement, the ramp it was planned at. */
export interface StepId {
    concurrency: number;
    kind: StepResult["kind"];
    rampRate: number;
}

/** Every slot failed: no process ran. */
function noSlots(slots: number): SlotOutcomes {
    return { slots, ok: 0, http5xx: 0, otherStatus: 0, neverConnected: 0, reset: 0, timeout: 0, failed: slots };
}

/** A step that did not run (refused by the memory guard), with why. */
export function skippedStep(id: StepId, skipped: string, notes: string[]): StepResult {
    return {
        ...id,
        holdS: 0,
        processes: 0,
        rampS: 0,
        ok: 0,
        answered: 0,
        sent: 0,
        slots: noSlots(id.concurrency),
        failed: id.concurrency,
        hosts: {},
        appInFlightPeak: 0,
        machine: { minMemAvailableMiB: 0, memDropMiB: 0, busyCores: 0, loadgenCores: 0, foreignCores: 0, otherCloudsCores: 0 },
        loadgen: { peakMemMiB: 0, peakCpuCores: 0, meanCpuCores: 0 },
        cpu: { saturatedShare: 0, loadgenShareOfBusy: 0 },
        simultaneous: false,
        held: false,
        skipped,
        notes,
        wallS: 0,
    };
}

/** What one step's run left behind. */
export interface StepRun {
    holdMs: number;
    rampMs: number;
    plan: ProcessPlan[];
    /** One per process of the plan, in its order. */
    finished: FinishedH2load[];
    /** How long each request answered 2xx took (answeredDurationsUs). */
    answeredUs: number[];
    summary: SampleSummary;
    lbHost: string;
    appHosts: string[];
    /** Each host's lowest memory at the start of a step of this configuration so far (memoryPerRequest). */
    memoryBaselines?: Record<string, number>;
    /** Why the memory guard stopped the load, if it did. */
    aborted?: string;
}

/**
 * The step's result: each slot's outcome, latency beyond the hold, the hosts', the machine's and
 * the load generators' figures, memory per in-flight request, held or not, and whether the load
 * generators starved the hosts. Adds its notes to `notes` (wallS is the caller's). Pure.
 */
/** The baselines after a step: each host's lower of its baseline so far and this step's start. Pure. */
export function lowerBaselines(baselines: Record<string, number> | undefined, s: Pick<SampleSummary, "hosts">): Record<string, number> {
    const next = { ...(baselines ?? {}) };
    for (const [name, h] of Object.entries(s.hosts)) next[name] = Math.min(next[name] ?? Infinity, h.startMemBytes);
    return next;
}

export function stepResult(id: StepId, run: StepRun, notes: string[]): StepResult {
    const { summary, plan, finished, holdMs } = run;
    for (const f of finished.filter(f => f.failure)) notes.push(`${f.label}: ${f.failure}`);
    const perProcess = finished.map((f, i) => (f.result ? classifySlots(f.result) : noSlots(plan[i].connections)));
    const slots = sumSlots(perProcess);
    const results = finished.filter(f => f.result).map(f => f.result!);
    const pct = percentiles(run.answeredUs, [50, 99, 100]);
    const hosts: StepResult["hosts"] = {};
    for (const [name, h] of Object.entries(summary.hosts)) {
        hosts[name] = { peakMemMiB: h.peakMemBytes / MiB, peakCpuCores: h.peakCpuCores, meanCpuCores: h.meanCpuCores, peakTcpInUse: h.peakTcpInUse, peakConntrack: h.peakConntrack };
    }
    const step: StepResult = {
        ...id,
        holdS: holdMs / 1000,
        processes: plan.length,
        rampS: run.rampMs / 1000,
        ok: slots.ok,
        answered: results.reduce((a, r) => a + r.done, 0),
        sent: results.reduce((a, r) => a + r.started, 0),
        slots,
        failed: id.concurrency - slots.ok,
        latency: pct && { p50ExcessMs: pct[0] / 1000 - holdMs, p99ExcessMs: pct[1] / 1000 - holdMs, worstP99ExcessMs: pct[1] / 1000 - holdMs, maxExcessMs: pct[2] / 1000 - holdMs },
        hosts,
        appInFlightPeak: summary.appInFlightPeak,
        machine: {
            minMemAvailableMiB: summary.minMemAvailable / MiB,
            memDropMiB: (summary.memAvailableAtStart - summary.minMemAvailable) / MiB,
            busyCores: summary.meanMachineBusyCores,
            loadgenCores: summary.meanLoadgenCores,
            foreignCores: summary.meanForeignCores,
            otherCloudsCores: summary.meanOtherCloudsCores,
        },
        loadgen: { peakMemMiB: summary.loadgen.peakMemBytes / MiB, peakCpuCores: summary.loadgen.peakCpuCores, meanCpuCores: summary.meanLoadgenCores },
        cpu: { saturatedShare: summary.saturatedShare, loadgenShareOfBusy: summary.loadgenShareOfBusy },
        memoryPerRequest: memoryPerRequest(summary, run.lbHost, run.appHosts, run.memoryBaselines),
        simultaneous: summary.appInFlightPeak >= 0.98 * id.concurrency,
        held: false,
        aborted: run.aborted,
        notes,
        wallS: 0,
        generators: finished.map((f, i) => ({
            netns: f.netns,
            connections: plan[i].connections,
            rate: plan[i].rate,
            slots: f.result ? perProcess[i] : undefined,
            connectMeanMs: f.result?.connectUs ? f.result.connectUs.mean / 1000 : undefined,
            failure: f.failure,
        })),
        timeline: summary.timeline,
    };
    step.held = isHeld(step);
    const hostsGrowthMiB = Object.values(summary.hosts).reduce((a, h) => a + h.peakMemBytes - h.startMemBytes, 0) / MiB;
    step.starvedBy = starvation(step, hostsGrowthMiB);
    if (summary.meanForeignCores > 0.5) {
        notes.push(`CPU used outside the bench's hosts and load generators during the step: ${summary.meanForeignCores.toFixed(2)} cores on average (other local clouds: ${summary.meanOtherCloudsCores.toFixed(2)})`);
    }
    if (step.starvedBy) notes.push(`not a measurement of the cluster: the load generators starved the hosts (${step.starvedBy})`);
    return step;
}

const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;

/** The line the bench prints when a step ends, with its notes. */
export function stepLine(step: StepResult): string {
    const m = step.memoryPerRequest;
    return (
        `  ${step.concurrency}: ${step.held ? "HELD" : step.aborted ? "ABORTED" : "FAILED"} - ok ${step.ok}/${step.concurrency}, failed slots: ${describeSlots(step.slots)}, ` +
        `p50/p99 beyond hold ${step.latency ? `${step.latency.p50ExcessMs.toFixed(0)}/${step.latency.p99ExcessMs.toFixed(0)} ms` : "-"}, ` +
        `at apps ${step.appInFlightPeak}, machine memory used ${step.machine.memDropMiB.toFixed(0)} MiB, ` +
        `load generators ${step.loadgen.peakMemMiB.toFixed(0)} MiB / ${step.loadgen.meanCpuCores.toFixed(2)} cores, ` +
        (m ? `per request: LB ${kib(m.lbBytes)}, app ${kib(m.appBytes)}, kernel ${kib(m.serverKernelBytes)} (server side), clients ${kib(m.loadgenBytes)}, ` : "") +
        `${step.wallS.toFixed(0)} s` +
        (step.notes.length ? `\n    ${step.notes.join("\n    ")}` : "")
    );
}

/**
 * Memory per in-flight request by component: each one's growth over the requests in flight at the
 * apps' peak; undefined under 100 in flight (too few to divide by). The servers hold three sockets
 * per request: client and upstream on the LB, one on an app node. Pure.
 *
 * Growth is measured from `baselines` (each host's lowest memory at the start of any step of this
 * configuration so far) when given, else from the step's start. gunicorn's workers are not
 * restarted between held steps and keep what Python's allocator freed, which the next step reuses:
 * from the step's own start, an app node's share fell from 14.3 KiB at 10,000 to 7.6 KiB at
 * 100,000 in one run, where a fresh worker takes 15 KiB (`npm run bench:memory`).
 */
export function memoryPerRequest(
    s: Pick<SampleSummary, "appInFlightPeak" | "hosts" | "kernel" | "loadgen">,
    lbHost: string,
    appHosts: string[],
    baselines: Record<string, number> = {},
): MemoryPerRequest | undefined {
    const inFlight = s.appInFlightPeak;
    if (inFlight < 100) return undefined;
    const from = (n: string) => Math.min(baselines[n] ?? Infinity, s.hosts[n]?.startMemBytes ?? 0);
    const growth = (names: string[]) => names.reduce((a, n) => a + Math.max(0, (s.hosts[n]?.peakMemBytes ?? 0) - from(n)), 0);
    const sockets = Math.max(1, s.kernel.peakSockets - s.kernel.startSockets);
    const perSocket = Math.max(0, s.kernel.peakBytes - s.kernel.startBytes) / sockets;
    return {
        inFlight,
        lbBytes: growth([lbHost]) / inFlight,
        appBytes: growth(appHosts) / inFlight,
        kernelPerSocketBytes: perSocket,
        serverKernelBytes: 3 * perSocket,
        loadgenBytes: s.loadgen.peakMemBytes / inFlight + perSocket,
    };
}
