/**
 * The calibration: this machine's rates with the bench's own clients against
 * the cluster (issue 15): new TLS connections with every CPU busy, requests on
 * kept-alive connections through the load balancer, requests straight to one
 * app node; the CPU of the LB, the app nodes and the load generators over each
 * run, so per-core rates in config/rates.ts's terms. The steps ramp at a share
 * of the handshake rate (rampPlan). bench/bench.ts runs it once per bench.
 */
import * as os from "os";
import { finishH2load, LOADGEN_CGROUP, startH2load } from "./loadgen";
import type { Calibration, CalibrationRun } from "./results";
import { cgroupCpuUsec, cgroupsCpuUsec, HostRef, readMachineCpu } from "./sampler";

/** What a calibration runs against and with: the cluster's hosts, its URLs, the client namespaces. */
export interface CalibrationTarget {
    hosts: HostRef[];
    lbHost: string;
    appHosts: string[];
    /** https://<LB>/ */
    lbUrl: string;
    /** http://<one app node>:<port>/ (reached from the LB's namespace: app nodes are private). */
    directUrl: string;
    clientNetns: string[];
    lbNetns: string;
    /** Seconds each run is sized to last (--calibrate). */
    seconds: number;
    /** Waits for the machine to quiet down before each run. */
    waitQuiet: () => Promise<unknown>;
    /** Throws when the bench was interrupted. */
    checkInterrupted: () => void;
    log: (line: string) => void;
}

/** CPU time so far: the load balancer, the app nodes, the load generators (us), and the machine's busy ticks. */
function cpuNow(t: CalibrationTarget): { lb: number; apps: number; loadgen: number; busy: number; at: number } {
    const of = (names: string[]) => cgroupsCpuUsec(t.hosts.filter(h => names.includes(h.name)).map(h => h.cgroup));
    return { lb: of([t.lbHost]), apps: of(t.appHosts), loadgen: cgroupCpuUsec(LOADGEN_CGROUP) ?? 0, busy: readMachineCpu().busy, at: Date.now() };
}

/**
 * One calibration run: h2load processes at once (closed loop, `clients` connections each), the
 * CPU of each part measured over the run. "handshakes" sends `Connection: close`, so every
 * request opens a new TLS connection.
 */
async function calibrationRun(t: CalibrationTarget, kind: CalibrationRun["kind"], url: string, netns: string[], clients: number, requestsEach: number): Promise<CalibrationRun> {
    const before = cpuNow(t);
    const run = await closedLoop(kind, url, netns, clients, requestsEach);
    const after = cpuNow(t);
    const s = (after.at - before.at) / 1000;
    return {
        kind,
        target: url,
        connections: clients * netns.length,
        requests: run.requests,
        seconds: s,
        perSecond: run.ok / s,
        ok: run.ok,
        failed: run.requests - run.ok,
        lbCores: (after.lb - before.lb) / 1e6 / s,
        appCores: (after.apps - before.apps) / 1e6 / s,
        loadgenCores: (after.loadgen - before.loadgen) / 1e6 / s,
        busyCores: (after.busy - before.busy) / 100 / s,
    };
}

/**
 * One h2load process per namespace at once, closed loop, `clients` connections each; "handshakes"
 * sends `Connection: close`, so every request opens a new TLS connection. How many were answered
 * 2xx of how many sent, and the rate of those answered.
 */
export async function closedLoop(kind: CalibrationRun["kind"], url: string, netns: string[], clients: number, requestsEach: number): Promise<{ ok: number; requests: number; seconds: number; perSecond: number }> {
    const headers = kind === "handshakes" ? ["Connection: close"] : [];
    const started = Date.now();
    const finished = await Promise.all(netns.map((ns, i) => finishH2load(startH2load(`calibrate-${kind}-${i}`, ns, { url, clients, requests: requestsEach, headers }))));
    const seconds = (Date.now() - started) / 1000;
    const failedToRun = finished.filter(f => !f.result);
    if (failedToRun.length) throw new Error(`calibration (${kind}): ${failedToRun.map(f => f.failure).join("; ")}`);
    const ok = finished.reduce((a, f) => a + f.result!.status["2xx"], 0);
    return { ok, requests: finished.reduce((a, f) => a + f.result!.total, 0), seconds, perSecond: ok / seconds };
}

/**
 * This machine's rates: new TLS connections with every CPU busy (what the steps ramp at a share
 * of), and per core of each part. Each kind runs twice: a short probe to learn the rate, then a
 * run sized to last `seconds`.
 */
export async function calibrate(t: CalibrationTarget): Promise<Calibration> {
    const kinds: [CalibrationRun["kind"], string, string[], number][] = [
        ["handshakes", t.lbUrl, t.clientNetns.slice(0, 4), 16],
        ["keepalive", t.lbUrl, t.clientNetns.slice(0, 4), 16],
        // From the LB's namespace (app nodes are private), in the load generators' cgroup.
        ["direct", t.directUrl, [t.lbNetns], 64],
    ];
    const runs: CalibrationRun[] = [];
    for (const [kind, url, netns, clients] of kinds) {
        t.checkInterrupted();
        await t.waitQuiet();
        // The probe grows with --calibrate: short for --quick, long enough to learn the rate otherwise.
        const probeEach = clients * Math.max(10, Math.round(20 * t.seconds));
        const probe = await calibrationRun(t, kind, url, netns, clients, probeEach);
        const each = Math.max(probeEach, Math.round((probe.perSecond * t.seconds) / netns.length));
        const run = await calibrationRun(t, kind, url, netns, clients, each);
        runs.push(run);
        t.log(
            `  calibration ${kind.padEnd(10)}: ${run.perSecond.toFixed(0)}/s (${run.ok} of ${run.requests} ok in ${run.seconds.toFixed(1)} s); cores: LB ${run.lbCores.toFixed(2)}, ` +
                `apps ${run.appCores.toFixed(2)}, load generators ${run.loadgenCores.toFixed(2)}, machine ${run.busyCores.toFixed(2)} of ${os.cpus().length}`,
        );
        if (run.failed > 0) t.log(`  calibration ${kind}: ${run.failed} requests were not answered 2xx: its figures are not this machine's rate`);
    }
    const [hs, ka, direct] = runs;
    return {
        runs,
        machineHandshakesPerSecond: hs.perSecond,
        perCore: {
            tlsHandshakesPerLbCore: Math.round(hs.perSecond / hs.lbCores),
            proxiedRequestsPerLbCore: Math.round(ka.perSecond / ka.lbCores),
            sampleAppRequestsPerCore: Math.round(direct.perSecond / direct.appCores),
        },
        loadgenCoreSecondsPerHandshake: hs.loadgenCores / hs.perSecond,
    };
}

/**
 * The rate every step opens connections at: --ramp-rate, else --ramp-share of the handshakes the
 * calibration measured, rounded down to 10/s (a rate that reads well, never above the share asked
 * for). Pure.
 */
export function rampPlan(o: { rampRate?: number; rampShare: number }, cal: Pick<Calibration, "machineHandshakesPerSecond"> | undefined): { rate: number; source: string } {
    if (o.rampRate !== undefined) return { rate: o.rampRate, source: "--ramp-rate" };
    if (!cal) throw new Error("no calibration and no --ramp-rate: the steps have no rate to ramp at");
    return {
        rate: Math.max(10, Math.floor((o.rampShare * cal.machineHandshakesPerSecond) / 10) * 10),
        source: `${o.rampShare} x the ${cal.machineHandshakesPerSecond.toFixed(0)} new TLS connections/s this machine completed in the calibration`,
    };
}
