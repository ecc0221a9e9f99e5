/**
 * What monitoring costs the cluster (issue 14): closed-loop throughput through the LB with every
 * exporter stopped and running, on the same hosts in the same run. "On" is what a stack runs: node
 * and nginx exporters, pycluster-access-log-exporter over the access log, the app nodes' exporter (and gunicorn's statsd
 * only where monitoringAppStatsd is set). Nothing scrapes them meanwhile: a scrape every 15 s is no
 * per-request work.
 *
 * Single 10 s runs on a shared 2-vCPU machine vary by ±20% (2026-12-03: 4,165 to 6,576 req/s off,
 * in one run), more than the cost being measured. So each round measures off and on back to back
 * and the verdict is the median of the rounds' on/off ratios, the order alternating between
 * rounds so that a machine speeding up or slowing down favours neither side. Beside it, the CPU
 * the exporters' own units used in the on runs, as a share of all the cluster's hosts used: a
 * figure the machine's speed does not move, which says what the throughput ratio should show.
 */
import { lbMonitoring, appMonitoring } from "../../provisioning/monitoringFiles";
import type { StackConfig } from "../../config/types";

/** On with monitoring keeps at least this share of the throughput off. */
export const MONITORING_COST_TARGET = 0.95;

export interface MonitoringCost {
    /** req/s through the LB per round, exporters stopped. */
    offRps: number[];
    /** req/s through the LB per round, exporters running. */
    onRps: number[];
    /** Whether each round ran on first (rounds alternate). */
    onFirst?: boolean[];
    /** on/off of each round. */
    roundRatios?: number[];
    /** The verdict's figure: the median of roundRatios. */
    ratio: number;
    /** CPU time the exporters' units used in the on runs, over all the cluster's hosts used then. */
    exporterCpuShare?: number;
    /** CPU time of all the cluster's hosts per request served, microseconds, off and on. */
    cpuUsPerRequest?: { off: number; on: number };
    appStatsd: boolean;
}

/** The exporter units of each role, as the stack deploys them. */
export function exporterUnits(cfg: StackConfig): { lb: string[]; app: string[] } {
    const services = (endpoints: { service: string }[]) => [...new Set(endpoints.map(e => e.service))];
    return { lb: services(lbMonitoring(cfg).endpoints), app: services(appMonitoring(cfg, cfg.network.appIps[0]).endpoints) };
}

export const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length === 0 ? 0 : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** One closed-loop run: what it served, and the CPU counters (cumulative, microseconds) around it. */
export interface CostRun {
    requestsPerSecond: number;
    requests: number;
    cpu?: { exportersUsec: number; clusterUsec: number };
}

/** One round's on/off throughput (0 when the off run served nothing). */
const roundRatio = (off: CostRun, on: CostRun) => (off.requestsPerSecond > 0 ? on.requestsPerSecond / off.requestsPerSecond : 0);

/** The exporters' share of the cluster's CPU during one run, when the CPU was read. */
const exporterShare = (r: CostRun) => (r.cpu ? r.cpu.exportersUsec / Math.max(1, r.cpu.clusterUsec) : undefined);

export function monitoringCost(off: CostRun[], on: CostRun[], onFirst: boolean[], appStatsd: boolean): MonitoringCost {
    const roundRatios = off.map((o, i) => roundRatio(o, on[i]));
    const withCpu = (runs: CostRun[]) => runs.every(r => r.cpu !== undefined) && runs.length > 0;
    const sum = (runs: CostRun[], f: (r: CostRun) => number) => runs.reduce((a, r) => a + f(r), 0);
    const cpu =
        withCpu(off) && withCpu(on)
            ? {
                  exporterCpuShare: sum(on, r => r.cpu!.exportersUsec) / Math.max(1, sum(on, r => r.cpu!.clusterUsec)),
                  cpuUsPerRequest: {
                      off: sum(off, r => r.cpu!.clusterUsec) / Math.max(1, sum(off, r => r.requests)),
                      on: sum(on, r => r.cpu!.clusterUsec) / Math.max(1, sum(on, r => r.requests)),
                  },
              }
            : {};
    return {
        offRps: off.map(r => r.requestsPerSecond),
        onRps: on.map(r => r.requestsPerSecond),
        onFirst,
        roundRatios,
        ratio: median(roundRatios),
        ...cpu,
        appStatsd,
    };
}

/**
 * `rounds` pairs of closed-loop runs from `measure`, off then on in even rounds and on then off in
 * odd ones; `cpu` (if given) reads the CPU counters around each run, `beforeRound` may wait for a
 * quiet machine. The exporters are left running whatever happens.
 */
export async function measureMonitoringCost(o: {
    rounds: number;
    appStatsd: boolean;
    measure: () => Promise<{ requestsPerSecond: number; requests: number }>;
    cpu?: () => { exportersUsec: number; clusterUsec: number };
    setExporters: (running: boolean) => Promise<void>;
    beforeRound?: () => Promise<void>;
    log: (line: string) => void;
}): Promise<MonitoringCost> {
    const off: CostRun[] = [];
    const on: CostRun[] = [];
    const onFirst: boolean[] = [];
    const run = async (running: boolean) => {
        await o.setExporters(running);
        const c0 = o.cpu?.();
        const r = await o.measure();
        const c1 = o.cpu?.();
        const cpu = c0 && c1 ? { exportersUsec: c1.exportersUsec - c0.exportersUsec, clusterUsec: c1.clusterUsec - c0.clusterUsec } : undefined;
        (running ? on : off).push({ ...r, cpu });
    };
    try {
        for (let i = 0; i < o.rounds; i++) {
            await o.beforeRound?.();
            const first = i % 2 === 1;
            onFirst.push(first);
            await run(first);
            await run(!first);
            const share = exporterShare(on[i]);
            const order = first ? "on first" : "off first";
            o.log(
                `  monitoring cost, round ${i + 1} (${order}): ${off[i].requestsPerSecond.toFixed(0)} req/s off, ` +
                    `${on[i].requestsPerSecond.toFixed(0)} req/s on (${(100 * roundRatio(off[i], on[i])).toFixed(1)}%)` +
                    (share === undefined ? "" : `, exporters ${(100 * share).toFixed(1)}% of the cluster's CPU`),
            );
        }
    } finally {
        await o.setExporters(true);
    }
    return monitoringCost(off, on, onFirst, o.appStatsd);
}
