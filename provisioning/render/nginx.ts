import { hostPath } from "../hostContract";
import { compareVersions } from "../../config/catalog";
import { OverloadParts, overloadParts, upstreamBlock, UpstreamOptions } from "./nginxUpstream";

/**
 * nginx for the load balancer, in two files: the main context (nginx.conf, nginxMain.ts) and the
 * site (pycluster/site.conf), rendered here from its server blocks and the upstream and overload
 * parts (nginxUpstream.ts). Paths to our own files are relative to the configuration directory,
 * so the push can validate a staged copy with `nginx -t -c <stage>/nginx.conf` before it touches
 * /etc/nginx.
 */

/** Directory under the nginx configuration directory that holds our files (where hostctl installs the site). */
export const NGINX_SITE_DIR = hostPath("nginxSite").slice(hostPath("nginxDir").length + 1);
export const NGINX_TLS_CERT = `${NGINX_SITE_DIR}/tls/fullchain.pem`;
export const NGINX_TLS_KEY = `${NGINX_SITE_DIR}/tls/privkey.pem`;
export const ACME_WEBROOT = hostPath("acmeWebroot");

/** The site's options; those of the upstream (app nodes, method, keep-alive, overload) are UpstreamOptions. */
export interface NginxSiteOptions extends UpstreamOptions {
    nginxVersion: string;
    connectTimeout: number;
    readTimeout: number;
    clientMaxBodySize: string;
    /** Host names the site answers to: the domain, or the public address. */
    serverNames: string[];
    /** True when serverNames is a real domain: unknown SNI is refused during the handshake. */
    hasDomain: boolean;
    listenBacklog: number;
    hstsMaxAge: number;
    /** The LB's private address and port for stub_status. */
    statusListen: { address: string; port: number };
    /** Networks allowed to read stub_status. */
    statusAllow: string[];
    /**
     * An LB of a pair: the status listener also serves the file its health check writes (whether it
     * reaches an upstream) at urlPath, for the peer's check.
     */
    pairVerdict?: { urlPath: string; file: string };
    staticFiles?: { urlPath: string; root: string };
    /** Attempts per request: a whole rollout batch may refuse new connections at once. */
    nextUpstreamTries: number;
    /**
     * A pair's other LB (its private address): an ACME challenge token this LB does not have is
     * asked of it. Each LB of a pair gets its own certificate, and the CA's validation reaches
     * whichever LB holds the public address.
     */
    acmePeer?: string;
}

/** The header that marks a challenge request one LB of a pair passed to the other (one hop, never back). */
export const ACME_HOP_HEADER = "X-Pycluster-Acme-Hop";

/** Mozilla "intermediate" (guideline 5.7+/6): ECDHE with AEAD ciphers only, no DHE. */
export const MOZILLA_INTERMEDIATE_CIPHERS = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

const indent = (lines: string[], n: number) => lines.map(l => " ".repeat(n) + l);

/** What the server blocks share: the listen and TLS lines for this nginx version, the server names, HSTS. */
interface SiteParts {
    listen443: (extra: string) => string;
    http2On: string[];
    names: string;
    hsts: string[];
    tlsLines: string[];
}

function siteParts(o: NginxSiteOptions): SiteParts {
    const modernHttp2 = compareVersions(o.nginxVersion, "1.25.1") >= 0;
    return {
        listen443: (extra: string) => (modernHttp2 ? `listen 443 ssl${extra};` : `listen 443 ssl http2${extra};`),
        http2On: modernHttp2 ? ["    http2 on;"] : [],
        names: o.serverNames.join(" "),
        hsts: o.hstsMaxAge > 0 ? [`add_header Strict-Transport-Security "max-age=${o.hstsMaxAge}" always;`] : [],
        tlsLines: [
            `ssl_certificate ${NGINX_TLS_CERT};`,
            `ssl_certificate_key ${NGINX_TLS_KEY};`,
            `ssl_protocols TLSv1.2 TLSv1.3;`,
            `ssl_ciphers ${MOZILLA_INTERMEDIATE_CIPHERS};`,
            `ssl_prefer_server_ciphers off;`,
            `ssl_session_cache shared:MozSSL:10m;`,
            `ssl_session_timeout 1d;`,
            // Ticket keys never rotate before 1.23.2, which weakens forward secrecy.
            ...(compareVersions(o.nginxVersion, "1.23.2") < 0 ? [`ssl_session_tickets off;`] : []),
        ],
    };
}

