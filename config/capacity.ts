/**
 * The capacity model: how many concurrent in-flight requests a cluster can
 * hold, how many requests and new TLS connections per second its vCPUs carry,
 * and which limit binds first. Pure arithmetic on the rendered settings and
 * the measured per-core costs (config/rates.ts), so `preview` can refuse a
 * stack that cannot reach its targets and the benchmark can print predicted
 * against measured.
 */
import { MeasuredRates } from "./rates";

export interface CapacityInputs {
    /** nginx worker processes on the load balancer. */
    lbWorkers: number;
    /** nginx `worker_connections` (client + upstream connections per worker). */
    lbWorkerConnections: number;
    /** nginx `worker_rlimit_nofile`. */
    lbWorkerOpenFiles: number;
    /** Size of net.ipv4.ip_local_port_range on the load balancer. */
    lbEphemeralPorts: number;
    appNodes: number;
    appWorkersPerNode: number;
    /** gevent `worker_connections`; undefined for workers without such a cap (uvicorn). */
    appWorkerConnections: number | undefined;
    /** LimitNOFILE of the gunicorn service (per process). */
    appWorkerOpenFiles: number;
    /** The accept backlogs, reported for completeness: they bound bursts, not concurrency. */
    appBacklog: number;
    /** nginx upstream max_conns of each app node; undefined = no cap (a configuration without one). */
    appNodeConnections?: number;
    /** Memory of the nodes and what an in-flight request costs there; absent = not modelled (unknown flavor). */
    memory?: MemoryInputs;
}

export interface MemoryInputs {
    lbBytes: number;
    appNodeBytes: number;
    rates: Pick<MeasuredRates, "lbBytesPerInFlight" | "appBytesPerInFlight" | "kernelBytesPerSocket">;
}

export interface CapacityLimit {
    name: string;
    /** Concurrent in-flight requests this limit allows on its own. */
    requests: number;
    formula: string;
}

export interface CapacityModel {
    /** The cluster's ceiling: the smallest of the limits. */
    ceiling: number;
    /** The limit that sets the ceiling. */
    binding: CapacityLimit;
    limits: CapacityLimit[];
}

/**
 * Load balancers the model counts, whatever lbCount says: a pair is active/backup (one holds the
 * public address and carries every request; the other waits), so it adds availability, not capacity.
 * Every LB limit below is one LB's.
 */
export const ACTIVE_LOAD_BALANCERS = 1;

/** File descriptors a process keeps for itself (listeners, logs, pipes, epoll, imports). */
export const RESERVED_FDS = 128;
/**
 * Share of a node's memory in-flight requests may take: the rest is the system's, the
 * processes' own (a gunicorn worker is tens of MB before its first request) and the page cache.
 */
export const MEMORY_SHARE_FOR_REQUESTS = 0.75;

const MiB = 1024 * 1024;
const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;

