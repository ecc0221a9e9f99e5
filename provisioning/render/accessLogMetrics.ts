/**
 * The mtail program that turns the load balancer's JSON access log into the
 * metrics stub_status cannot give: responses by status, responses and
 * latency per app node (upstream), and request latency as nginx saw it.
 *
 * Values are read with one pattern per field, so the program does not depend
 * on the order of the log's fields. A client cannot forge a field: nginx
 * escapes every `"` it logs from a request (escape=json), and each pattern
 * needs an unescaped `"` right after the field's name.
 */

/** Latency buckets in seconds: from a cached answer to proxy_read_timeout territory. */
export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** What the program exports, for the dashboard, the alert rules and their tests. */
export const LB_LOG_METRICS = {
    responses: "lb_http_responses_total",
    requestDuration: "lb_http_request_duration_seconds",
    upstreamResponses: "lb_upstream_responses_total",
    upstreamDuration: "lb_upstream_response_duration_seconds",
} as const;

export interface AccessLogProgramOptions {
    /** JSON field names of the access log (see ACCESS_LOG_FIELDS in nginx.ts). */
    fields: { status: string; requestTime: string; upstreamAddr: string; upstreamStatus: string; upstreamResponseTime: string };
    buckets?: number[];
}

/**
 * nginx logs times in milliseconds; "0.000" means under 1 ms. mtail 3.0.0-rc50 leaves an observation
 * of exactly 0 out of every bucket, so it is recorded as half a millisecond.
 */
function observe(metric: string, labels: string, value: string, indent: string): string[] {
    return [
        `${indent}${value} > 0.0 {`,
        `${indent}  ${metric}${labels} = ${value}`,
        `${indent}} else {`,
        `${indent}  ${metric}${labels} = 0.0005`,
        `${indent}}`,
    ];
}

export function renderAccessLogProgram(o: AccessLogProgramOptions): string {
    const buckets = (o.buckets ?? LATENCY_BUCKETS).join(", ");
    const f = o.fields;
    for (const name of Object.values(f)) if (!/^[a-z_]+$/.test(name)) throw new Error(`unexpected access log field name ${JSON.stringify(name)}`);
    const m = LB_LOG_METRICS;
    // The last of a comma-separated list: nginx logs every upstream tried ("10.0.0.3:8000, 10.0.0.4:8000").
    const last = (field: string, value: string, group: string) => `"${field}":"(?:[^"]*, )?(?P<${group}>${value})"`;
    return [
        `# nginx JSON access log -> Prometheus metrics. Rendered by pycluster; change the stack configuration, not this file.`,
        `counter ${m.responses} by status`,
        `histogram ${m.requestDuration} buckets ${buckets}`,
        `counter ${m.upstreamResponses} by upstream, upstream_status`,
        `histogram ${m.upstreamDuration} by upstream buckets ${buckets}`,
        ``,
        `/"${f.status}":(?P<status>\\d{3})[,}]/ {`,
        `  ${m.responses}[$status]++`,
        `}`,
        `/"${f.requestTime}":(?P<request_time>\\d+\\.\\d+)[,}]/ {`,
        ...observe(m.requestDuration, "", "$request_time", "  "),
        `}`,
        `# Requests nginx answered itself (static files, redirects) have no upstream fields.`,
        `/${last(f.upstreamAddr, `[^",]+`, "upstream")}/ {`,
        `  /${last(f.upstreamStatus, `\\d{3}`, "upstream_status")}/ {`,
        `    ${m.upstreamResponses}[$upstream][$upstream_status]++`,
        `  }`,
        `  /${last(f.upstreamResponseTime, `\\d+\\.\\d+`, "upstream_time")}/ {`,
        ...observe(m.upstreamDuration, "[$upstream]", "$upstream_time", "    "),
        `  }`,
        `}`,
        ``,
    ].join("\n");
}
