import { systemdWord, unitValue } from "./quote";
import { SANDBOX } from "./systemd";

/**
 * How the monitoring services run: systemd drop-ins over the Debian packages'
 * own units (their ExecStart replaced with explicit flags), so the packages'
 * conffiles stay untouched and every flag is visible in one rendered file.
 * Each exporter listens on the node's private address only, never on 0.0.0.0.
 */

export interface Listen {
    address: string;
    port: number;
}

const listenText = (l: Listen) => `${l.address}:${l.port}`;

function argv(words: string[]): string {
    return words.map(systemdWord).join(" ");
}

interface DropInOptions {
    /** The package's own unit this drop-in completes. */
    unit: string;
    execStart: string[];
    /** Extra [Service] lines. */
    service?: string[];
    /** Extra [Unit] lines. */
    unitLines?: string[];
}

/**
 * A drop-in that replaces the package's ExecStart. Bound to a private address, the service waits for
 * the network and keeps retrying (every 5 s, without systemd's start limit) until that address exists.
 */
function dropIn(o: DropInOptions): string {
    return [
        `# ${o.unit}: rendered by pycluster. Change the stack configuration, not this file.`,
        `[Unit]`,
        `After=network-online.target`,
        `Wants=network-online.target`,
        `StartLimitIntervalSec=0`,
        ...(o.unitLines ?? []),
        ``,
        `[Service]`,
        `ExecStart=`,
        `ExecStart=${argv(o.execStart)}`,
        `Restart=always`,
        `RestartSec=5s`,
        ...(o.service ?? []),
        ``,
    ].join("\n");
}

/** prometheus-node-exporter: CPU, memory, disk, network of the node. */
export function renderNodeExporterDropIn(o: { listen: Listen; textfileDir?: string }): string {
    return dropIn({
        unit: "prometheus-node-exporter.service",
        execStart: [
            "/usr/bin/prometheus-node-exporter",
            `--web.listen-address=${listenText(o.listen)}`,
            // Virtual interfaces and container mounts are noise on a dashboard.
            "--collector.netdev.device-exclude=^(lo|veth.*|docker.*)$",
            "--collector.filesystem.mount-points-exclude=^/(dev|proc|run|sys)($|/)",
            // A pair's LB: keepalived's notify writes who holds the address there (hostctl vrrp).
            ...(o.textfileDir ? [`--collector.textfile.directory=${o.textfileDir}`] : []),
        ],
    });
}

/** prometheus-nginx-exporter: nginx's stub_status (connections, requests) as metrics. */
export function renderNginxExporterDropIn(o: { listen: Listen; stubStatusUrl: string }): string {
    return dropIn({
        unit: "prometheus-nginx-exporter.service",
        execStart: [
            "/usr/bin/prometheus-nginx-exporter",
            `-web.listen-address=${listenText(o.listen)}`,
            `-nginx.scrape-uri=${o.stubStatusUrl}`,
            // nginx may start after the exporter: keep trying instead of exiting.
            "-nginx.retries=10",
            "-nginx.retry-interval=5s",
        ],
        unitLines: ["After=nginx.service"],
    });
}

export interface AccessLogExporterOptions {
    /** Where pycluster's access log exporter script is installed. */
    script: string;
    /** nginx's JSON access log. */
    log: string;
    /** The log format's fields in order, and whether each value is quoted (ACCESS_LOG_FIELDS). */
    fields: { name: string; quoted: boolean }[];
    /** HTTP /metrics for Prometheus (the LB's private address). */
    listen: Listen;
    /** Groups whose members may read the log (Debian's nginx logs are www-data:adm 0640). */
    readGroups: string[];
    buckets: number[];
}

/** A unit of our own for one of pycluster's exporter scripts: no privileges, no state, restarted forever. */
function ownExporterUnit(o: { unit: string; description: string; after?: string[]; execStart: string[]; readGroups?: string[]; note?: string }): string {
    return [
        `# ${o.unit}: rendered by pycluster. Change the stack configuration, not this file.`,
        `[Unit]`,
        `Description=${o.description}`,
        `After=${["network-online.target", ...(o.after ?? [])].join(" ")}`,
        `Wants=network-online.target`,
        `StartLimitIntervalSec=0`,
        ``,
        `[Service]`,
        `ExecStart=${argv(o.execStart)}`,
        `Restart=always`,
        `RestartSec=5s`,
        `DynamicUser=yes`,
        ...(o.readGroups?.length ? [`SupplementaryGroups=${unitValue(o.readGroups.join(" "))}`] : []),
        ...SANDBOX,
        ...(o.note ? [`# ${o.note}`] : []),
        `ProtectControlGroups=yes`,
        `RestrictAddressFamilies=AF_INET AF_INET6`,
        `RestrictNamespaces=yes`,
        `SystemCallArchitectures=native`,
        `MemoryMax=128M`,
        ``,
        `[Install]`,
        `WantedBy=multi-user.target`,
        ``,
    ].join("\n");
}

/**
 * pycluster-access-log-exporter: per-request metrics (status, latency, per app node) from the LB's
 * access log, at a seventh of mtail's CPU per line (provisioning/host/access_log_exporter.py).
 */
export function renderAccessLogExporterUnit(o: AccessLogExporterOptions): string {
    const fields = o.fields.map(f => `${f.name}${f.quoted ? ":q" : ""}`).join(",");
    return ownExporterUnit({
        unit: "pycluster-access-log-exporter.service",
        description: "nginx access log metrics for Prometheus (pycluster)",
        after: ["nginx.service"],
        execStart: ["/usr/bin/python3", o.script, "--log", o.log, "--fields", fields, "--listen", listenText(o.listen), "--buckets", o.buckets.join(",")],
        readGroups: o.readGroups,
    });
}

export interface StatsdExporterOptions {
    /** Where pycluster's statsd exporter script is installed. */
    script: string;
    /** UDP, where gunicorn sends statsd (loopback). */
    statsd: Listen;
    /** HTTP /metrics for Prometheus (the node's private address). */
    listen: Listen;
    /** The app: its unit's cgroup gives the worker status; its name labels it. */
    app: string;
}

/**
 * pycluster-statsd-exporter: gunicorn's statsd metrics (workers, requests, durations) as Prometheus
 * metrics. A unit of our own: Debian 12 has no prometheus-statsd-exporter package.
 */
export function renderStatsdExporterUnit(o: StatsdExporterOptions): string {
    return ownExporterUnit({
        unit: "pycluster-statsd-exporter.service",
        description: "gunicorn statsd metrics for Prometheus (pycluster)",
        execStart: ["/usr/bin/python3", o.script, "--statsd", listenText(o.statsd), "--listen", listenText(o.listen), "--unit", `${o.app}.service`, "--app", o.app],
        note: "Reads the app unit's cgroup.procs and /proc/<pid>/stat to count its workers.",
    });
}

export interface PrometheusOptions {
    listen: Listen;
    configFile: string;
    storagePath: string;
    retentionDays: number;
}

/** Prometheus on the monitoring node: its private address, our configuration, a bounded retention. */
export function renderPrometheusDropIn(o: PrometheusOptions): string {
    if (!(o.retentionDays >= 1)) throw new RangeError(`retention must be at least 1 day, got ${o.retentionDays}`);
    return dropIn({
        unit: "prometheus.service",
        execStart: [
            "/usr/bin/prometheus",
            `--config.file=${o.configFile}`,
            `--web.listen-address=${listenText(o.listen)}`,
            `--storage.tsdb.path=${o.storagePath}`,
            `--storage.tsdb.retention.time=${o.retentionDays}d`,
        ],
    });
}
