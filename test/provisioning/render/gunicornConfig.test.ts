import { test, after } from "node:test";
import assert from "node:assert/strict";
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import { GunicornConfigOptions, recycleStampPath, renderGunicornConfig } from "../../../provisioning/render/gunicornConfig";
import { childPids } from "../../../local/procs";
import { renderEnvFile } from "../../../provisioning/render/kernel";
import { upstreamBlock } from "../../../provisioning/render/nginxUpstream";
import { hostctl, makeRelease, missingTools, SAMPLE_APP, sh, SYSTEM_PYTHON, tempDir } from "../../support/hostTools";
import { randomPort, sleep, stop } from "../../support/metricsEndpoint";

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
        "max_requests = 0",
        "pycluster_recycle_after_requests = 20000",
        "pycluster_recycle_jitter = 2000",
        'proc_name = "webapp"',
        'errorlog = "-"',
        'chdir = "/srv/webapp/current"',
        "preload_app = False",
    ]) {
        assert.match(conf, new RegExp(`^${line.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`, "m"), line);
    }
});

test("recycling: gevent workers by a graceful reload from post_request; uvicorn workers by max_requests; 0 = never", () => {
    const gevent = renderGunicornConfig(OPTS);
    assert.match(gevent, /^def post_fork\(server, worker\):$/m);
    assert.match(gevent, /^def post_request\(worker, req, environ, resp\):$/m);
    assert.match(gevent, /_os\.kill\(worker\.ppid, _signal\.SIGHUP\)/);
    assert.match(gevent, /open\("\/dev\/shm\/webapp\.recycle", "a\+"\)/);
    const asgi = renderGunicornConfig({ ...OPTS, workerClass: "uvicorn.workers.UvicornWorker", workerConnections: undefined });
    assert.match(asgi, /^max_requests = 20000$/m);
    assert.match(asgi, /^max_requests_jitter = 2000$/m);
    assert.doesNotMatch(asgi, /post_request|SIGHUP/);
    const never = renderGunicornConfig({ ...OPTS, maxRequests: 0, maxRequestsJitter: 0 });
    assert.match(never, /^max_requests = 0$/m);
    assert.doesNotMatch(never, /post_request|SIGHUP/);
});

