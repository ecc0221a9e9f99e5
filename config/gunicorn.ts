/** Gunicorn's own settings (workers and connections are sized in config/sizing.ts). */
import type { Reader } from "./reader";
import type { AppKind, StackConfig } from "./types";

export type GunicornSettings = Pick<StackConfig["gunicorn"], "backlog" | "timeout" | "gracefulTimeout" | "keepalive" | "maxRequests" | "maxRequestsJitter">;

/**
 * `upstreamKeepaliveTimeout`: how long nginx keeps an idle connection to a node, which gunicorn's
 * keepalive must outlast; `kind`: the app's, which picks the worker class.
 */
export function readGunicorn(r: Reader, upstreamKeepaliveTimeout: number, kind: AppKind): GunicornSettings {
    const backlog = r.integer("gunicornBacklog", 64, 65535);
    const timeout = r.integer("gunicornTimeout", 1, 3600);
    const gracefulTimeout = r.integer("gunicornGracefulTimeout", 1, 3600);
    // A leaving gevent worker (reload, recycling, stop) keeps its idle keep-alive connections until
    // graceful_timeout and then closes them; nginx may be sending a request on one at that moment,
    // and a POST is not retried (502). When nginx lets go of idle connections sooner, none is left
    // to close, and the worker leaves as soon as nginx has closed them
    // (test/provisioning/render/gunicornConfig.test.ts shows both). uvicorn workers close their idle
    // connections as they start to leave, so the timeouts do not matter to them.
    if (kind === "wsgi" && upstreamKeepaliveTimeout >= gracefulTimeout) {
        const fits = gracefulTimeout > 5 ? Math.min(10, gracefulTimeout - 5) : gracefulTimeout - 1;
        r.fail(
            "upstreamKeepaliveTimeout",
            upstreamKeepaliveTimeout,
            `must be shorter than gunicornGracefulTimeout (${gracefulTimeout}) with gevent workers: a leaving worker closes the idle connections nginx still keeps when gunicornGracefulTimeout runs out, and a request nginx sends on one then fails (a POST gets a 502). ${fits > 0 ? `Use ${fits} or less, or raise` : "Raise"} gunicornGracefulTimeout above ${upstreamKeepaliveTimeout}`,
        );
    }
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
