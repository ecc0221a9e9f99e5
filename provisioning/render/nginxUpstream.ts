import { LbMethod } from "../../config/types";

/**
 * The site's upstream (the app nodes, their passive health checks and keep-alive connections) and
 * how overload is refused in front of it (a request-rate limit, max_conns, 503 with Retry-After):
 * parts of the site that nginx.ts assembles.
 */

/** nginx's passive health check: after this many failures within FAIL_TIMEOUT_S, a node is skipped that long. */
export const MAX_FAILS = 3;
export const FAIL_TIMEOUT_S = 10;

export interface Upstream {
    address: string;
    port: number;
    /** Drained: kept in the list but sent no new requests. */
    down?: boolean;
}

export interface OverloadOptions {
    /** Requests per second passed on (limit_req); one burst of `requestBurst` on top. */
    requestRate: number;
    requestBurst: number;
    /** Connections to one app node (upstream max_conns). */
    perNodeConnections: number;
    /** What Retry-After tells a refused client. */
    retryAfterSeconds: number;
}

/** What the upstream and the overload limits are rendered from: a part of NginxSiteOptions. */
export interface UpstreamOptions {
    appName: string;
    upstreams: Upstream[];
    method: LbMethod;
    keepalive: number;
    keepaliveTimeout: number;
    /** How overload is refused (sized by the capacity model); absent = no limits. */
    overload?: OverloadOptions;
}

/** Overload's three pieces of the site: the zone (http context), the limits (proxying location), the named location. */
export interface OverloadParts {
    zone: string[];
    limits: string[];
    location: string[];
}

/** The named location that answers every refusal: 503 with Retry-After. */
export const OVERLOADED_LOCATION = "@overloaded";

export function upstreamBlock(o: UpstreamOptions): string {
    if (o.upstreams.length === 0) throw new Error("the upstream needs at least one app node");
    const method = o.method === "round_robin" ? [] : [`    ${o.method};`];
    const maxConns = o.overload ? ` max_conns=${o.overload.perNodeConnections}` : "";
    const servers = o.upstreams.map(u => `    server ${u.address}:${u.port} max_fails=${MAX_FAILS} fail_timeout=${FAIL_TIMEOUT_S}s${maxConns}${u.down ? " down" : ""};`);
    return [
        `upstream ${o.appName} {`,
        `    # Shared memory, so every worker sees the same failure counts and connection numbers.`,
        `    zone ${o.appName}_upstream 256k;`,
        ...method,
        ...servers,
        `    # Idle connections to the app nodes each worker keeps open (needs HTTP/1.1, empty Connection).`,
        `    keepalive ${o.keepalive};`,
        `    keepalive_timeout ${o.keepaliveTimeout}s;`,
        `    keepalive_requests 10000;`,
        `}`,
    ].join("\n");
}

/**
 * How overload is refused, as three pieces of the site: the request-rate zone (http context), the
 * limits in the proxying location, and the named location that answers 503 with Retry-After (and
 * HSTS, which add_header in a location would otherwise drop). Empty without o.overload.
 */
export function overloadParts(o: UpstreamOptions, hsts: string[]): OverloadParts {
    const ov = o.overload;
    if (!ov) return { zone: [], limits: [], location: [] };
    return {
        zone: [
            `# Overload, sized by the capacity model: beyond this rate (and a node's max_conns) nginx answers`,
            `# 503 with Retry-After at once instead of passing on work the app nodes would reach after the`,
            `# clients gave up. One key for every client: the limit is the cluster's capacity, not a quota.`,
            `limit_req_zone "all" zone=${o.appName}_rate:1m rate=${ov.requestRate}r/s;`,
            ``,
        ],
        limits: [
            `        limit_req zone=${o.appName}_rate burst=${ov.requestBurst} nodelay;`,
            `        limit_req_status 503;`,
            `        # Refused by a limit, or no app node could take it (every node full or failing): 503 + Retry-After.`,
            `        error_page 502 503 = ${OVERLOADED_LOCATION};`,
        ],
        location: [
            ``,
            `    location ${OVERLOADED_LOCATION} {`,
            `        default_type text/plain;`,
            `        add_header Retry-After ${ov.retryAfterSeconds} always;`,
            ...hsts.map(l => `        ${l}`),
            `        return 503 "overloaded: retry after ${ov.retryAfterSeconds} s\\n";`,
            `    }`,
        ],
    };
}