test("the recycling hooks: one reload per generation, whatever the stamp holds or whether it can be written", () => {
    const dir = tempDir("pyc-hooks-");
    const appName = `pyc-hooks-${process.pid}`;
    const stamp = recycleStampPath(appName);
    try {
        fs.writeFileSync(path.join(dir, "gunicorn.conf.py"), renderGunicornConfig({ ...OPTS, appName, maxRequests: 100, maxRequestsJitter: 0 }));
        // The rendered file run as gunicorn runs it (plain Python), with workers and kill() standing in.
        const out = sh(SYSTEM_PYTHON, ["-c", `
import json, runpy, time, types
conf = runpy.run_path(${JSON.stringify(path.join(dir, "gunicorn.conf.py"))})
sent, warnings = [], []
conf["post_request"].__globals__["_os"] = types.SimpleNamespace(kill=lambda pid, sig: sent.append(pid))
# Above any pid_max: should the stand-in fail to take effect, kill() finds no process.
def worker(ppid=4194305):
    w = types.SimpleNamespace(nr=0, alive=True, ppid=ppid, log=types.SimpleNamespace(info=lambda *a: None, warning=lambda *a: warnings.append(a[0])))
    conf["post_fork"](None, w)
    return w
def serve(w, n):
    for _ in range(n):
        w.nr += 1
        conf["post_request"](w, None, {}, None)
first, second = worker(), worker()
serve(first, 99); below = len(sent)
serve(first, 5); serve(second, 120); one_generation = len(sent)
time.sleep(0.01)
third = worker(); serve(third, 100); next_generation = len(sent)
draining = worker(); draining.alive = False; serve(draining, 200); not_alive = len(sent)
open(${JSON.stringify(stamp)}, "w").write("garbage"); serve(worker(), 100); garbage = len(sent)
import os; os.remove(${JSON.stringify(stamp)}); os.mkdir(${JSON.stringify(stamp)})
serve(worker(), 100); unwritable = len(sent)
print(json.dumps([below, one_generation, next_generation, not_alive, garbage, unwritable, len(warnings)]))
`]);
        assert.equal(out.code, 0, out.output);
        // 0 below the limit; 1 for two workers of one generation; +1 for the next; none from a worker
        // that is leaving; a stamp that holds no time or cannot be written still gives a reload (warned).
        assert.deepEqual(JSON.parse(out.output.trim().split("\n").pop()!), [0, 1, 2, 2, 3, 4, 1]);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
        fs.rmSync(stamp, { recursive: true, force: true });
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

// --- recycling after max requests, on a live gunicorn ----------------------

/** One GET on the agent's connections (kept alive) or on a fresh one; the status and how long it took. */
function get(port: number, agent: http.Agent | false, urlPath = "/"): Promise<{ status: number; ms: number }> {
    const started = Date.now();
    return new Promise((resolve, reject) => {
        const req = http.get({ host: "127.0.0.1", port, path: urlPath, agent, timeout: 30_000 }, res => {
            res.resume();
            res.on("end", () => resolve({ status: res.statusCode ?? 0, ms: Date.now() - started }));
        });
        req.on("timeout", () => req.destroy(new Error("no answer in 30 s")));
        req.on("error", reject);
    });
}

/** Waits (at most 20 s) until gunicorn runs its two workers and `port` (gunicorn's, or nginx's in front) answers 200. */
async function untilServing(gunicorn: ChildProcess, port: number, log: () => string): Promise<void> {
    const deadline = Date.now() + 20_000;
    while (childPids(gunicorn.pid!).length < 2 || !(await get(port, false).then(r => r.status === 200, () => false))) {
        assert.ok(Date.now() < deadline, `port ${port} did not serve within 20 s:\n${log()}`);
        await sleep(200);
    }
}

for (const [workerClass, module, tools] of [
    ["gevent", "app:application", ["gunicorn", "gevent"]],
    ["uvicorn.workers.UvicornWorker", "app:asgi_application", ["gunicorn", "uvicorn"]],
] as const) {
    test(
        `${workerClass}: after max requests a node's workers are replaced without a gap: new connections are answered while the old workers still hold the load balancer's idle keep-alive connections (gunicorn issue #3227)`,
        { skip: missingTools([...tools]) },
        async () => {
            const port = randomPort();
            const dir = tempDir("pyc-recycle-");
            const conf = path.join(dir, "gunicorn.conf.py");
            const gracefulTimeout = 6;
            // Small numbers, the rendered shape: two workers that reach the limit within a few requests of each other.
            const workerConnections = workerClass === "gevent" ? 100 : undefined;
            // An app name of the test's own, for a recycling stamp of its own.
            const appName = `pyc-recycle-${process.pid}`;
            const stamp = recycleStampPath(appName);
            fs.writeFileSync(conf, renderGunicornConfig({ ...OPTS, appName, appRoot: SAMPLE_APP, bindAddress: "127.0.0.1", port, workerClass, workerConnections, workers: 2, gracefulTimeout, maxRequests: 150, maxRequestsJitter: 10 }));
            // A stamp this boot's monotonic clock cannot have written (a wall-clock time) must not stop recycling.
            fs.writeFileSync(stamp, String(Date.now() / 1000));
            const gunicorn = spawn(SYSTEM_PYTHON, ["-m", "gunicorn", "-c", conf, module], { cwd: SAMPLE_APP, stdio: ["ignore", "ignore", "pipe"] });
            let log = "";
            gunicorn.stderr!.on("data", d => (log += d));
            // nginx's upstream keepalive pool: connections that stay open, idle, between requests.
            const pool = new http.Agent({ keepAlive: true, maxSockets: 8 });
            try {
                await untilServing(gunicorn, port, () => log);
                const firstWorkers = childPids(gunicorn.pid!);
                await Promise.all(Array.from({ length: 8 }, () => get(port, pool)));
                // Fresh connections one after the other for longer than graceful_timeout, as nginx opens them
                // beyond its pool: the slowest answer is the longest time the node accepted nothing.
                const answers: { status: number; ms: number }[] = [];
                const started = Date.now();
                // Enough requests for both workers to pass the limit, on a slow machine too.
                while (Date.now() - started < (gracefulTimeout + 3) * 1000 || answers.length < 400) {
                    assert.ok(Date.now() - started < 60_000, `only ${answers.length} answers in 60 s:\n${log}`);
                    answers.push(await get(port, false));
                    await sleep(10);
                }
                assert.deepEqual([...new Set(answers.map(a => a.status))], [200]);
                const slowest = Math.max(...answers.map(a => a.ms));
                // Before: every worker stopped accepting at the limit and waited graceful_timeout for its idle connections.
                // Now at most the new workers' boot (old ones stop accepting within a second of the HUP): a slow machine's margin.
                assert.ok(slowest < 3_000, `a new connection waited ${slowest} ms (graceful_timeout ${gracefulTimeout} s):\n${log}`);
                // Replaced: a new generation serves (the old one may still be draining its idle connections).
                assert.ok(childPids(gunicorn.pid!).filter(p => !firstWorkers.includes(p)).length >= 2, `a new generation of workers:\n${log}`);
            } finally {
                pool.destroy();
                await stop(gunicorn);
                fs.rmSync(dir, { recursive: true, force: true });
                fs.rmSync(stamp, { force: true });
            }
        },
    );
}

// --- leaving workers and the load balancer's idle connections, on a live nginx and gunicorn ---

/** nginx in front of one gunicorn: the rendered upstream block, the proxying the site does. */
function nginxFront(dir: string, listenPort: number, appPort: number, keepaliveTimeout: number): string {
    const upstream = upstreamBlock({ appName: "webapp", upstreams: [{ address: "127.0.0.1", port: appPort }], method: "least_conn", keepalive: 16, keepaliveTimeout });
    return `worker_processes 1;
pid ${dir}/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
${upstream}
    server {
        listen 127.0.0.1:${listenPort};
        location / {
            proxy_pass http://webapp;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`;
}

for (const [label, keepaliveTimeout] of [
    ["nginx's upstream keepalive_timeout shorter than graceful_timeout (the rule config/gunicorn.ts enforces): nginx lets go of its idle connections first; old workers (a reload) and gunicorn (a stop) leave then, closing nothing nginx still keeps", 2],
    ["control, keepalive_timeout longer than graceful_timeout (refused by the config): old workers hold nginx's idle connections until graceful_timeout and close them under it; a stop waits that long", 9],
] as const) {
    test(`gevent: leaving workers and nginx's idle upstream connections: ${label}`, { skip: missingTools(["nginx", "gunicorn", "gevent"]) }, async () => {
        const gracefulTimeout = 6;
        const [appPort, lbPort] = [randomPort(), randomPort()];
        const dir = tempDir("pyc-idle-");
        const conf = path.join(dir, "gunicorn.conf.py");
        const appName = `pyc-idle-${process.pid}`;
        fs.writeFileSync(conf, renderGunicornConfig({ ...OPTS, appName, appRoot: SAMPLE_APP, bindAddress: "127.0.0.1", port: appPort, workers: 2, workerConnections: 100, gracefulTimeout, keepalive: keepaliveTimeout + 15, maxRequests: 0, maxRequestsJitter: 0 }));
        fs.writeFileSync(path.join(dir, "nginx.conf"), nginxFront(dir, lbPort, appPort, keepaliveTimeout));
        const gunicorn = spawn(SYSTEM_PYTHON, ["-m", "gunicorn", "-c", conf, "app:application"], { cwd: SAMPLE_APP, stdio: ["ignore", "ignore", "pipe"] });
        let log = "";
        gunicorn.stderr!.on("data", d => (log += d));
        const nginx = spawn("nginx", ["-p", `${dir}/`, "-c", `${dir}/nginx.conf`, "-e", `${dir}/error.log`, "-g", "daemon off;"], { stdio: ["ignore", "ignore", "pipe"] });
        try {
            await untilServing(gunicorn, lbPort, () => log);
            // 16 requests at once through nginx: its pool keeps 16 connections to the workers, idle after.
            const fillPool = () => Promise.all(Array.from({ length: 16 }, () => get(lbPort, false, "/wait?ms=300")));
            await fillPool();
            const pooled = sh("ss", ["-Htn", "state", "established", "dst", `127.0.0.1:${appPort}`]).output.trim().split("\n").filter(Boolean).length;
            assert.ok(pooled >= 8, `nginx keeps its connections to the app open: ${pooled}`);
            const oldWorkers = childPids(gunicorn.pid!);
            const hup = Date.now();
            process.kill(gunicorn.pid!, "SIGHUP");
            while (oldWorkers.some(p => childPids(gunicorn.pid!).includes(p))) {
                assert.ok(Date.now() - hup < 30_000, `the old workers did not leave in 30 s:\n${log}`);
                await sleep(100);
            }
            const leftAfter = (Date.now() - hup) / 1000;
            assert.equal((await get(lbPort, false)).status, 200, "the new workers serve");
            const forced = /Worker graceful timeout/.test(log);
            // A stop (a restart's first half): the master leaves when its workers have, or kills them at graceful_timeout.
            await fillPool();
            const term = Date.now();
            const exited = new Promise(resolve => gunicorn.once("exit", resolve));
            process.kill(gunicorn.pid!, "SIGTERM");
            await exited;
            const stoppedAfter = (Date.now() - term) / 1000;
            console.log(`keepalive_timeout ${keepaliveTimeout} s, graceful_timeout ${gracefulTimeout} s: ${pooled} pooled connections; old workers left ${leftAfter.toFixed(1)} s after the HUP${forced ? ", closing what they still held at graceful_timeout" : ""}; gunicorn stopped ${stoppedAfter.toFixed(1)} s after TERM`);
            if (keepaliveTimeout < gracefulTimeout) {
                assert.equal(forced, false, `no old worker reached graceful_timeout with connections open:\n${log}`);
                assert.ok(leftAfter < gracefulTimeout, `the old workers left once nginx had closed its idle connections (${leftAfter} s)`);
                assert.ok(stoppedAfter < gracefulTimeout, `a stop waited only for nginx's idle timeout (${stoppedAfter} s)`);
            } else {
                assert.equal(forced, true, `the old workers held nginx's idle connections until graceful_timeout:\n${log}`);
                assert.ok(leftAfter >= gracefulTimeout, `left after ${leftAfter} s`);
                assert.ok(stoppedAfter >= gracefulTimeout, `a stop waited for graceful_timeout (${stoppedAfter} s)`);
            }
        } finally {
            await stop(nginx);
            await stop(gunicorn);
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
}
