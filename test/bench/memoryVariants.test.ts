import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { median, parseVariantOutput, plainHttpSite, VARIANTS, variantNginxConf, variantScript } from "../../bench/lib/memoryVariants";
import { renderNginxSite } from "../../provisioning/render/nginx";
import { renderNginxMain } from "../../provisioning/render/nginxMain";
import { missingTools, sh, tempDir } from "../support/hostTools";

const MAIN = renderNginxMain({ workerProcesses: 1, workerConnections: 19000, workerOpenFiles: 19500 });
const SITE = renderNginxSite({
    appName: "webapp",
    nginxVersion: "1.22.1",
    upstreams: [{ address: "127.0.0.1", port: 8000 }],
    method: "least_conn",
    keepalive: 128,
    keepaliveTimeout: 60,
    connectTimeout: 5,
    readTimeout: 600,
    clientMaxBodySize: "10m",
    serverNames: ["127.0.0.1"],
    hasDomain: false,
    listenBacklog: 4096,
    hstsMaxAge: 63072000,
    statusListen: { address: "127.0.0.1", port: 8080 },
    statusAllow: ["127.0.0.1"],
    nextUpstreamTries: 1,
    overload: { requestRate: 100000, requestBurst: 100000, perNodeConnections: 20000, retryAfterSeconds: 1 },
});

test("a variant's script: loopback only, its own processes ended on exit, the peak sampled over the hold", () => {
    const s = variantScript(VARIANTS.find(v => v.env?.PYTHONMALLOC)!, { nginxDir: "/x/nginx", appDir: "/x/app", requests: 5000, holdMs: 20000, rate: 1000 });
    assert.match(s, /^ip link set lo up$/m);
    assert.match(s, /trap cleanup EXIT/);
    assert.match(s, /kill -QUIT "\$NGX"/);
    assert.match(s, /env PYTHONMALLOC=malloc \/usr\/bin\/python3 -m gunicorn --worker-class gevent --workers 1/);
    assert.match(s, /nginx -c \/x\/nginx\/nginx.conf -p \/x\/nginx\/ -g 'daemon off;' &/);
    assert.match(s, /h2load --h1 -t1 -c5000 -n5000 --rate=100 --rate-period=100ms --connection-active-timeout=55 'https:\/\/127\.0\.0\.1\/wait\?ms=20000'/);
    assert.doesNotMatch(s, /198\.|10\.80\./, "no other host");
    const jemalloc = variantScript(VARIANTS.find(v => v.nginxEnv?.LD_PRELOAD)!, { nginxDir: "/x/nginx", appDir: "/x/app", requests: 10, holdMs: 1000, rate: 10 });
    assert.match(jemalloc, /env LD_PRELOAD=\/usr\/lib\/x86_64-linux-gnu\/libjemalloc\.so\.2 nginx -c \/x\/nginx\/nginx.conf/, "nginx's own environment");
    assert.match(jemalloc, /^env {2}\/usr\/bin\/python3 -m gunicorn/m, "not gunicorn's");
    const plain = variantScript(VARIANTS.find(v => v.plainHttp)!, { nginxDir: "/n", appDir: "/a", requests: 100, holdMs: 5000, rate: 100 });
    assert.match(plain, /'http:\/\/127\.0\.0\.1:8081\/wait\?ms=5000'/);
    // HTTP/2 clients: fewer connections, each carrying its share of the requests; the same request rate.
    const h2 = variantScript(VARIANTS.find(v => v.streamsPerConnection === 10)!, { nginxDir: "/x/nginx", appDir: "/x/app", requests: 5000, holdMs: 20000, rate: 1000 });
    assert.match(h2, /h2load -t1 -c500 -m10 -n5000 --rate=10 --rate-period=100ms /);
    assert.doesNotMatch(h2, /h2load --h1 -t1/, "the held requests over HTTP/2, what h2load negotiates over TLS by default");
    assert.ok(VARIANTS.every(v => (v.streamsPerConnection ?? 1) <= 128), "within nginx's http2_max_concurrent_streams (128), or h2load's extra streams would wait");
});

test("a variant's output: per-request growth of each process tree; a run that did not finish is an error", () => {
    const m = parseVariantOutput("base nginx 14000 app 44000\npeak nginx 136000 app 113000\nrequests: 5000 total, 5000 started, 5000 done, 5000 succeeded, 0 failed, 0 errored, 0 timeout\nApplication protocol: h2\n", 5000);
    assert.equal(Math.round(m.nginxBytes), Math.round((122000 * 1024) / 5000));
    assert.equal(Math.round(m.appBytes), Math.round((69000 * 1024) / 5000));
    assert.equal(m.ok, 5000);
    assert.equal(m.protocol, "h2");
    assert.throws(() => parseVariantOutput("base nginx 1 app 1\n", 10), /did not run through/);
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2);
});

test("every nginx variant is the rendered configuration plus its directives, and nginx -t accepts it", { skip: missingTools(["nginx"]) }, () => {
    for (const v of VARIANTS) {
        const dir = tempDir("pyc-memvar-");
        const conf = variantNginxConf(MAIN, dir, v.nginxDirectives ?? []);
        for (const d of v.nginxDirectives ?? []) assert.match(conf, new RegExp(`^http \\{[\\s\\S]*^    ${d.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m"));
        assert.match(conf, new RegExp(`^pid ${dir}/nginx.pid;$`, "m"));
        fs.mkdirSync(path.join(dir, "pycluster", "tls"), { recursive: true });
        fs.writeFileSync(path.join(dir, "nginx.conf"), conf);
        fs.writeFileSync(path.join(dir, "pycluster", "site.conf"), v.plainHttp ? plainHttpSite(SITE) : SITE);
        fs.copyFileSync("/etc/nginx/mime.types", path.join(dir, "mime.types"));
        const cert = sh("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", path.join(dir, "pycluster/tls/privkey.pem"), "-out", path.join(dir, "pycluster/tls/fullchain.pem"), "-subj", "/CN=x", "-days", "1"]);
        assert.equal(cert.code, 0, cert.output);
        const r = sh("nginx", ["-t", "-q", "-c", path.join(dir, "nginx.conf"), "-p", dir + "/"]);
        assert.equal(r.code, 0, `${v.name}: ${r.output}`);
        fs.rmSync(dir, { recursive: true });
    }
    assert.match(plainHttpSite(SITE), /listen 443 ssl http2;\n    listen 127\.0\.0\.1:8081;/);
    assert.doesNotMatch(plainHttpSite(SITE), /default_server[^\n]*\n    listen 127\.0\.0\.1:8081/, "not the default server's");
});
