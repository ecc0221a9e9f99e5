/**
 * The metrics the load balancer's access log gives (pycluster-access-log-exporter,
 * provisioning/host/access_log_exporter.py): what stub_status cannot, per request: responses by
 * status, responses and latency per app node (upstream), and request latency as nginx saw it.
 * The names here are the ones the exporter writes; the dashboard and the alert rules use them.
 */

/** Latency buckets in seconds: from a cached answer to proxy_read_timeout territory. */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** What the exporter exports, for the dashboard, the alert rules and their tests. */
export const LB_LOG_METRICS = {
    responses: "lb_http_responses_total",
    requestDuration: "lb_http_request_duration_seconds",
    upstreamResponses: "lb_upstream_responses_total",
    upstreamDuration: "lb_upstream_response_duration_seconds",
    lines: "lb_access_log_lines_total",
} as const;
