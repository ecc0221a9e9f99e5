import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { ACME_HOP_HEADER, MOZILLA_INTERMEDIATE_CIPHERS, NginxSiteOptions, renderNginxSite } from "../../../provisioning/render/nginx";
import { renderNginxMain } from "../../../provisioning/render/nginxMain";
import { hostctl, missingTools, sh, tempDir } from "../../support/hostTools";
import { SITE, block } from "../../support/nginxSite";

test("main context: workers and limits sized by the caller, a JSON access log with upstream fields", () => {
    const main = renderNginxMain({ workerProcesses: 7, workerConnections: 17143, workerOpenFiles: 17271 });
    assert.match(main, /^worker_processes 7;$/m);
    assert.match(main, /^worker_rlimit_nofile 17271;$/m);
    assert.match(block(main, /^events/m), /worker_connections 17143;/);
    const format = /log_format pycluster_json escape=json '(.*)';/.exec(main)![1];
    const sample = format.replace(/\$[a-z_]+/g, v => (["$status", "$body_bytes_sent", "$request_time"].includes(v) ? "1" : "x"));
    const fields = JSON.parse(sample);
    for (const f of ["upstream_addr", "upstream_status", "upstream_response_time", "upstream_connect_time", "status", "request_time", "request_id"]) assert.ok(f in fields, f);
    assert.match(main, /access_log \/var\/log\/nginx\/access.log pycluster_json/);
    assert.match(main, /include pycluster\/\*\.conf;/);
    assert.throws(() => renderNginxMain({ workerProcesses: 1, workerConnections: 5000, workerOpenFiles: 1024 }), /must cover worker_connections/);
});

test("upstream: exactly the app nodes, shared zone, method before keepalive, passive health checks", () => {
    const up = block(renderNginxSite(SITE), /^upstream webapp/m);
    assert.deepEqual(up.match(/server \S+/g), ["server 10.120.0.3:8000", "server 10.120.0.4:8000"]);
    assert.match(up, /zone webapp_upstream 256k;/);
    assert.ok(up.indexOf("least_conn;") < up.indexOf("keepalive 128;"));
    assert.match(up, /max_fails=3 fail_timeout=10s/);
    assert.match(up, /keepalive_timeout 60s;/);
    assert.doesNotMatch(block(renderNginxSite({ ...SITE, method: "round_robin" }), /^upstream/m), /least_conn|ip_hash/);
    assert.match(block(renderNginxSite({ ...SITE, method: "ip_hash" }), /^upstream/m), /ip_hash;/);
    assert.match(renderNginxSite({ ...SITE, upstreams: [{ address: "10.0.0.9", port: 9000, down: true }] }), /server 10.0.0.9:9000 max_fails=3 fail_timeout=10s max_conns=30000 down;/);
    assert.throws(() => renderNginxSite({ ...SITE, upstreams: [] }), /at least one app node/);
});

