import { stringify } from "yaml";
import { LB_LOG_METRICS } from "./accessLogMetrics";

/**
 * Prometheus on the monitoring node: what it scrapes (every exporter on every
 * node, by private address) and the alert rules it evaluates. Both files are
 * validated with promtool on the host before they replace the running ones.
 */

/** gunicorn metrics of pycluster-statsd-exporter (provisioning/host/statsd_exporter.py). */
export const GUNICORN_METRICS = {
    /** From the app unit's cgroup at each scrape: the master runs (1) or not (0). */
    up: "gunicorn_up",
    /** From the app unit's cgroup: the master's worker processes. */
    workers: "gunicorn_workers",
    requests: "gunicorn_requests_total",
    responses: "gunicorn_responses_total",
    requestDuration: "gunicorn_request_duration_seconds",
    logMessages: "gunicorn_log_messages_total",
} as const;

/**
 * Metrics of Debian's exporters that the dashboard and the alert rules use (prometheus-node-exporter
 * 1.5, prometheus-nginx-exporter 0.11); the end-to-end test checks each is really scraped.
 */
export const DEBIAN_EXPORTER_METRICS = [
    "node_cpu_seconds_total",
    "node_memory_MemAvailable_bytes",
    "node_memory_MemTotal_bytes",
    "node_network_receive_bytes_total",
    "node_network_transmit_bytes_total",
    "node_load1",
    "node_netstat_Tcp_CurrEstab",
    "nginx_up",
    "nginx_http_requests_total",
    "nginx_connections_active",
    "nginx_connections_reading",
    "nginx_connections_writing",
    "nginx_connections_waiting",
] as const;

/** Every series name our exporters and Prometheus itself produce that a query may use. */
export function knownMetricNames(): Set<string> {
    const histogram = (n: string) => [`${n}_bucket`, `${n}_sum`, `${n}_count`];
    const lb = LB_LOG_METRICS;
    const g = GUNICORN_METRICS;
    return new Set([
        // Prometheus: one per target, and the alerts it evaluates.
        "up",
        "ALERTS",
        ...DEBIAN_EXPORTER_METRICS,
        lb.responses,
        lb.upstreamResponses,
        ...histogram(lb.requestDuration),
        ...histogram(lb.upstreamDuration),
        g.up,
        g.workers,
        g.requests,
        g.responses,
        g.logMessages,
        ...histogram(g.requestDuration),
    ]);
}

/** Scrape jobs: one per kind of exporter. */
export const JOBS = {
    node: "node",
    nginx: "nginx",
    lbLog: "lb_log",
    gunicorn: "gunicorn",
    prometheus: "prometheus",
} as const;
export type Job = (typeof JOBS)[keyof typeof JOBS];

export type Role = "lb" | "app" | "monitoring";

export interface ScrapeTarget {
    job: Job;
    address: string;
    port: number;
    role: Role;
    /** The node's name, e.g. pycluster-prod-app-0: every series carries it. */
    node: string;
}

export interface PrometheusConfigOptions {
    /** Labels every series and alert carries, e.g. the stack. */
    externalLabels: Record<string, string>;
    scrapeIntervalSeconds: number;
    targets: ScrapeTarget[];
    /** Relative to the configuration file's directory (so a staged copy validates as it will run). */
    ruleFiles: string[];
}

export function renderPrometheusConfig(o: PrometheusConfigOptions): string {
    if (o.targets.length === 0) throw new Error("Prometheus needs at least one target");
    const interval = `${o.scrapeIntervalSeconds}s`;
    const jobs = [...new Set(o.targets.map(t => t.job))];
    const doc = {
        global: {
            scrape_interval: interval,
            evaluation_interval: interval,
            scrape_timeout: `${Math.max(1, Math.min(10, o.scrapeIntervalSeconds))}s`,
            external_labels: o.externalLabels,
        },
        rule_files: o.ruleFiles,
        scrape_configs: jobs.map(job => ({
            job_name: job,
            static_configs: o.targets
                .filter(t => t.job === job)
                .map(t => ({ targets: [`${t.address}:${t.port}`], labels: { role: t.role, node: t.node } })),
        })),
    };
    return "# Prometheus configuration, rendered by pycluster. Change the stack configuration, not this file.\n" + stringify(doc, { lineWidth: 0 });
}

export interface AlertRulesOptions {
    /** 5xx share of responses (0-1) that fires the error-rate alerts. */
    errorRatio: number;
    /** 95th percentile of the app nodes' response time, seconds. */
    latencyP95Seconds: number;
    /** Workers each app node runs: fewer for a while fires an alert. */
    gunicornWorkers: number;
    /** Windows are at least four scrapes long, so a rate always has samples. */
    scrapeIntervalSeconds: number;
    /** A pair of load balancers (lbCount 2): alerts on who holds the public address. */
    lbPair?: boolean;
}

export interface AlertRule {
    alert: string;
    expr: string;
    for: string;
    labels: { severity: "critical" | "warning" };
    annotations: { summary: string; description: string };
}

const duration = (seconds: number) => (seconds % 60 === 0 ? `${seconds / 60}m` : `${seconds}s`);