export function capacityModel(c: CapacityInputs): CapacityModel {
    const limits: CapacityLimit[] = [
        {
            name: "nginx worker_connections",
            requests: Math.floor((c.lbWorkers * c.lbWorkerConnections) / 2),
            formula: `${c.lbWorkers} workers x ${c.lbWorkerConnections} connections / 2 (client + upstream)`,
        },
        {
            name: "nginx open files",
            requests: Math.floor((c.lbWorkers * (c.lbWorkerOpenFiles - RESERVED_FDS)) / 2),
            formula: `${c.lbWorkers} workers x (${c.lbWorkerOpenFiles} - ${RESERVED_FDS}) fds / 2`,
        },
        {
            name: "LB->app ephemeral ports",
            requests: c.appNodes * c.lbEphemeralPorts,
            formula: `${c.appNodes} app nodes x ${c.lbEphemeralPorts} local ports (one source IP per node IP:port)`,
        },
        {
            name: "app open files",
            requests: c.appNodes * c.appWorkersPerNode * (c.appWorkerOpenFiles - RESERVED_FDS),
            formula: `${c.appNodes} nodes x ${c.appWorkersPerNode} workers x (${c.appWorkerOpenFiles} - ${RESERVED_FDS}) fds`,
        },
    ];
    if (c.appWorkerConnections !== undefined) {
        limits.push({
            name: "gunicorn worker_connections",
            requests: c.appNodes * c.appWorkersPerNode * c.appWorkerConnections,
            formula: `${c.appNodes} nodes x ${c.appWorkersPerNode} workers x ${c.appWorkerConnections} connections`,
        });
    }
    if (c.appNodeConnections !== undefined) {
        limits.push({
            name: "nginx max_conns per app node",
            requests: c.appNodes * c.appNodeConnections,
            formula: `${c.appNodes} nodes x ${c.appNodeConnections} connections (upstream max_conns)`,
        });
    }
    if (c.memory) {
        const m = c.memory;
        // The LB holds two sockets per request (client, upstream), an app node one.
        const lbEach = m.rates.lbBytesPerInFlight + 2 * m.rates.kernelBytesPerSocket;
        const appEach = m.rates.appBytesPerInFlight + m.rates.kernelBytesPerSocket;
        limits.push(
            {
                name: "LB memory",
                requests: Math.floor((m.lbBytes * MEMORY_SHARE_FOR_REQUESTS) / lbEach),
                formula: `${MEMORY_SHARE_FOR_REQUESTS} x ${Math.round(m.lbBytes / MiB)} MiB / (nginx ${kib(m.rates.lbBytesPerInFlight)} + 2 sockets x ${kib(m.rates.kernelBytesPerSocket)}) per request`,
            },
            {
                name: "app memory",
                requests: c.appNodes * Math.floor((m.appNodeBytes * MEMORY_SHARE_FOR_REQUESTS) / appEach),
                formula: `${c.appNodes} nodes x ${MEMORY_SHARE_FOR_REQUESTS} x ${Math.round(m.appNodeBytes / MiB)} MiB / (gunicorn ${kib(m.rates.appBytesPerInFlight)} + 1 socket x ${kib(m.rates.kernelBytesPerSocket)}) per request`,
            },
        );
    }
    const binding = limits.reduce((min, l) => (l.requests < min.requests ? l : min));
    return { ceiling: binding.requests, binding, limits };
}

// --- rates: what the vCPUs carry -------------------------------------------------------------

export interface RateInputs {
    lbVcpus: number;
    appNodes: number;
    appVcpus: number;
    appWorkersPerNode: number;
    /** Requests one app core serves per second; undefined = unknown (an app nobody measured). */
    appRequestsPerCore: number | undefined;
    rates: Pick<MeasuredRates, "tlsHandshakesPerLbCore" | "proxiedRequestsPerLbCore">;
}

export interface RateLimit {
    name: string;
    /** Whose CPU it is: the load balancer's limits alone size what nginx refuses (overloadLimits). */
    on: "lb" | "app";
    /** Per second, this limit on its own. */
    perSecond: number;
    formula: string;
}

export interface RateCeiling {
    ceiling: number;
    binding: RateLimit;
    limits: RateLimit[];
}

export interface RateModel {
    /** New TLS connections per second, each with its first request. */
    newConnections: RateCeiling;
    /** Requests per second on kept-alive connections. */
    requests: RateCeiling;
    /** Cores an app node can use: a gevent or uvicorn worker is one process, so min(workers, vCPUs). */
    appCoresPerNode: number;
    /** False when the app's cost per request is unknown: app limits are then left out. */
    appRateKnown: boolean;
}

function ceilingOf(limits: RateLimit[]): RateCeiling {
    const binding = limits.reduce((min, l) => (l.perSecond < min.perSecond ? l : min));
    return { ceiling: binding.perSecond, binding, limits };
}

