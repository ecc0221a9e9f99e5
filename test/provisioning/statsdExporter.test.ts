/**
 * pycluster-statsd-exporter: the statsd lines gunicorn sends, as Prometheus
 * metrics, and the worker status read from the app unit's cgroup. First the
 * mapping, then a real gunicorn (the rendered gunicorn.conf.py with
 * statsd_host) feeding a real exporter, its processes in a stand-in cgroup.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ChildProcess, spawn } from "child_process";
import * as dgram from "dgram";
import * as fs from "fs";
import * as path from "path";
import { HOST_SCRIPTS_DIR } from "../../provisioning/monitoringFiles";
import { GUNICORN_METRICS } from "../../provisioning/render/prometheus";
import { renderGunicornConfig } from "../../provisioning/render/gunicornConfig";
import { childPids } from "../../local/procs";
import { missingTools, SAMPLE_APP, SYSTEM_PYTHON, tempDir } from "../support/hostTools";
import { randomPort, scrape, seriesValue, sleep, stop } from "../support/metricsEndpoint";

function startExporter(statsd: number, http: number, cgroupRoot?: string): ChildProcess {
    const unit = cgroupRoot ? ["--unit", "webapp.service", "--app", "webapp", "--cgroup-root", cgroupRoot] : [];
    return spawn(SYSTEM_PYTHON, [path.join(HOST_SCRIPTS_DIR, "statsd_exporter.py"), "--statsd", `127.0.0.1:${statsd}`, "--listen", `127.0.0.1:${http}`, ...unit], { stdio: "ignore" });
}

test("statsd lines map to well-named Prometheus metrics, labelled with the app", async () => {
    const [statsd, http] = [randomPort(), randomPort()];
    const exporter = startExporter(statsd, http);
    try {
        await scrape(http);
        const socket = dgram.createSocket("udp4");
        const lines = [
            "webapp.gunicorn.workers:5|g",
            "webapp.gunicorn.requests:1|c|@1.0",
            "webapp.gunicorn.request.status.200:1|c|@1.0",
            "webapp.gunicorn.request.status.500:1|c|@1.0",
            "webapp.gunicorn.request.duration:12.5|ms",
            "webapp.gunicorn.log.error:1|c|@1.0",
            "webapp.gunicorn.workers:4|g",
            "something.else:1|c",
            "garbage",
            // Several lines in one datagram are fine too.
            "webapp.gunicorn.requests:1|c\nwebapp.gunicorn.request.duration:2000|ms",
        ];
        for (const l of lines) await new Promise<void>((resolve, reject) => socket.send(l, statsd, "127.0.0.1", e => (e ? reject(e) : resolve())));
        socket.close();
        await sleep(300);
        const text = await scrape(http);
        // gunicorn reports its worker count only when it changes: the count comes from the cgroup instead.
        assert.equal(seriesValue(text, `gunicorn_workers{app="webapp"}`), undefined);
        assert.equal(seriesValue(text, `gunicorn_requests_total{app="webapp"}`), 2);
        assert.equal(seriesValue(text, `gunicorn_responses_total{app="webapp",status="200"}`), 1);
        assert.equal(seriesValue(text, `gunicorn_responses_total{app="webapp",status="500"}`), 1);
        assert.equal(seriesValue(text, `gunicorn_log_messages_total{app="webapp",level="error"}`), 1);
        assert.equal(seriesValue(text, `gunicorn_request_duration_seconds_bucket{app="webapp",le="0.025"}`), 1);
        assert.equal(seriesValue(text, `gunicorn_request_duration_seconds_bucket{app="webapp",le="2.5"}`), 2);
        assert.equal(seriesValue(text, `gunicorn_request_duration_seconds_count{app="webapp"}`), 2);
        assert.equal(seriesValue(text, `gunicorn_request_duration_seconds_sum{app="webapp"}`), 2.0125);
        assert.equal(seriesValue(text, "statsd_exporter_unmapped_total"), 2);
        assert.equal(seriesValue(text, "statsd_exporter_datagrams_total"), lines.length);
        const served = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map(m => m[1]));
        for (const name of [GUNICORN_METRICS.requests, GUNICORN_METRICS.responses, GUNICORN_METRICS.requestDuration, GUNICORN_METRICS.logMessages]) assert.ok(served.has(name), name);
        assert.equal((await fetch(`http://127.0.0.1:${http}/other`)).status, 404);
    } finally {
        await stop(exporter);
    }
});

test("a real gunicorn with the rendered statsd_host: requests reach the exporter; workers counted in its unit's cgroup", async t => {
    const reason = missingTools(["gunicorn", "gevent"]);
    if (reason) return t.skip(reason);
    const [statsd, http, app] = [randomPort(), randomPort(), randomPort()];
    const dir = tempDir("pyc-statsd-");
    const conf = path.join(dir, "gunicorn.conf.py");
    fs.writeFileSync(
        conf,
        renderGunicornConfig({
            appName: "webapp",
            bindAddress: "127.0.0.1",
            port: app,
            appRoot: SAMPLE_APP,
            workerClass: "gevent",
            workers: 3,
            workerConnections: 100,
            backlog: 128,
            timeout: 30,
            gracefulTimeout: 5,
            keepalive: 5,
            maxRequests: 0,
            maxRequestsJitter: 0,
            forwardedAllowIps: ["127.0.0.1"],
            accessLog: false,
            gunicornVersion: "20.1.0",
            statsdHost: `127.0.0.1:${statsd}`,
        }),
    );
    // A stand-in for /sys/fs/cgroup: the unit's cgroup.procs lists the master and its workers.
    const cgroupRoot = path.join(dir, "cgroup");
    const procs = path.join(cgroupRoot, "system.slice", "webapp.service", "cgroup.procs");
    fs.mkdirSync(path.dirname(procs), { recursive: true });
    fs.writeFileSync(procs, "");
    const exporter = startExporter(statsd, http, cgroupRoot);
    const gunicorn = spawn(SYSTEM_PYTHON, ["-m", "gunicorn", "-c", conf, "app:application"], { cwd: SAMPLE_APP, stdio: "ignore", env: { ...process.env, APP_STATE_DIR: dir } });
    try {
        await scrape(http);
        let ok = 0;
        const deadline = Date.now() + 20_000;
        while (ok < 5 && Date.now() < deadline) {
            const res = await fetch(`http://127.0.0.1:${app}/healthz`).catch(() => undefined);
            if (res?.status === 200) ok++;
            else await sleep(200);
        }
        assert.equal(ok, 5, "gunicorn serves");
        assert.equal(seriesValue(await scrape(http), `gunicorn_up{app="webapp"}`), 0, "an empty cgroup: no master");
        // All three workers booted (one is enough to serve).
        let children: number[] = [];
        while (Date.now() < deadline && children.length < 3) {
            children = childPids(gunicorn.pid!);
            if (children.length < 3) await sleep(200);
        }
        assert.equal(children.length, 3);
        fs.writeFileSync(procs, [gunicorn.pid, ...children].join("\n") + "\n");
        let text = "";
        while (Date.now() < deadline) {
            text = await scrape(http);
            if ((seriesValue(text, `gunicorn_responses_total{app="webapp",status="200"}`) ?? 0) >= 5) break;
            await sleep(300);
        }
        assert.equal(seriesValue(text, `gunicorn_up{app="webapp"}`), 1, text);
        assert.equal(seriesValue(text, `gunicorn_workers{app="webapp"}`), 3, text);
        assert.ok((seriesValue(text, `gunicorn_responses_total{app="webapp",status="200"}`) ?? 0) >= 5);
        assert.ok((seriesValue(text, `gunicorn_request_duration_seconds_count{app="webapp"}`) ?? 0) >= 5);
        assert.equal(seriesValue(text, "statsd_exporter_unmapped_total"), 0, "gunicorn sends nothing the exporter does not map");
        const served = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map(m => m[1]));
        for (const name of Object.values(GUNICORN_METRICS).filter(n => n !== GUNICORN_METRICS.logMessages)) assert.ok(served.has(name), name);
        // The master gone: its processes leave the cgroup listing dead PIDs behind for a moment.
        await stop(gunicorn);
        const after = await scrape(http);
        assert.equal(seriesValue(after, `gunicorn_up{app="webapp"}`), 0);
        assert.equal(seriesValue(after, `gunicorn_workers{app="webapp"}`), 0);
    } finally {
        await stop(gunicorn);
        await stop(exporter);
    }
});
