/**
 * The capacity model: how many concurrent in-flight requests a cluster can
 * hold, and which limit binds first. Pure arithmetic on the rendered settings,
 * so `preview` can refuse a stack that cannot reach its target and the
 * benchmark can print predicted against measured.
 */

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

/** File descriptors a process keeps for itself (listeners, logs, pipes, epoll, imports). */
export const RESERVED_FDS = 128;

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
    const binding = limits.reduce((min, l) => (l.requests < min.requests ? l : min));
    return { ceiling: binding.requests, binding, limits };
}