/** The rates a cluster's vCPUs carry, each limit on its own. Pure. */
export function rateModel(c: RateInputs): RateModel {
    const appCoresPerNode = Math.min(c.appWorkersPerNode, c.appVcpus);
    const app: RateLimit[] =
        c.appRequestsPerCore === undefined
            ? []
            : [
                  {
                      name: "app CPU",
                      on: "app",
                      perSecond: Math.floor(c.appNodes * appCoresPerNode * c.appRequestsPerCore),
                      formula: `${c.appNodes} nodes x min(${c.appWorkersPerNode} workers, ${c.appVcpus} vCPUs) x ${c.appRequestsPerCore} requests/s per core`,
                  },
              ];
    return {
        newConnections: ceilingOf([
            {
                name: "LB CPU: TLS handshakes",
                on: "lb",
                perSecond: Math.floor(c.lbVcpus * c.rates.tlsHandshakesPerLbCore),
                formula: `${c.lbVcpus} vCPUs x ${c.rates.tlsHandshakesPerLbCore} handshakes/s per core`,
            },
            ...app,
        ]),
        requests: ceilingOf([
            {
                name: "LB CPU: proxying",
                on: "lb",
                perSecond: Math.floor(c.lbVcpus * c.rates.proxiedRequestsPerLbCore),
                formula: `${c.lbVcpus} vCPUs x ${c.rates.proxiedRequestsPerLbCore} requests/s per core`,
            },
            ...app,
        ]),
        appCoresPerNode,
        appRateKnown: c.appRequestsPerCore !== undefined,
    };
}

export interface RateTargets {
    requestsPerSecond: number;
    newConnectionsPerSecond: number;
}

export interface RateLoad {
    /** Cores of the load balancer the targets keep busy: handshakes plus proxying the other requests. */
    lbCores: number;
    /** Cores each app node's workers are busy (undefined when the app's cost is unknown). */
    appCoresPerNode?: number;
    /** Requests per second the targets mean: every new connection carries at least one. */
    requestsPerSecond: number;
}

/**
 * The CPU the targets need. A new connection costs a handshake and its first request (that is
 * what tlsHandshakesPerLbCore measures); the other requests cost proxying. Pure.
 */
export function rateLoad(c: RateInputs, t: RateTargets): RateLoad {
    const requestsPerSecond = Math.max(t.requestsPerSecond, t.newConnectionsPerSecond);
    const lbCores = t.newConnectionsPerSecond / c.rates.tlsHandshakesPerLbCore + (requestsPerSecond - t.newConnectionsPerSecond) / c.rates.proxiedRequestsPerLbCore;
    const appCoresPerNode = c.appRequestsPerCore === undefined ? undefined : requestsPerSecond / c.appNodes / c.appRequestsPerCore;
    return { lbCores, appCoresPerNode, requestsPerSecond };
}

export interface RateShortfall {
    /** The target setting that cannot be met. */
    key: "targetRequestsPerSecond" | "targetNewConnectionsPerSecond";
    /** What binds, in words, with the numbers. */
    reason: string;
    /** What would carry it. */
    fix: string;
}

/**
 * Whether the cluster carries the targets with `headroom` to spare (1.2 = the targets x 1.2 fit
 * in the cores), and if not, which limit binds. Targets of 0 are not checked. Pure.
 */
