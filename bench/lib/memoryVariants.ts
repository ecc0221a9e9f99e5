/**
 * Memory per held request of nginx and of a gunicorn worker, for the program's
 * settings and for settings that could lower it: what `npm run bench:memory`
 * runs. One variant = a shell script for a private network namespace (loopback
 * only): nginx with the rendered configuration (one worker) in front of the
 * bundled sample app on one gunicorn worker, `requests` requests held by
 * h2load, the proportional set size of each process tree before and at the
 * peak. Pure: scripts and parsing here, bench/memory.ts runs them.
 */
import { shellQuote as sq } from "../../lib/shell";

/** Debian's interpreter: its dist-packages hold gunicorn, gevent and uvicorn, as on the hosts. */
export const SYSTEM_PYTHON = "/usr/bin/python3";

export interface MemoryVariant {
    name: string;
    /** What it costs, in words (printed beside the figure). */
    cost: string;
    /** Directives added to nginx's http context. */
    nginxDirectives?: string[];
    /** Hold the requests over plain HTTP (a listener without TLS), to show what TLS takes. */
    plainHttp?: boolean;
    /** gunicorn worker class and app module (default gevent, app:application). */
    workerClass?: string;
    appModule?: string;
    /** Environment of the gunicorn process. */
    env?: Record<string, string>;
    /** Environment of nginx (its workers are forked from the master, so they inherit it). */
    nginxEnv?: Record<string, string>;
    /**
     * Clients that multiplex this many requests on one HTTP/2 connection (default: one HTTP/1.1
     * connection per request). Not a setting of ours: what the clients do.
     */
    streamsPerConnection?: number;
}

/** Debian's jemalloc (package libjemalloc2), preloaded in place of glibc's malloc. */
export const JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2";

export const VARIANTS: MemoryVariant[] = [
    { name: "as rendered", cost: "-" },
    {
        name: "nginx: ssl_conf_command NumTickets 0",
        cost: "no TLS 1.3 session tickets: a returning client does a full handshake, the scarcest CPU on the LB",
        nginxDirectives: ["ssl_conf_command NumTickets 0;"],
    },
    {
        name: "nginx: request_pool_size 1k; client_header_buffer_size 512",
        cost: "requests with over 512 bytes of headers take an 8k large header buffer; nginx's docs advise against tuning request_pool_size",
        nginxDirectives: ["request_pool_size 1k;", "client_header_buffer_size 512;"],
    },
    { name: "nginx: ssl_buffer_size 4k", cost: "more TLS records for large responses (CPU, a little bandwidth)", nginxDirectives: ["ssl_buffer_size 4k;"] },
    { name: "nginx: plain HTTP, no TLS (for scale)", cost: "no TLS between clients and the LB: not an option on the internet", plainHttp: true },
    { name: "app: PYTHONMALLOC=malloc", cost: "glibc malloc for Python objects instead of pymalloc (slower small allocations)", env: { PYTHONMALLOC: "malloc" } },
    {
        name: "app: GEVENT_TRACK_GREENLET_TREE=false",
        cost: "greenlets no longer record who spawned them (gevent's debugging aids lose the spawn tree)",
        env: { GEVENT_TRACK_GREENLET_TREE: "false" },
    },
    {
        name: "nginx: jemalloc (LD_PRELOAD)",
        cost: "one more package (libjemalloc2) and an allocator nginx is not tested with by its authors; OpenSSL's many small allocations per connection are what it changes",
        nginxEnv: { LD_PRELOAD: JEMALLOC },
    },
    {
        name: "app: jemalloc (LD_PRELOAD)",
        cost: "one more package (libjemalloc2); Python's own small objects stay on pymalloc",
        env: { LD_PRELOAD: JEMALLOC },
    },
    {
        name: "app: uvicorn worker (the sample's ASGI app)",
        cost: "only for asyncio apps (appKind asgi); a WSGI app cannot run on it",
        workerClass: "uvicorn.workers.UvicornWorker",
        appModule: "app:asgi_application",
    },
    // Not settings: what clients do. Browsers multiplex a site's requests on one HTTP/2 connection;
    // API clients often open one connection per request, as the bench's h2load --h1 does.
    ...[10, 100].map(streams => ({
        name: `clients: HTTP/2, ${streams} requests per connection`,
        cost: `not a setting: the clients' choice; TLS and the connection are paid once per ${streams} requests (nginx allows 128 streams per connection)`,
        streamsPerConnection: streams,
    })),
];

/** What the variant's clients speak to nginx: HTTP/2 when they multiplex, else HTTP/1.1 (h2load's names). */
export const clientProtocol = (v: MemoryVariant): "h2" | "http/1.1" => (v.streamsPerConnection ? "h2" : "http/1.1");

export interface ScriptOptions {
    /** Directory with nginx.conf (already rendered for this variant), pycluster/site.conf, the certificate. */
    nginxDir: string;
    appDir: string;
    requests: number;
    /** How long the app holds each request. */
    holdMs: number;
    /** New connections per second while the requests ramp up. */
    rate: number;
}

/**
 * The script for one variant. It starts gunicorn and nginx (in the foreground of the script:
 * their PIDs are its children's), holds the requests, prints `base`, `peak` and h2load's
 * summary, and ends exactly those processes on exit, also on failure.
 */
