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

/** Where the workers of a generation record that one of them asked for the reload that recycles them. */
export const recycleStampPath = (appName: string) => `${GUNICORN_WORKER_TMP_DIR}/${appName}.recycle`;

/** Worker classes whose workers call gunicorn's post_request hook (gunicorn's own async workers do; uvicorn's does not). */
const callsPostRequest = (workerClass: string) => ["gevent", "eventlet", "gthread", "sync"].includes(workerClass) || workerClass.startsWith("gunicorn.workers.");

/**
 * Recycling workers after about maxRequests requests each (0 = never). gunicorn's own max_requests
 * makes a worker stop accepting at once and then wait for its idle keep-alive connections (the load
 * balancer's pool) until graceful_timeout; under an even load a node's workers reach the limit
 * together, and the node accepts nothing for that long (gunicorn issue #3227; measured in
 * test/provisioning/render/gunicornConfig.test.ts). Instead the first worker of a generation to
 * reach the limit asks the master for a graceful reload (SIGHUP, as a release does): the new
 * generation accepts before the old one stops. uvicorn's worker closes its idle connections itself
 * and calls no post_request hook: it keeps gunicorn's max_requests.
 */
function recycling(o: GunicornConfigOptions): string[] {
    if (o.maxRequests === 0 || !callsPostRequest(o.workerClass)) return [`max_requests = ${o.maxRequests}`, `max_requests_jitter = ${o.maxRequestsJitter}`];
    return [
        `# Workers are recycled after about ${o.maxRequests} requests each by a graceful reload of them all: the new`,
        `# ones accept before the old ones stop. Not by max_requests: it stops a worker accepting and keeps it until`,
        `# its idle keep-alive connections time out, and a node whose workers reach it together accepts nothing.`,
        `max_requests = 0`,
        `pycluster_recycle_after_requests = ${o.maxRequests}`,
        `pycluster_recycle_jitter = ${o.maxRequestsJitter}`,
        ``,
        `import fcntl as _fcntl, os as _os, random as _random, signal as _signal, time as _time`,
        ``,
        `def post_fork(server, worker):`,
        `    worker.pycluster_born = _time.monotonic()`,
        `    # SystemRandom: the workers inherit the master's random state.`,
        `    worker.pycluster_recycle_at = pycluster_recycle_after_requests + _random.SystemRandom().randint(0, pycluster_recycle_jitter)`,
        ``,
        `def _pycluster_first_to_ask(worker):`,
        `    """One reload per generation: the stamp holds when the last one was asked for (monotonic clock, on tmpfs)."""`,
        `    try:`,
        `        with open(${pyString(recycleStampPath(o.appName))}, "a+") as stamp:`,
        `            _fcntl.flock(stamp, _fcntl.LOCK_EX)`,
        `            stamp.seek(0)`,
        `            try:`,
        `                asked = float(stamp.read() or 0)`,
        `            except ValueError:`,
        `                asked = 0`,
        `            # A time still to come was not written by this boot's clock: no reload was asked for.`,
        `            if worker.pycluster_born <= asked <= _time.monotonic():`,
        `                return False`,
        `            stamp.seek(0)`,
        `            stamp.truncate()`,
        `            stamp.write(repr(_time.monotonic()))`,
        `    except OSError as e:`,
        `        # Without the stamp a second reload may follow: wasted work, never a gap.`,
        `        worker.log.warning("recycling stamp: %s", e)`,
        `    return True`,
        ``,
        `def post_request(worker, req, environ, resp):`,
        `    if worker.nr < worker.pycluster_recycle_at or not worker.alive:`,
        `        return`,
        `    worker.pycluster_recycle_at = float("inf")`,
        `    if _pycluster_first_to_ask(worker):`,
        `        worker.log.info("recycling the workers after %d requests: graceful reload", worker.nr)`,
        `        _os.kill(worker.ppid, _signal.SIGHUP)`,
    ];
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
        ...recycling(o),
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