/** The alert rules: nodes and exporters down, 5xx rates, upstream latency, gunicorn workers. */
// Long on purpose (~84 lines): it is data, one rule object per alert, read and reviewed as one list.
export function alertRules(o: AlertRulesOptions): AlertRule[] {
    if (!(o.errorRatio > 0 && o.errorRatio <= 1)) throw new RangeError(`errorRatio must be in (0, 1], got ${o.errorRatio}`);
    if (!(o.latencyP95Seconds > 0)) throw new RangeError(`latencyP95Seconds must be > 0, got ${o.latencyP95Seconds}`);
    if (!(o.gunicornWorkers >= 1)) throw new RangeError(`gunicornWorkers must be >= 1, got ${o.gunicornWorkers}`);
    const atLeast = (seconds: number, scrapes: number) => duration(Math.max(seconds, scrapes * o.scrapeIntervalSeconds));
    const w5 = atLeast(300, 4);
    const lb = LB_LOG_METRICS;
    const g = GUNICORN_METRICS;
    const percent = `${+(o.errorRatio * 100).toFixed(2)}%`;
    return [
        {
            alert: "NodeDown",
            expr: `up == 0`,
            for: atLeast(60, 2),
            labels: { severity: "critical" },
            annotations: {
                summary: "{{ $labels.node }}: {{ $labels.job }} exporter unreachable",
                description: "Prometheus cannot scrape {{ $labels.instance }} ({{ $labels.job }} on the {{ $labels.role }} node {{ $labels.node }}): the node or its exporter is down.",
            },
        },
        {
            alert: "NginxDown",
            expr: `nginx_up == 0`,
            for: atLeast(60, 2),
            labels: { severity: "critical" },
            annotations: {
                summary: "{{ $labels.node }}: nginx does not answer its status page",
                description: "prometheus-nginx-exporter on {{ $labels.node }} cannot read nginx's stub_status: nginx is down or its private status listener is gone.",
            },
        },
        {
            alert: "HighErrorRate",
            expr: `sum(rate(${lb.responses}{status=~"5.."}[${w5}])) / sum(rate(${lb.responses}[${w5}])) > ${o.errorRatio}`,
            for: "5m",
            labels: { severity: "critical" },
            annotations: {
                summary: `More than ${percent} of responses are 5xx`,
                description: "{{ $value | humanizePercentage }} of the load balancer's responses are server errors.",
            },
        },
        {
            alert: "AppNodeErrorRate",
            expr:
                `sum by (upstream) (rate(${lb.upstreamResponses}{upstream_status=~"5.."}[${w5}])) / ` +
                `sum by (upstream) (rate(${lb.upstreamResponses}[${w5}])) > ${o.errorRatio}`,
            for: "5m",
            labels: { severity: "warning" },
            annotations: {
                summary: `App node {{ $labels.upstream }}: more than ${percent} of its answers are 5xx`,
                description: "{{ $value | humanizePercentage }} of what nginx got from {{ $labels.upstream }} were server errors (nginx may have retried them elsewhere).",
            },
        },
        {
            alert: "UpstreamLatencyHigh",
            expr: `histogram_quantile(0.95, sum by (le) (rate(${lb.upstreamDuration}_bucket[${w5}]))) > ${o.latencyP95Seconds}`,
            for: "10m",
            labels: { severity: "warning" },
            annotations: {
                summary: `95th percentile of the app nodes' response time above ${o.latencyP95Seconds} s`,
                description: "nginx waits {{ $value | humanizeDuration }} or more for 5% of the app nodes' responses.",
            },
        },
        {
            alert: "GunicornDown",
            expr: `${g.up} == 0`,
            for: atLeast(60, 2),
            labels: { severity: "critical" },
            annotations: {
                summary: "{{ $labels.node }}: gunicorn is not running",
                description: "The app's gunicorn master on {{ $labels.node }} is not running (its unit has no master process): the node serves nothing.",
            },
        },
        {
            alert: "GunicornWorkersLow",
            expr: `${g.workers} < ${o.gunicornWorkers} and on (instance) ${g.up} == 1`,
            for: atLeast(120, 4),
            labels: { severity: "warning" },
            annotations: {
                summary: `{{ $labels.node }}: {{ $value }} gunicorn workers instead of ${o.gunicornWorkers}`,
                description: "The gunicorn master on {{ $labels.node }} runs fewer workers than configured: workers keep crashing or cannot start.",
            },
        },
    ];
}

/** The node exporter textfile metric each LB of a pair writes from keepalived's notify (hostctl vrrp). */
export const VIP_HELD_METRIC = "pycluster_lb_vip_held";

/**
 * A pair's alerts: nobody holds the public address (both LBs FAULT or down: every request fails),
 * or both claim it (split brain: VRRP between them is cut; the router sends to whichever answered ARP last).
 */
export function lbPairAlertRules(o: Pick<AlertRulesOptions, "scrapeIntervalSeconds">): AlertRule[] {
    const wait = duration(Math.max(30, 2 * o.scrapeIntervalSeconds));
    return [
        {
            alert: "LbAddressUnheld",
            expr: `(sum(${VIP_HELD_METRIC}) or vector(0)) < 1`,
            for: wait,
            labels: { severity: "critical" },
            annotations: {
                summary: "no load balancer holds the public address",
                description: "Neither LB of the pair reports holding the virtual address (both unhealthy, FAULT or down): the public address answers nothing.",
            },
        },
        {
            alert: "LbSplitBrain",
            expr: `sum(${VIP_HELD_METRIC}) > 1`,
            for: wait,
            labels: { severity: "critical" },
            annotations: {
                summary: "both load balancers claim the public address ({{ $value }} holders)",
                description: "Both LBs of the pair are VRRP MASTER: they no longer hear each other (VRRP between them cut). Requests go to whichever answered ARP last.",
            },
        },
    ];
}

export function renderAlertRules(o: AlertRulesOptions): string {
    const doc = { groups: [{ name: "pycluster", rules: [...alertRules(o), ...(o.lbPair ? lbPairAlertRules(o) : [])] }] };
    return "# Alert rules, rendered by pycluster. Change the stack configuration, not this file.\n" + stringify(doc, { lineWidth: 0 });
}
