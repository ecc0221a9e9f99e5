import * as fs from "fs";
import * as path from "path";
import { StackConfig } from "../config/types";
import { BundleFile } from "./render/bundle";
import { renderAccessLogExporterUnit, renderNginxExporterDropIn, renderNodeExporterDropIn, renderPrometheusDropIn, renderStatsdExporterUnit } from "./render/exporters";
import { LATENCY_BUCKETS } from "./render/accessLogMetrics";
import { ACCESS_LOG_FILE, ACCESS_LOG_FIELDS } from "./render/nginxMain";
import { JOBS, renderAlertRules, renderPrometheusConfig, Role, ScrapeTarget } from "./render/prometheus";
import { AGENT, hostPath } from "./hostContract";

/**
 * Monitoring, per role: which Debian packages, which files (hostctl's
 * `monitoring` subcommand maps each name to its place and service) and which
 * endpoint must answer once they are in place. Every exporter listens on its
 * node's private address; the security groups decide who may scrape it.
 */

/** Installed over SSH: adding them to the user data would rebuild every existing VM. */
export const MONITORING_PACKAGES: Record<Role, string[]> = {
    lb: ["prometheus-node-exporter", "prometheus-nginx-exporter"],
    app: ["prometheus-node-exporter"],
    monitoring: ["prometheus", "prometheus-node-exporter"],
};

/** pycluster's own exporters (Python scripts beside hostctl) and the module they share. */
export const HOST_SCRIPTS_DIR = path.join(__dirname, "host");
const scriptTexts = new Map<string, string>();
/** A script of HOST_SCRIPTS_DIR as a bundle file, read once however many hosts get it. */
function hostScript(name: string): BundleFile {
    if (!scriptTexts.has(name)) scriptTexts.set(name, fs.readFileSync(path.join(HOST_SCRIPTS_DIR, name), "utf8"));
    return { name, mode: 0o755, content: scriptTexts.get(name)! };
}
const PROMETHEUS_TEXT = "prometheus_text.py";
export const STATSD_EXPORTER_SCRIPT = `${AGENT.dir}/statsd_exporter.py`;
export const ACCESS_LOG_EXPORTER_SCRIPT = `${AGENT.dir}/access_log_exporter.py`;
/** Where gunicorn sends statsd on an app node (loopback: nothing else may feed it). */
export const statsdAddress = (cfg: StackConfig) => `127.0.0.1:${cfg.monitoring.ports.statsd}`;

export const PROMETHEUS_CONFIG = "/etc/prometheus/pycluster.yml";
export const PROMETHEUS_RULES = "pycluster-alerts.yml";

export interface Endpoint {
    /** The systemd service that answers there. */
    service: string;
    url: string;
}

export interface MonitoringPush {
    files: BundleFile[];
    /** Checked after a change: each must answer 200, or the previous files come back. */
    endpoints: Endpoint[];
}

/** Node names as the components name their hosts. */
export function nodeNames(cfg: StackConfig): { lb: string; apps: string[]; monitoring?: string } {
    const base = `${cfg.project}-${cfg.stack}`;
    return {
        lb: `${base}-lb`,
        apps: cfg.network.appIps.map((_, i) => `${base}-app-${i}`),
        monitoring: cfg.monitoring.node ? `${base}-mon` : undefined,
    };
}

const url = (ip: string, port: number, p = "/metrics") => `http://${ip}:${port}${p}`;

function nodeExporter(ip: string, port: number, textfileDir?: string): MonitoringPush {
    return {
        files: [{ name: "prometheus-node-exporter.conf", mode: 0o644, content: renderNodeExporterDropIn({ listen: { address: ip, port }, textfileDir }) }],
        endpoints: [{ service: "prometheus-node-exporter", url: url(ip, port) }],
    };
}

function merge(...parts: MonitoringPush[]): MonitoringPush {
    return { files: parts.flatMap(p => p.files), endpoints: parts.flatMap(p => p.endpoints) };
}

/** The load balancer: node exporter, nginx exporter (stub_status) and pycluster's access log exporter. */
export function lbMonitoring(cfg: StackConfig, ip: string = cfg.network.lbIp): MonitoringPush {
    const p = cfg.monitoring.ports;
    const textfiles = cfg.network.pair ? hostPath("nodeExporterTextfiles") : undefined;
    return merge(nodeExporter(ip, p.nodeExporter, textfiles), {
        files: [
            {
                name: "prometheus-nginx-exporter.conf",
                mode: 0o644,
                content: renderNginxExporterDropIn({ listen: { address: ip, port: p.nginxExporter }, stubStatusUrl: `http://${ip}:${cfg.lb.statusPort}/stub_status` }),
            },
            hostScript("access_log_exporter.py"),
            hostScript(PROMETHEUS_TEXT),
            {
                name: "pycluster-access-log-exporter.service",
                mode: 0o644,
                content: renderAccessLogExporterUnit({
                    script: ACCESS_LOG_EXPORTER_SCRIPT,
                    log: ACCESS_LOG_FILE,
                    fields: ACCESS_LOG_FIELDS.map(([name, , quoted]) => ({ name, quoted })),
                    listen: { address: ip, port: p.accessLogExporter },
                    // nginx's logs are www-data:adm 0640: the exporter reads them as a member of adm.
                    readGroups: ["adm"],
                    buckets: LATENCY_BUCKETS,
                }),
            },
        ],
        endpoints: [
            { service: "prometheus-nginx-exporter", url: url(ip, p.nginxExporter) },
            { service: "pycluster-access-log-exporter", url: url(ip, p.accessLogExporter) },
        ],
    });
}

