/** The exporters every node runs, the optional Prometheus node, and the alert thresholds. */
import { MONITORING_PORTS } from "./ports";
import type { Reader } from "./reader";
import type { MonitoringSettings } from "./types";

/** `nodeIp`: the monitoring node's address (when monitoringNode is on and the network plan exists). */
export function readMonitoring(r: Reader, o: { monitoringNode: boolean; nodeIp?: string; proxyReadTimeout: number }): MonitoringSettings {
    const flavor = r.string("monitoringFlavor").trim();
    const retentionDays = r.integer("monitoringRetentionDays", 1, 3650);
    const scrapeIntervalSeconds = r.integer("monitoringScrapeInterval", 1, 300);
    const appStatsd = r.boolean("monitoringAppStatsd");
    const errorRatePercent = r.integer("alertErrorRatePercent", 1, 100);
    const latencyP95Ms = r.integer("alertLatencyP95Ms", 1, 600_000);
    if (o.monitoringNode && !/^[a-z0-9][a-z0-9.-]*$/.test(flavor)) {
        r.fail("monitoringFlavor", flavor, "must be an OVH flavor name such as d2-4 or b3-8 (the monitoring node runs Prometheus)");
    }
    if (latencyP95Ms > o.proxyReadTimeout * 1000) {
        r.fail(
            "alertLatencyP95Ms",
            latencyP95Ms,
            `is longer than proxyReadTimeout (${o.proxyReadTimeout} s): nginx gives up on a request before the alert could fire; use at most ${o.proxyReadTimeout * 1000}`,
        );
    }
    return {
        ports: MONITORING_PORTS,
        scrapeIntervalSeconds,
        appStatsd,
        alerts: { errorRatio: errorRatePercent / 100, latencyP95Seconds: latencyP95Ms / 1000 },
        node: o.monitoringNode && o.nodeIp ? { flavor, ip: o.nodeIp, retentionDays } : undefined,
    };
}
