/**
 * What monitoring costs the cluster (issue 14): closed-loop throughput through the LB with every
 * exporter stopped and running, alternated on the same hosts in the same run so that drift in the
 * machine's speed hits both sides alike. "On" is what a stack runs: node and nginx exporters,
 * mtail over the access log, the app nodes' exporter (and gunicorn's statsd only where
 * monitoringAppStatsd is set). Nothing scrapes them meanwhile: a scrape every 15 s is no
 * per-request work.
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
    /** median(on) / median(off). */
    ratio: number;
    appStatsd: boolean;
}

/** The exporter units of each role, as the stack deploys them. */
export function exporterUnits(cfg: StackConfig): { lb: string[]; app: string[] } {
    const services = (endpoints: { service: string }[]) => [...new Set(endpoints.map(e => e.service))];
    return { lb: services(lbMonitoring(cfg).endpoints), app: services(appMonitoring(cfg, cfg.network.appIps[0]).endpoints) };
}

const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export function monitoringCost(offRps: number[], onRps: number[], appStatsd: boolean): MonitoringCost {
    const off = median(offRps);
    return { offRps, onRps, ratio: off > 0 ? median(onRps) / off : 0, appStatsd };
}

/**
 * `rounds` pairs, off then on, each a closed-loop run from `measure`; the exporters are left
 * running whatever happens.
 */
export async function measureMonitoringCost(o: {
    rounds: number;
    appStatsd: boolean;
    measure: () => Promise<number>;
    setExporters: (running: boolean) => Promise<void>;
    log: (line: string) => void;
}): Promise<MonitoringCost> {
    const offRps: number[] = [];
    const onRps: number[] = [];
    try {
        for (let i = 0; i < o.rounds; i++) {
            await o.setExporters(false);
            offRps.push(await o.measure());
            await o.setExporters(true);
            onRps.push(await o.measure());
            o.log(`  monitoring cost, round ${i + 1}: ${offRps[i].toFixed(0)} req/s off, ${onRps[i].toFixed(0)} req/s on`);
        }
    } finally {
        await o.setExporters(true);
    }
    return monitoringCost(offRps, onRps, o.appStatsd);
}