export function rateShortfall(c: RateInputs, t: RateTargets, headroom: number): RateShortfall | undefined {
    if (t.requestsPerSecond === 0 && t.newConnectionsPerSecond === 0) return undefined;
    const planned = { requestsPerSecond: t.requestsPerSecond * headroom, newConnectionsPerSecond: t.newConnectionsPerSecond * headroom };
    const load = rateLoad(c, planned);
    const spare = `${Math.round((headroom - 1) * 100)}% headroom`;
    const fmt = (x: number) => x.toFixed(2);
    if (load.lbCores > c.lbVcpus) {
        const handshakeCores = planned.newConnectionsPerSecond / c.rates.tlsHandshakesPerLbCore;
        const proxyCores = load.lbCores - handshakeCores;
        return {
            // The setting that asks for most of the load balancer's CPU.
            key: handshakeCores >= proxyCores ? "targetNewConnectionsPerSecond" : "targetRequestsPerSecond",
            reason:
                `the load balancer's ${c.lbVcpus} vCPUs cannot carry it with ${spare}: LB CPU: ` +
                `TLS handshakes ${fmt(handshakeCores)} cores (${Math.round(planned.newConnectionsPerSecond)}/s at ${c.rates.tlsHandshakesPerLbCore} per core) + ` +
                `proxying ${fmt(proxyCores)} cores (${Math.round(load.requestsPerSecond - planned.newConnectionsPerSecond)}/s at ${c.rates.proxiedRequestsPerLbCore} per core) = ${fmt(load.lbCores)} cores`,
            fix: `use an lbFlavor with at least ${Math.ceil(load.lbCores)} vCPUs, or lower the target`,
        };
    }
    const appCores = Math.min(c.appWorkersPerNode, c.appVcpus);
    if (load.appCoresPerNode !== undefined && load.appCoresPerNode > appCores) {
        return {
            key: t.requestsPerSecond > 0 ? "targetRequestsPerSecond" : "targetNewConnectionsPerSecond",
            reason:
                `the app nodes cannot carry it with ${spare}: app CPU: ${Math.round(load.requestsPerSecond)} requests/s over ${c.appNodes} nodes ` +
                `at ${c.appRequestsPerCore} per core need ${fmt(load.appCoresPerNode)} cores per node, and a node uses at most min(${c.appWorkersPerNode} workers, ${c.appVcpus} vCPUs) = ${appCores}`,
            fix: `use at least ${Math.ceil((load.appCoresPerNode * c.appNodes) / appCores)} app nodes (appNodeCount) or an appFlavor with more vCPUs, or lower the target`,
        };
    }
    return undefined;
}

// --- overload: what the load balancer refuses, and how --------------------------------------

export interface OverloadInputs {
    /** The rate ceilings (rateModel). */
    rates: RateModel;
    /** An operator's own request-rate limit; 0 = the model's request ceiling. */
    requestRateSetting: number;
    /** What one app node is given (Sizing.appNodeConnections). */
    appNodeConnections: number;
    lbWorkers: number;
}

export interface OverloadLimits {
    /** nginx limit_req: requests per second passed on to the apps; beyond, 503 with Retry-After. */
    requestRate: number;
    /** Requests above the rate let through at once: one second's worth, so a spike is not refused. */
    requestBurst: number;
    /** nginx upstream max_conns: what one app node holds; a full node is skipped, all full = 503. */
    perNodeConnections: number;
    /**
     * Accept queue of each of nginx's listening sockets (one per worker with reuseport): about a
     * second of the handshakes the LB's vCPUs carry, over the sockets. Beyond it the kernel drops
     * new connections' SYNs (the clients retry them) instead of queueing handshakes nginx would
     * only reach after the clients gave up: with the LB short of CPU, a queue of 25,000 per
     * socket left it completing 7 of 6,000 connections, 16 per socket 3,252 (bench/README.md).
     */
    listenBacklog: number;
    /** Seconds a refused client is told to wait (Retry-After). */
    retryAfterSeconds: number;
}

/** The smallest accept queue per listening socket: room for an ordinary burst of new connections. */
export const MIN_LISTEN_BACKLOG = 128;

/**
 * What the load balancer's own vCPUs carry: the app's limits are left out on purpose, so that a
 * change of app (its kind, its code, its measured cost) never changes nginx's configuration: an
 * nginx reload under load costs requests (the reliability suite counts them), and app nodes are
 * guarded by max_conns and their own backlog.
 */
function lbCeiling(c: RateCeiling): number {
    return Math.min(...c.limits.filter(l => l.on === "lb").map(l => l.perSecond));
}

/** The limits nginx enforces so that overload is answered with 503s, sized from the model. Pure. */
export function overloadLimits(o: OverloadInputs): OverloadLimits {
    const requestRate = o.requestRateSetting > 0 ? o.requestRateSetting : lbCeiling(o.rates.requests);
    return {
        requestRate,
        requestBurst: requestRate,
        perNodeConnections: o.appNodeConnections,
        listenBacklog: Math.max(MIN_LISTEN_BACKLOG, Math.ceil(lbCeiling(o.rates.newConnections) / o.lbWorkers)),
        retryAfterSeconds: 1,
    };
}
