/** Gunicorn's own settings (workers and connections are sized in config/sizing.ts). */
import type { Reader } from "./reader";
import type { StackConfig } from "./types";

export type GunicornSettings = Pick<StackConfig["gunicorn"], "backlog" | "timeout" | "gracefulTimeout" | "keepalive" | "maxRequests" | "maxRequestsJitter">;

/** `upstreamKeepaliveTimeout`: how long nginx keeps an idle connection to a node, which gunicorn's keepalive must outlast. */
export function readGunicorn(r: Reader, upstreamKeepaliveTimeout: number): GunicornSettings {
    const backlog = r.integer("gunicornBacklog", 64, 65535);
    const timeout = r.integer("gunicornTimeout", 1, 3600);
    const gracefulTimeout = r.integer("gunicornGracefulTimeout", 1, 3600);
    const keepaliveSetting = r.integer("gunicornKeepalive", 0, 3600);
    const keepalive = keepaliveSetting || upstreamKeepaliveTimeout + 15;
    if (keepaliveSetting && keepaliveSetting <= upstreamKeepaliveTimeout) {
        r.fail(
            "gunicornKeepalive",
            keepaliveSetting,
            `must be longer than upstreamKeepaliveTimeout (${upstreamKeepaliveTimeout}): otherwise gunicorn closes idle connections nginx is about to reuse, and clients get 502s. Use ${upstreamKeepaliveTimeout + 15} or 0 (derived)`,
        );
    }
    const maxRequests = r.integer("gunicornMaxRequests", 0, 100_000_000);
    const maxRequestsJitter = r.integer("gunicornMaxRequestsJitter", 0, 100_000_000);
    if (maxRequests > 0 && maxRequestsJitter >= maxRequests) {
        r.fail("gunicornMaxRequestsJitter", maxRequestsJitter, `must be smaller than gunicornMaxRequests (${maxRequests})`);
    }
    return { backlog, timeout, gracefulTimeout, keepalive, maxRequests, maxRequestsJitter };
}