export function variantScript(v: MemoryVariant, o: ScriptOptions): string {
    const assign = (e?: Record<string, string>) => Object.entries(e ?? {}).map(([k, val]) => `${k}=${sq(val)}`).join(" ");
    const env = assign(v.env);
    const url = v.plainHttp ? `http://127.0.0.1:8081/wait?ms=${o.holdMs}` : `https://127.0.0.1/wait?ms=${o.holdMs}`;
    const warmUrl = v.plainHttp ? "http://127.0.0.1:8081/" : "https://127.0.0.1/";
    const rampS = o.requests / o.rate;
    const streams = v.streamsPerConnection ?? 1;
    // h2load's --rate counts connections: the same request rate either way.
    const clients = clientProtocol(v) === "h2" ? `-t1 -c${Math.ceil(o.requests / streams)} -m${streams}` : `--h1 -t1 -c${o.requests}`;
    return `set -u
ulimit -n 20000
ip link set lo up
GUN= NGX=
cleanup() { [ -n "$NGX" ] && kill -QUIT "$NGX" 2>/dev/null; [ -n "$GUN" ] && kill -TERM "$GUN" 2>/dev/null; wait 2>/dev/null; }
trap cleanup EXIT
# gunicorn runs in the app's directory; nothing is written there.
cd ${sq(o.appDir)}
env ${env} ${SYSTEM_PYTHON} -m gunicorn --worker-class ${sq(v.workerClass ?? "gevent")} --workers 1 --worker-connections 20000 --backlog 4096 -b 127.0.0.1:8000 ${sq(v.appModule ?? "app:application")} 2>/dev/null &
GUN=$!
env ${assign(v.nginxEnv)} nginx -c ${sq(`${o.nginxDir}/nginx.conf`)} -p ${sq(`${o.nginxDir}/`)} -g 'daemon off;' &
NGX=$!
for i in $(seq 150); do ss -ltn | grep -q ':8000 ' && ss -ltn | grep -q ':443 ' && break; sleep 0.2; done
pss() { local s=0 p v; for p in $1 $(pgrep -P $1); do v=$(awk '/^Pss:/ {print $2}' /proc/$p/smaps_rollup 2>/dev/null); s=$((s + \${v:-0})); done; echo $s; }
h2load --h1 -c 20 -n 400 ${sq(warmUrl)} >/dev/null 2>&1
sleep 1
echo "base nginx $(pss $NGX) app $(pss $GUN)"
h2load ${clients} -n${o.requests} --rate=${Math.max(1, Math.round(o.rate / streams / 10))} --rate-period=100ms --connection-active-timeout=${Math.ceil(o.holdMs / 1000 + rampS + 30)} ${sq(url)} > ${sq(`${o.nginxDir}/h2load.out`)} 2>&1 &
H=$!
sleep ${Math.ceil(rampS + 1)}
pn=0; pa=0
for i in $(seq ${Math.max(3, Math.floor(o.holdMs / 1000 - rampS - 2))}); do n=$(pss $NGX); a=$(pss $GUN); [ $n -gt $pn ] && pn=$n; [ $a -gt $pa ] && pa=$a; sleep 1; done
echo "peak nginx $pn app $pa"
wait $H
grep -E '^(requests:|Application protocol:)' ${sq(`${o.nginxDir}/h2load.out`)}
`;
}

export interface VariantMeasurement {
    /** Bytes per held request, nginx and the gunicorn worker (PSS growth / requests). */
    nginxBytes: number;
    appBytes: number;
    /** Requests answered 2xx out of those sent. */
    ok: number;
    /** What h2load negotiated with nginx ("h2", "http/1.1"). */
    protocol: string;
}

/** Reads a variant script's output. Throws when a line is missing (the variant did not run). */
export function parseVariantOutput(out: string, requests: number): VariantMeasurement {
    const base = /^base nginx (\d+) app (\d+)$/m.exec(out);
    const peak = /^peak nginx (\d+) app (\d+)$/m.exec(out);
    const req = /^requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded/m.exec(out);
    const protocol = /^Application protocol: (\S+)$/m.exec(out);
    if (!base || !peak || !req || !protocol) throw new Error(`the variant did not run through:\n${out.slice(-1500)}`);
    const kb = (m: RegExpExecArray, i: number) => Number(m[i]) * 1024;
    return { nginxBytes: (kb(peak, 1) - kb(base, 1)) / requests, appBytes: (kb(peak, 2) - kb(base, 2)) / requests, ok: Number(req[1]), protocol: protocol[1] };
}

/** The median of repeated measurements (the middle one; the lower middle for an even count). Pure. */
export function median(xs: number[]): number {
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.floor((s.length - 1) / 2)];
}

/**
 * The rendered nginx.conf made runnable in a scratch directory: its pid, error log and access
 * log there, and the variant's directives at the top of the http context.
 */
export function variantNginxConf(rendered: string, dir: string, directives: string[]): string {
    const out = rendered
        .replace(/^pid .*;$/m, `pid ${dir}/nginx.pid;`)
        .replace(/^error_log .*;$/m, `error_log ${dir}/error.log warn;`)
        .replace(/access_log \/\S+/, `access_log ${dir}/access.log`)
        .replace(/^http \{$/m, ["http {", ...directives.map(d => `    ${d}`)].join("\n"));
    if (out === rendered && directives.length) throw new Error("the rendered nginx.conf has no http block");
    return out;
}

/** The site made to also listen on plain HTTP at 127.0.0.1:8081 (same server, same proxying). */
export function plainHttpSite(site: string): string {
    // The site's own server (not the default server, whose listen has default_server).
    const out = site.replace(/^(\s+listen 443 ssl(?: http2)?;)$/m, "$1\n    listen 127.0.0.1:8081;");
    if (out === site) throw new Error("no TLS listener in the site");
    return out;
}