/** An app node: node exporter, and gunicorn's statsd turned into metrics by pycluster-statsd-exporter. */
export function appMonitoring(cfg: StackConfig, nodeIp: string): MonitoringPush {
    const p = cfg.monitoring.ports;
    return merge(nodeExporter(nodeIp, p.nodeExporter), {
        files: [
            hostScript("statsd_exporter.py"),
            hostScript(PROMETHEUS_TEXT),
            {
                name: "pycluster-statsd-exporter.service",
                mode: 0o644,
                content: renderStatsdExporterUnit({
                    script: STATSD_EXPORTER_SCRIPT,
                    statsd: { address: "127.0.0.1", port: p.statsd },
                    listen: { address: nodeIp, port: p.statsdExporter },
                    app: cfg.app.name,
                }),
            },
        ],
        endpoints: [{ service: "pycluster-statsd-exporter", url: url(nodeIp, p.statsdExporter) }],
    });
}

/** Every exporter of the stack, as Prometheus scrapes it. */
export function scrapeTargets(cfg: StackConfig): ScrapeTarget[] {
    const p = cfg.monitoring.ports;
    const names = nodeNames(cfg);
    const pair = cfg.network.pair;
    const lbs = [
        { address: cfg.network.lbIp, role: "lb" as const, node: names.lb },
        // The second LB of a pair: names.secondLoadBalancer.
        ...(pair ? [{ address: pair.secondLbIp, role: "lb" as const, node: `${names.lb}-2` }] : []),
    ];
    const apps = cfg.network.appIps.map((address, i) => ({ address, role: "app" as const, node: names.apps[i] }));
    const mon = cfg.monitoring.node ? [{ address: cfg.monitoring.node.ip, role: "monitoring" as const, node: names.monitoring! }] : [];
    return [
        ...[...lbs, ...apps, ...mon].map(n => ({ ...n, job: JOBS.node, port: p.nodeExporter })),
        ...lbs.map(lb => ({ ...lb, job: JOBS.nginx, port: p.nginxExporter })),
        ...lbs.map(lb => ({ ...lb, job: JOBS.lbLog, port: p.accessLogExporter })),
        ...apps.map(n => ({ ...n, job: JOBS.gunicorn, port: p.statsdExporter })),
        ...mon.map(n => ({ ...n, job: JOBS.prometheus, port: p.prometheus })),
    ];
}

/** The monitoring node: Prometheus (its scrape configuration and alert rules) and its own node exporter. */
export function monitoringNodeMonitoring(cfg: StackConfig): MonitoringPush {
    const node = cfg.monitoring.node;
    if (!node) throw new Error("the stack has no monitoring node (monitoringNode is off)");
    const p = cfg.monitoring.ports;
    return merge(nodeExporter(node.ip, p.nodeExporter), {
        files: [
            {
                name: "prometheus.conf",
                mode: 0o644,
                content: renderPrometheusDropIn({
                    listen: { address: node.ip, port: p.prometheus },
                    configFile: PROMETHEUS_CONFIG,
                    storagePath: "/var/lib/prometheus/metrics2/",
                    retentionDays: node.retentionDays,
                }),
            },
            {
                name: "pycluster.yml",
                mode: 0o644,
                content: renderPrometheusConfig({
                    externalLabels: { cluster: `${cfg.project}-${cfg.stack}` },
                    scrapeIntervalSeconds: cfg.monitoring.scrapeIntervalSeconds,
                    targets: scrapeTargets(cfg),
                    ruleFiles: [PROMETHEUS_RULES],
                }),
            },
            {
                name: PROMETHEUS_RULES,
                mode: 0o644,
                content: renderAlertRules({
                    errorRatio: cfg.monitoring.alerts.errorRatio,
                    latencyP95Seconds: cfg.monitoring.alerts.latencyP95Seconds,
                    gunicornWorkers: cfg.gunicorn.workers,
                    scrapeIntervalSeconds: cfg.monitoring.scrapeIntervalSeconds,
                    lbPair: cfg.lb.count === 2,
                }),
            },
        ],
        endpoints: [{ service: "prometheus", url: url(node.ip, p.prometheus, "/-/ready") }],
    });
}

/** Ports each role listens on (kept out of the ephemeral port range). */
export function monitoringPorts(cfg: StackConfig, role: Role): number[] {
    const p = cfg.monitoring.ports;
    return { lb: [p.nodeExporter, p.nginxExporter, p.accessLogExporter], app: [p.nodeExporter, p.statsdExporter, p.statsd], monitoring: [p.nodeExporter, p.prometheus] }[role];
}