/** The proxying location; its twin for the moment before a reload must proxy the same way. */
function proxyLocation(site: string): string {
    const loc = block(site, /location \/ \{\n\s+if \(-f/);
    const body = (text: string) => text.slice(text.indexOf("proxy_pass"), text.lastIndexOf("}"));
    assert.equal(body(block(site, /location @closing \{/)), body(loc), "the closing twin proxies exactly as the location does");
    return loc;
}

test("before a reload (the closing flag) requests go to the twin that closes each connection after its response", () => {
    const site = renderNginxSite(SITE);
    const loc = proxyLocation(site);
    assert.match(loc, /^location \/ \{\n {8}if \(-f \/run\/pycluster\/nginx-closing\) \{\n {12}return 418;\n {8}\}\n {8}error_page 418 = @closing;\n {8}recursive_error_pages on;\n/);
    assert.match(block(site, /location @closing \{/), /^location @closing \{\n {8}keepalive_timeout 0;\n/);
    assert.match(block(site, /location @closing \{/), /error_page 502 503 = @overloaded;/, "the twin still answers overload with 503 + Retry-After");
});

test("proxying: HTTP/1.1 keepalive to the app, the seed's headers, bounded retries", () => {
    const loc = proxyLocation(renderNginxSite(SITE));
    for (const line of [
        "proxy_pass http://webapp;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_set_header Host $host;",
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_buffering on;",
        "proxy_buffers 8 16k;",
        "proxy_buffer_size 32k;",
        "proxy_connect_timeout 5s;",
        "proxy_read_timeout 75s;",
        "proxy_next_upstream error timeout http_502 http_503;",
        "proxy_next_upstream_tries 3;",
    ]) {
        assert.ok(loc.includes(line), line);
    }
});

test("overload: a cluster-wide request rate, a node's max_conns, and every refusal a 503 with Retry-After", () => {
    const site = renderNginxSite(SITE);
    assert.match(site, /^limit_req_zone "all" zone=webapp_rate:1m rate=12000r\/s;$/m, "one key: the cluster's capacity, not a per-client quota");
    assert.ok(site.indexOf("limit_req_zone") < site.indexOf("upstream webapp"), "in the http context, before the servers");
    const up = block(site, /^upstream webapp/m);
    assert.deepEqual(up.match(/max_conns=\d+/g), ["max_conns=30000", "max_conns=30000"]);
    const loc = proxyLocation(site);
    assert.match(loc, /limit_req zone=webapp_rate burst=12000 nodelay;\n\s+limit_req_status 503;/);
    assert.match(loc, /error_page 502 503 = @overloaded;/, "a refused request or no node to take it: 503, never 502");
    const overloaded = block(site, /location @overloaded/);
    assert.match(overloaded, /add_header Retry-After 1 always;/);
    assert.match(overloaded, /add_header Strict-Transport-Security "max-age=63072000" always;/, "HSTS repeated: add_header in a location drops the server's");
    assert.match(overloaded, /return 503 "overloaded: retry after 1 s\\n";/);
    assert.match(overloaded, /default_type text\/plain;/);
    // The status listener and the ACME challenge are never limited.
    assert.doesNotMatch(block(site, /server \{\n\s+listen 127\.0\.0\.1:8080;/), /limit_req/);
    assert.doesNotMatch(block(site, /server \{\n\s+listen 80;/), /limit_req|@overloaded/);
    // Without overload options (not sized), no limits at all.
    const unlimited = renderNginxSite({ ...SITE, overload: undefined });
    assert.doesNotMatch(unlimited, /limit_req|max_conns|@overloaded|Retry-After/);
});

test("HTTP redirects to HTTPS except ACME challenges; unknown hosts get 444", () => {
    const site = renderNginxSite(SITE);
    const http = block(site, /server \{\n\s+listen 80;/);
    assert.match(http, /server_name 203\.0\.113\.50;/);
    assert.match(http, /location \/\.well-known\/acme-challenge\/ \{\s+root \/var\/www\/acme;/);
    assert.match(http, /return 301 https:\/\/\$host\$request_uri;/);
    const fallback = block(site, /server \{\n\s+listen 80 default_server/);
    assert.match(fallback, /server_name _;/);
    assert.match(fallback, /return 444;/);
    assert.match(fallback, /backlog=12500/);
});

test("a pair's LB asks its peer for a challenge token it does not have, one hop only; a single LB serves its own", () => {
    const single = block(renderNginxSite({ ...SITE, serverNames: ["www.example.com"], hasDomain: true }), /server \{\n\s+listen 80;/);
    assert.doesNotMatch(single, /acme_peer|proxy_pass/);
    const http = block(renderNginxSite({ ...SITE, serverNames: ["www.example.com"], hasDomain: true, acmePeer: "10.120.0.126" }), /server \{\n\s+listen 80;/);
    assert.match(http, /location \/\.well-known\/acme-challenge\/ \{\s+root \/var\/www\/acme;\s+#[^\n]*\n\s+try_files \$uri @acme_peer;\s+\}/);
    const peer = block(http, /location @acme_peer \{/);
    assert.match(peer, new RegExp(`if \\(\\$http_x_pycluster_acme_hop\\) \\{\\s+return 404;\\s+\\}`), "a request the peer passed is not passed back");
    assert.match(peer, new RegExp(`proxy_set_header ${ACME_HOP_HEADER} 1;`));
    assert.match(peer, /proxy_set_header Host \$host;/, "the peer's site answers to the domain");
    assert.match(peer, /proxy_pass http:\/\/10\.120\.0\.126:80;/);
    assert.doesNotMatch(peer, /limit_req|@overloaded/);
});

test("TLS per Mozilla intermediate, HSTS, and http2 in the installed nginx's syntax", () => {
    const old = renderNginxSite(SITE);
    assert.match(old, /listen 443 ssl http2;/);
    assert.doesNotMatch(old, /http2 on;/);
    assert.match(old, /ssl_session_tickets off;/, "tickets never rotate before 1.23.2");
    const modern = renderNginxSite({ ...SITE, nginxVersion: "1.26.3" });
    assert.match(modern, /listen 443 ssl;\n\s+http2 on;/);
    assert.doesNotMatch(modern, /listen 443 ssl http2/);
    assert.doesNotMatch(modern, /ssl_session_tickets/);
    assert.match(old, /ssl_protocols TLSv1\.2 TLSv1\.3;/);
    assert.ok(old.includes(`ssl_ciphers ${MOZILLA_INTERMEDIATE_CIPHERS};`));
    for (const cipher of MOZILLA_INTERMEDIATE_CIPHERS.split(":")) assert.match(cipher, /^ECDHE-(ECDSA|RSA)-(AES\d+-GCM-SHA\d+|CHACHA20-POLY1305)$/, "ECDHE + AEAD only");
    assert.match(old, /ssl_prefer_server_ciphers off;/);
    assert.match(old, /add_header Strict-Transport-Security "max-age=63072000" always;/);
    assert.doesNotMatch(renderNginxSite({ ...SITE, hstsMaxAge: 0 }), /Strict-Transport-Security/);
});

test("with a domain, unknown SNI is refused during the handshake", () => {
    const site = renderNginxSite({ ...SITE, serverNames: ["www.example.com"], hasDomain: true });
    const fallback = block(site, /server \{\n\s+listen 80 default_server/);
    assert.match(fallback, /ssl_reject_handshake on;/);
    assert.doesNotMatch(fallback, /ssl_certificate/);
    assert.match(site, /server_name www\.example\.com;/);
});

test("hidden files denied; static files with HSTS repeated; status listener private", () => {
    const site = renderNginxSite({ ...SITE, staticFiles: { urlPath: "/static/", root: "/var/www/webapp/static" } });
    assert.match(site, /location ~ \/\\\. \{\s+deny all;/);
    const stat = block(site, /location \/static\/ /);
    assert.match(stat, /alias \/var\/www\/webapp\/static\/;/);
    assert.match(stat, /Strict-Transport-Security/);
    const status = block(site, /server \{\n\s+listen 127\.0\.0\.1:8080;/);
    assert.match(status, /allow 10\.120\.0\.0\/24;\s+allow 127\.0\.0\.1;\s+deny all;/);
    assert.match(status, /location = \/stub_status \{\s+stub_status;/);
    assert.doesNotMatch(status, /verdict/, "a single LB publishes no health verdict");
});

test("a pair's LB publishes its check's verdict on the status listener (private), from the file the check writes", () => {
    const site = renderNginxSite({ ...SITE, pairVerdict: { urlPath: "/pycluster-upstream-verdict", file: "/run/pycluster/upstream-verdict.json" } });
    const status = block(site, /server \{\n\s+listen 127\.0\.0\.1:8080;/);
    assert.match(status, /deny all;[\s\S]*location = \/pycluster-upstream-verdict \{\s+alias \/run\/pycluster\/upstream-verdict\.json;\s+default_type application\/json;\s+\}/);
});

// --- the real nginx ---------------------------------------------------------

let tls: { cert: string; key: string } | undefined;
function certificate(): { cert: string; key: string } {
    if (!tls) {
        const dir = tempDir("pyc-tls-");
        const r = sh("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=test",
            "-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem")]);
        assert.equal(r.code, 0, r.output);
        tls = { cert: fs.readFileSync(path.join(dir, "cert.pem"), "utf8"), key: fs.readFileSync(path.join(dir, "key.pem"), "utf8") };
    }
    return tls;
}

/** Stages files the way hostctl does (relative includes) and runs its nginx validation. */
function validate(main: string, site: string) {
    const stage = tempDir("pyc-nginx-");
    fs.mkdirSync(path.join(stage, "pycluster", "tls"), { recursive: true });
    fs.writeFileSync(path.join(stage, "nginx.conf"), main);
    fs.writeFileSync(path.join(stage, "pycluster", "site.conf"), site);
    fs.writeFileSync(path.join(stage, "pycluster", "tls", "fullchain.pem"), certificate().cert);
    fs.writeFileSync(path.join(stage, "pycluster", "tls", "privkey.pem"), certificate().key);
    fs.copyFileSync("/etc/nginx/mime.types", path.join(stage, "mime.types"));
    const result = hostctl(["nginx-validate", "--conf", path.join(stage, "nginx.conf")]);
    fs.rmSync(stage, { recursive: true });
    return result;
}

const installedNginx = () => /nginx\/(\d+\.\d+\.\d+)/.exec(sh("nginx", ["-v"]).output)![1];
const MAIN = renderNginxMain({ workerProcesses: 2, workerConnections: 60000, workerOpenFiles: 60128 });

test("every rendered variant passes nginx -t of the installed nginx", { skip: missingTools(["nginx"]) }, () => {
    const version = installedNginx();
    const variants: Partial<NginxSiteOptions>[] = [
        {},
        { method: "round_robin" },
        { method: "ip_hash" },
        { serverNames: ["www.example.com"], hasDomain: true },
        { serverNames: ["www.example.com"], hasDomain: true, acmePeer: "10.120.0.126" },
        { hstsMaxAge: 0 },
        { staticFiles: { urlPath: "/static/", root: "/var/www/webapp/static" } },
        { upstreams: [{ address: "10.120.0.3", port: 8000, down: true }, { address: "10.120.0.4", port: 8000 }] },
        { overload: undefined },
        { pairVerdict: { urlPath: "/pycluster-upstream-verdict", file: "/run/pycluster/upstream-verdict.json" } },
        { overload: { requestRate: 5, requestBurst: 5, perNodeConnections: 1, retryAfterSeconds: 30 } },
    ];
    for (const v of variants) {
        const r = validate(MAIN, renderNginxSite({ ...SITE, nginxVersion: version, ...v }));
        assert.equal(r.code, 0, `${JSON.stringify(v)}\n${r.output}`);
    }
    console.log(`nginx ${version}: ${variants.length} site variants pass nginx -t`);
});

test("a broken directive is rejected by the same validation path, with nginx's message", { skip: missingTools(["nginx"]) }, () => {
    const broken = renderNginxSite({ ...SITE, nginxVersion: installedNginx() }).replace("proxy_buffering on;", "proxy_buffering maybe;");
    const r = validate(MAIN, broken);
    assert.equal(r.code, 1);
    assert.match(r.output, /hostctl nginx-validate: nginx rejected the configuration/);
    assert.match(r.output, /invalid value "maybe"/);
});

test("syntax for a newer nginx is refused by an older one (why the version matters)", { skip: missingTools(["nginx"]) }, () => {
    const version = installedNginx();
    if (version >= "1.25.1") return;
    const r = validate(MAIN, renderNginxSite({ ...SITE, nginxVersion: "1.26.3" }));
    assert.equal(r.code, 1);
    assert.match(r.output, /unknown directive "http2"/);
});
