import type { StackConfig } from "../../config/types";
import { pyString } from "./quote";

/** Where gunicorn keeps its workers' heartbeat files: tmpfs on Debian, and inside the unit's sandbox (PrivateDevices keeps /dev/shm). */
export const GUNICORN_WORKER_TMP_DIR = "/dev/shm";

/** The stack's gunicorn settings (config/types.ts), and what the node adds. */
export interface GunicornConfigOptions extends Omit<StackConfig["gunicorn"], "openFiles"> {
    appName: string;
    /** The node's private address: the app is never bound to a public interface. */
    bindAddress: string;
    port: number;
    /** The `current` release symlink; workers chdir to it on every (re)load. */
    appRoot: string;
    /** Addresses allowed to set X-Forwarded-*: the load balancer only. */
    forwardedAllowIps: string[];
    accessLog: boolean;
    gunicornVersion: string;
    /** statsd target for worker metrics (host:port), when monitoring is on. */
    statsdHost?: string;
}

/**
 * gunicorn.conf.py for one app node. Only settings that exist in the
 * gunicorn version the image installs are emitted.
 */
export function renderGunicornConfig(o: GunicornConfigOptions): string {
    if (!(o.workers >= 1)) throw new RangeError(`workers must be >= 1, got ${o.workers}`);
    if (o.keepalive < 1) throw new RangeError(`keepalive must be >= 1, got ${o.keepalive}`);
    const lines = [
        `# gunicorn settings for ${o.appName}, rendered by pycluster for gunicorn ${o.gunicornVersion}.`,
        `# Change the stack configuration, not this file: the next \`pulumi up\` replaces it.`,
        ``,
        `bind = [${pyString(`${o.bindAddress}:${o.port}`)}]`,
        `backlog = ${o.backlog}`,
        `# Workers chdir here when they (re)load, so a HUP picks up the release \`current\` points to.`,
        `chdir = ${pyString(o.appRoot)}`,
        `preload_app = False`,
        ``,
        `worker_class = ${pyString(o.workerClass)}`,
        `workers = ${o.workers}`,
    ];
    if (o.workerConnections !== undefined) {
        lines.push(`# A cap on concurrent requests per gevent worker, the same for any node count; the load balancers give this node its share (max_conns).`);
        lines.push(`worker_connections = ${o.workerConnections}`);
    }
    lines.push(
        `timeout = ${o.timeout}`,
        `graceful_timeout = ${o.gracefulTimeout}`,
        `# Longer than nginx's upstream keepalive_timeout, so nginx closes idle connections first (no 502s).`,
        `keepalive = ${o.keepalive}`,
        `max_requests = ${o.maxRequests}`,
        `max_requests_jitter = ${o.maxRequestsJitter}`,
        ``,
        `forwarded_allow_ips = ${pyString(o.forwardedAllowIps.join(","))}`,
        ``,
        `# Each worker's heartbeat is an fchmod of a file here every second, on the worker's only thread: on a`,
        `# disk-backed /tmp it blocks the worker, and every request it holds, for as long as the disk stalls`,
        `# (gunicorn's docs: worker_tmp_dir). tmpfs never waits for a disk.`,
        `worker_tmp_dir = ${pyString(GUNICORN_WORKER_TMP_DIR)}`,
        ``,
        `proc_name = ${pyString(o.appName)}`,
        `# stdout/stderr go to journald through systemd.`,
        `errorlog = "-"`,
        `loglevel = "info"`,
        `capture_output = True`,
    );
    if (o.accessLog) {
        lines.push(`accesslog = "-"`);
        lines.push(`access_log_format = ${pyString('%(h)s "%(r)s" %(s)s %(b)s %(M)sms')}`);
    } else {
        lines.push(`# The load balancer's JSON access log records every request; no second copy here.`);
        lines.push(`accesslog = None`);
    }
    if (o.statsdHost) {
        lines.push(`statsd_host = ${pyString(o.statsdHost)}`);
        lines.push(`statsd_prefix = ${pyString(o.appName)}`);
    }
    return lines.join("\n") + "\n";
}