/** The default server on 80 and 443: any other host name gets no answer. */
function catchAllServer(o: NginxSiteOptions, p: SiteParts): string[] {
    const rejectHandshake = o.hasDomain && compareVersions(o.nginxVersion, "1.19.4") >= 0;
    return [
        `# Requests for any other host name get no answer (444 closes the connection).`,
        `server {`,
        `    listen 80 default_server reuseport backlog=${o.listenBacklog};`,
        `    ${p.listen443(` default_server reuseport backlog=${o.listenBacklog}`)}`,
        ...p.http2On,
        `    server_name _;`,
        ...(rejectHandshake ? [`    ssl_reject_handshake on;`] : indent(p.tlsLines, 4)),
        `    access_log off;`,
        `    return 444;`,
        `}`,
    ];
}

/** Port 80 for the site's names: ACME challenges, everything else redirected to HTTPS. */
function redirectServer(p: SiteParts, acmePeer: string | undefined): string[] {
    const hopVariable = `$http_${ACME_HOP_HEADER.toLowerCase().replace(/-/g, "_")}`;
    const challenges = acmePeer
        ? [
              `    location /.well-known/acme-challenge/ {`,
              `        root ${ACME_WEBROOT};`,
              `        # A token certbot put on the other LB of the pair: the CA reaches whichever LB holds the address.`,
              `        try_files $uri @acme_peer;`,
              `    }`,
              `    location @acme_peer {`,
              `        # One hop: a challenge the peer passed here is answered from here or not at all.`,
              `        if (${hopVariable}) {`,
              `            return 404;`,
              `        }`,
              `        proxy_set_header ${ACME_HOP_HEADER} 1;`,
              `        proxy_set_header Host $host;`,
              `        proxy_connect_timeout 2s;`,
              `        proxy_read_timeout 5s;`,
              `        proxy_pass http://${acmePeer}:80;`,
              `    }`,
          ]
        : [`    location /.well-known/acme-challenge/ {`, `        root ${ACME_WEBROOT};`, `    }`];
    return [
        `server {`,
        `    listen 80;`,
        `    server_name ${p.names};`,
        `    # Let's Encrypt HTTP-01 challenges stay on plain HTTP.`,
        ...challenges,
        `    location / {`,
        `        return 301 https://$host$request_uri;`,
        `    }`,
        `}`,
    ];
}

function staticLocation(o: NginxSiteOptions, hsts: string[]): string[] {
    if (!o.staticFiles) return [];
    return [
        ``,
        `    location ${o.staticFiles.urlPath} {`,
        `        alias ${o.staticFiles.root}/;`,
        `        expires 30d;`,
        // add_header in a location drops the server's headers: repeat HSTS.
        ...indent(hsts, 8),
        `        add_header Cache-Control "public";`,
        `    }`,
    ];
}

/** The named location that answers while hostctl reloads nginx: the same proxy, each connection closed after its response. */
export const CLOSING_LOCATION = "@closing";

/**
 * The location that passes requests on to the app nodes (with the overload limits, if any), and its
 * twin for the moment before a reload. A reload makes the old workers close every idle keep-alive
 * connection at once, and a client that had just sent its next request on one gets no answer. So
 * hostctl (nginx_reload.py) creates the closing flag for a second before it reloads: requests go to
 * the twin, whose keepalive_timeout 0 answers `Connection: close` and ends the connection after the
 * response, and no busy connection is idle when the old workers get the signal. A named location
 * keeps the request as it came (URI, method, body); recursive_error_pages lets the twin's own
 * error pages (503 with Retry-After) still answer.
 */
