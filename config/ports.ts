/**
 * Ports and fixed margins the configuration sizes and validates against, and
 * the components and renderers use.
 */

/** Headroom over the target concurrency when sizing connection limits. */
export const HEADROOM = 1.2;
/** Port of the LB's private listener (stub_status); kept out of the ephemeral range. */
export const LB_STATUS_PORT = 8080;
/**
 * Where the monitoring pieces listen (each on its node's private address; statsd on loopback). The
 * Debian packages' own defaults, so an operator finds them where the exporters' docs say.
 */
export const MONITORING_PORTS = {
    nodeExporter: 9100,
    nginxExporter: 9113,
    /** pycluster-access-log-exporter on the load balancer: metrics from nginx's JSON access log (mtail's port before 2026-12-05). */
    accessLogExporter: 3903,
    /** pycluster-statsd-exporter on app nodes: gunicorn's statsd metrics for Prometheus. */
    statsdExporter: 9102,
    /** UDP, loopback only: where gunicorn sends statsd. */
    statsd: 9125,
    prometheus: 9090,
} as const;
/** Ports the LB listens on inside the ephemeral range: kept out of it (net.ipv4.ip_local_reserved_ports). */
export const LB_RESERVED_PORTS = [LB_STATUS_PORT, MONITORING_PORTS.nodeExporter, MONITORING_PORTS.nginxExporter, MONITORING_PORTS.accessLogExporter];
/** The ephemeral port range every node gets (net.ipv4.ip_local_port_range). */
export const LOCAL_PORT_RANGE: [number, number] = [1024, 65535];
