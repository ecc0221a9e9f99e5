import { test, after } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { GunicornConfigOptions, renderGunicornConfig } from "../../../provisioning/render/gunicornConfig";
import { renderEnvFile } from "../../../provisioning/render/kernel";
import { hostctl, makeRelease, missingTools, tempDir } from "../../support/hostTools";

const OPTS: GunicornConfigOptions = {
    appName: "webapp",
    bindAddress: "10.120.0.3",
    port: 8000,
    appRoot: "/srv/webapp/current",
    workerClass: "gevent",
    workers: 5,
    workerConnections: 6000,
    backlog: 4096,
    timeout: 30,
    gracefulTimeout: 30,
    keepalive: 75,
    maxRequests: 20000,
    maxRequestsJitter: 2000,
    forwardedAllowIps: ["10.120.0.2"],
    accessLog: false,
    gunicornVersion: "20.1.0",
};

test("binds the node's private address only, and trusts forwarded headers from the LB only", () => {
    const conf = renderGunicornConfig(OPTS);
    assert.match(conf, /^bind = \["10\.120\.0\.3:8000"\]$/m);
    assert.doesNotMatch(conf, /0\.0\.0\.0/);
    assert.match(conf, /^forwarded_allow_ips = "10\.120\.0\.2"$/m);
});

test("gevent workers get worker_connections; every tuning value is rendered", () => {
    const conf = renderGunicornConfig(OPTS);
    for (const line of [
        'worker_class = "gevent"',
        "workers = 5",
        "worker_connections = 6000",
        "backlog = 4096",
        "timeout = 30",
        "graceful_timeout = 30",
        "keepalive = 75",
        "max_requests = 20000",
        "max_requests_jitter = 2000",
        'proc_name = "webapp"',
        'errorlog = "-"',
        'chdir = "/srv/webapp/current"',
        "preload_app = False",
    ]) {
        assert.match(conf, new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m"), line);
    }
});

test("uvicorn workers get no worker_connections; access log and statsd are switches", () => {
    const asgi = renderGunicornConfig({ ...OPTS, workerClass: "uvicorn.workers.UvicornWorker", workerConnections: undefined });
    assert.doesNotMatch(asgi, /worker_connections/);
    assert.match(asgi, /^accesslog = None$/m);
    const logged = renderGunicornConfig({ ...OPTS, accessLog: true, statsdHost: "127.0.0.1:9125" });
    assert.match(logged, /^accesslog = "-"$/m);
    assert.match(logged, /^statsd_host = "127\.0\.0\.1:9125"$/m);
    assert.throws(() => renderGunicornConfig({ ...OPTS, workers: 0 }), /workers must be >= 1/);
});

// --- the real gunicorn, through hostctl's own check ------------------------

const release = { dir: "" };
after(() => release.dir && fs.rmSync(release.dir, { recursive: true, force: true }));

function check(conf: string, module = "app:application", env: Record<string, string> = {}) {
    if (!release.dir) release.dir = makeRelease();
    const dir = tempDir("pyc-gconf-");
    fs.writeFileSync(path.join(dir, "gunicorn.conf.py"), conf);
    fs.writeFileSync(path.join(dir, "env"), renderEnvFile(env));
    const r = hostctl(["app-validate", "--app", "webapp", "--release-dir", release.dir, "--conf", path.join(dir, "gunicorn.conf.py"),
        "--env", path.join(dir, "env"), "--module", module, "--user", "nobody"]);
    fs.rmSync(dir, { recursive: true });
    return r;
}

const real = (o: Partial<GunicornConfigOptions> = {}) => renderGunicornConfig({ ...OPTS, appRoot: release.dir || (release.dir = makeRelease()), ...o });

test("gevent config passes gunicorn --check-config with the sample app (as an unprivileged user)", { skip: missingTools(["gunicorn", "gevent", "runuser"]) }, () => {
    const r = check(real(), "app:application", { DB_PASSWORD: 'p"a$s`w\\ord' });
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /gunicorn: configuration and app load/);
});

test("uvicorn config passes with the sample's ASGI app", { skip: missingTools(["gunicorn", "uvicorn", "runuser"]) }, () => {
    const r = check(real({ workerClass: "uvicorn.workers.UvicornWorker", workerConnections: undefined }), "app:asgi_application");
    assert.equal(r.code, 0, r.output);
});

test("broken configs are rejected by the same path", { skip: missingTools(["gunicorn", "gevent", "runuser"]) }, () => {
    const cases: [string, string, string, RegExp][] = [
        ["unknown worker class", real({ workerClass: "nosuchworker" }), "app:application", /Entry point \('gunicorn\.workers', 'nosuchworker'\) not found|nosuchworker/],
        ["Python syntax error", real() + "workers = (\n", "app:application", /SyntaxError|Failed to read config file/],
        ["missing app callable", real(), "app:nothere", /Failed to find attribute 'nothere'/],
        ["missing module", real(), "nomodule:app", /No module named 'nomodule'/],
    ];
    for (const [what, conf, module, message] of cases) {
        const r = check(conf, module);
        assert.equal(r.code, 1, `${what}: ${r.output}`);
        assert.match(r.output, /gunicorn rejected the new configuration or release; nothing was switched/, what);
        assert.match(r.output, message, what);
    }
});

test("the workers' heartbeat files live on tmpfs, not in a disk-backed /tmp", () => {
    assert.match(renderGunicornConfig(OPTS), /^worker_tmp_dir = "\/dev\/shm"$/m);
});