function proxyLocations(o: NginxSiteOptions, overloadLimits: string[]): string[] {
    const proxy = proxyDirectives(o, overloadLimits);
    return [
        `    location / {`,
        `        if (-f ${hostPath("nginxClosingFlag")}) {`,
        `            return 418;`,
        `        }`,
        `        error_page 418 = ${CLOSING_LOCATION};`,
        `        recursive_error_pages on;`,
        ...proxy,
        `    }`,
        ``,
        `    location ${CLOSING_LOCATION} {`,
        `        keepalive_timeout 0;`,
        ...proxy,
        `    }`,
    ];
}

function proxyDirectives(o: NginxSiteOptions, overloadLimits: string[]): string[] {
    return [
        `        proxy_pass http://${o.appName};`,
        `        proxy_http_version 1.1;`,
        `        proxy_set_header Connection "";`,
        `        proxy_set_header Host $host;`,
        `        proxy_set_header X-Real-IP $remote_addr;`,
        `        # This is the edge: a client's own X-Forwarded-For is not passed on.`,
        `        proxy_set_header X-Forwarded-For $remote_addr;`,
        `        proxy_set_header X-Forwarded-Proto $scheme;`,
        `        proxy_set_header X-Request-ID $request_id;`,
        `        proxy_buffering on;`,
        `        proxy_buffers 8 16k;`,
        `        proxy_buffer_size 32k;`,
        `        proxy_connect_timeout ${o.connectTimeout}s;`,
        `        proxy_send_timeout ${o.readTimeout}s;`,
        `        proxy_read_timeout ${o.readTimeout}s;`,
        `        # A failed or refused node: try the next one (nginx never retries non-idempotent requests).`,
        `        proxy_next_upstream error timeout http_502 http_503;`,
        `        proxy_next_upstream_tries ${o.nextUpstreamTries};`,
        `        proxy_next_upstream_timeout ${o.connectTimeout * 2}s;`,
        ...overloadLimits,
    ];
}

/** The site itself on 443: TLS, HSTS, hidden files refused, static files, the proxy. */
function tlsServer(o: NginxSiteOptions, p: SiteParts, overload: OverloadParts): string[] {
    return [
        `server {`,
        `    ${p.listen443("")}`,
        ...p.http2On,
        `    server_name ${p.names};`,
        ...indent(p.tlsLines, 4),
        ...indent(p.hsts, 4),
        `    client_max_body_size ${o.clientMaxBodySize};`,
        ``,
        `    # Hidden files (.git, .env) are never served.`,
        `    location ~ /\\. {`,
        `        deny all;`,
        `    }`,
        ...staticLocation(o, p.hsts),
        ``,
        ...proxyLocations(o, overload.limits),
        ...overload.location,
        `}`,
    ];
}

function statusServer(o: NginxSiteOptions): string[] {
    return [
        `# Private status listener: stub_status for the exporter and operators, never public.`,
        `server {`,
        `    listen ${o.statusListen.address}:${o.statusListen.port};`,
        `    server_name _;`,
        `    access_log off;`,
        ...o.statusAllow.map(a => `    allow ${a};`),
        `    deny all;`,
        `    location = /stub_status {`,
        `        stub_status;`,
        `    }`,
        ...(o.pairVerdict
            ? [
                  // Date and Last-Modified both come from this LB's clock: the peer tells a stale verdict without comparing clocks.
                  `    location = ${o.pairVerdict.urlPath} {`,
                  `        alias ${o.pairVerdict.file};`,
                  `        default_type application/json;`,
                  `    }`,
              ]
            : []),
        `    location / {`,
        `        return 404;`,
        `    }`,
        `}`,
    ];
}

export function renderNginxSite(o: NginxSiteOptions): string {
    if (o.serverNames.length === 0) throw new Error("the site needs at least one server name");
    const p = siteParts(o);
    const overload = overloadParts(o, p.hsts);
    return [
        `# Load-balancer site for ${o.appName}, rendered by pycluster. Change the stack configuration, not this file.`,
        ``,
        ...overload.zone,
        upstreamBlock(o),
        ``,
        ...catchAllServer(o, p),
        ``,
        ...redirectServer(p, o.acmePeer),
        ``,
        ...tlsServer(o, p, overload),
        ``,
        ...statusServer(o),
        ``,
    ].join("\n");
}
