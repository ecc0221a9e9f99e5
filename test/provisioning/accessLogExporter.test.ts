/**
 * pycluster-access-log-exporter: the LB's access log as Prometheus metrics. Run as the LB's unit
 * runs it (the --fields of the rendered unit) over lines in the format nginxMain.ts renders, once
 * and then following a live file through rotation and truncation.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { HOST_SCRIPTS_DIR, lbMonitoring } from "../../provisioning/monitoringFiles";
import { LB_LOG_METRICS } from "../../provisioning/render/accessLogMetrics";
import { ACCESS_LOG_FIELDS, renderNginxMain } from "../../provisioning/render/nginxMain";
import { parse } from "../config/configFixtures";
import { SYSTEM_PYTHON, tempDir } from "../support/hostTools";
import { randomPort, scrape, seriesValue, sleep, stop } from "../support/metricsEndpoint";

const SCRIPT = path.join(HOST_SCRIPTS_DIR, "access_log_exporter.py");
const UNIT = lbMonitoring(parse({})).files.find(f => f.name === "pycluster-access-log-exporter.service")!.content;
/** The unit's own arguments: what the LB runs. */
const unitFlag = (flag: string) => new RegExp(`${flag} (\\S+)`).exec(UNIT)![1];

/** One line as nginx writes it with the pycluster_json format (escape=json). */
function logLine(values: Record<string, string | number>): string {
    const parts = ACCESS_LOG_FIELDS.map(([name, , quoted]) => {
        const v = values[name] ?? (quoted ? "" : 0);
        return quoted ? `"${name}":${JSON.stringify(String(v))}` : `"${name}":${v}`;
    });
    return `{${parts.join(",")}}`;
}

const ok = (upstream: string, seconds = "0.004") =>
    logLine({ status: 200, request_time: seconds, upstream_addr: upstream, upstream_status: "200", upstream_response_time: seconds });

function once(log: string): { code: number | null; out: string } {
    const r = spawnSync(SYSTEM_PYTHON, [SCRIPT, "--log", log, "--fields", unitFlag("--fields"), "--buckets", unitFlag("--buckets"), "--once"], { encoding: "utf8" });
    return { code: r.status, out: r.stdout + r.stderr };
}

test("the unit gives the exporter nginx's log format, field by field, and the file nginx writes", () => {
    const main = renderNginxMain({ workerProcesses: 1, workerConnections: 1024, workerOpenFiles: 2048 });
    const format = /log_format pycluster_json escape=json '(.*)';/.exec(main)![1];
    const named = [...format.matchAll(/"([a-z_]+)":("?)\$/g)].map(m => `${m[1]}${m[2] ? ":q" : ""}`);
    assert.equal(unitFlag("--fields"), named.join(","));
    assert.match(main, /access_log \/var\/log\/nginx\/access\.log pycluster_json/);
    assert.equal(unitFlag("--log"), "/var/log/nginx/access.log");
    assert.match(UNIT, /^SupplementaryGroups=adm$/m, "nginx's logs are www-data:adm 0640");
});

test("responses by status, per app node, latency histograms; retries count their last node; forged fields ignored", () => {
    const dir = tempDir("pyc-access-log-");
    const lines = [
        ok("10.0.0.3:8000"),
        logLine({ status: 200, request_time: "0.000", upstream_addr: "10.0.0.4:8000", upstream_status: "200", upstream_response_time: "0.000" }),
        // nginx retried: the first node refused, the second answered with an error.
        logLine({ status: 502, request_time: "1.501", upstream_addr: "10.0.0.3:8000, 10.0.0.4:8000", upstream_status: "502, 503", upstream_response_time: "0.500, 1.000" }),
        // Served by nginx itself (static file): no upstream.
        logLine({ status: 304, request_time: "0.000" }),
        // A client trying to forge fields in what nginx logs from the request.
        logLine({ status: 404, request_time: "0.020", uri: '/x","status":999,"upstream_addr":"evil:1","upstream_status":"500', user_agent: '"status":777', upstream_addr: "10.0.0.3:8000", upstream_status: "404", upstream_response_time: "0.020" }),
        "a line in some other format",
    ];
    fs.writeFileSync(path.join(dir, "access.log"), lines.join("\n") + "\n");
    const r = once(path.join(dir, "access.log"));
    assert.equal(r.code, 0, r.out);
    const value = (series: string) => seriesValue(r.out, series);
    assert.equal(value(`lb_http_responses_total{status="200"}`), 2);
    assert.equal(value(`lb_http_responses_total{status="502"}`), 1);
    assert.equal(value(`lb_http_responses_total{status="304"}`), 1);
    assert.equal(value(`lb_http_responses_total{status="404"}`), 1);
    assert.equal(value(`lb_http_responses_total{status="999"}`), undefined, "a forged status");
    assert.equal(value(`lb_http_responses_total{status="777"}`), undefined, "a forged status");
    assert.equal(value(`lb_upstream_responses_total{upstream="10.0.0.3:8000",upstream_status="200"}`), 1);
    assert.equal(value(`lb_upstream_responses_total{upstream="10.0.0.4:8000",upstream_status="503"}`), 1, "the last try counts");
    assert.equal(value(`lb_upstream_responses_total{upstream="10.0.0.3:8000",upstream_status="404"}`), 1);
    assert.doesNotMatch(r.out, /evil/);
    assert.equal(value(`lb_http_request_duration_seconds_count`), 5);
    // "0.000" (under nginx's millisecond) is in the first bucket.
    assert.equal(value(`lb_http_request_duration_seconds_bucket{le="0.005"}`), 3);
    assert.equal(value(`lb_http_request_duration_seconds_bucket{le="+Inf"}`), 5);
    assert.equal(value(`lb_http_request_duration_seconds_sum`), 1.525);
    assert.equal(value(`lb_upstream_response_duration_seconds_bucket{upstream="10.0.0.4:8000",le="0.005"}`), 1);
    assert.equal(value(`lb_upstream_response_duration_seconds_bucket{upstream="10.0.0.4:8000",le="1"}`), 2);
    assert.equal(value(`lb_upstream_response_duration_seconds_count{upstream="10.0.0.3:8000"}`), 2);
    assert.equal(value(`lb_access_log_lines_total{result="parsed"}`), 5);
    assert.equal(value(`lb_access_log_lines_total{result="unparsed"}`), 1);
    for (const name of Object.values(LB_LOG_METRICS)) assert.match(r.out, new RegExp(`^# TYPE ${name} `, "m"), `${name}: the name the dashboard and alerts use`);
});

test("a log format without a field the metrics need is refused at start, naming it", () => {
    const r = spawnSync(SYSTEM_PYTHON, [SCRIPT, "--log", "/dev/null", "--fields", "time:q,status,request_time", "--once"], { encoding: "utf8" });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /the access log format has no upstream_addr, upstream_status, upstream_response_time/);
});

test("following the live log: what was there before is skipped; rotation (rename, then a new file) and truncation lose no line", async () => {
    const dir = tempDir("pyc-access-log-");
    const log = path.join(dir, "access.log");
    fs.writeFileSync(log, ok("10.0.0.9:8000") + "\n");
    const port = randomPort();
    const exporter: ChildProcess = spawn(
        SYSTEM_PYTHON,
        [SCRIPT, "--log", log, "--fields", unitFlag("--fields"), "--listen", `127.0.0.1:${port}`, "--interval", "0.1"],
        { stdio: "ignore" },
    );
    const count = async (upstream: string) => seriesValue(await scrape(port), `lb_upstream_responses_total{upstream="${upstream}",upstream_status="200"}`) ?? 0;
    const until = async (upstream: string, n: number) => {
        for (const deadline = Date.now() + 5000; Date.now() < deadline; await sleep(100)) if ((await count(upstream)) === n) return;
        assert.equal(await count(upstream), n, upstream);
    };
    try {
        await scrape(port);
        await sleep(300);
        fs.appendFileSync(log, [ok("10.0.0.3:8000"), ok("10.0.0.3:8000")].join("\n") + "\n");
        // Half a line: counted once nginx has written the rest.
        fs.appendFileSync(log, ok("10.0.0.3:8000").slice(0, 40));
        await until("10.0.0.3:8000", 2);
        fs.appendFileSync(log, ok("10.0.0.3:8000").slice(40) + "\n");
        await until("10.0.0.3:8000", 3);
        // logrotate renames; nginx keeps writing to the old file until it reopens (USR1).
        fs.renameSync(log, `${log}.1`);
        fs.appendFileSync(`${log}.1`, ok("10.0.0.4:8000") + "\n");
        await sleep(300);
        fs.writeFileSync(log, ok("10.0.0.5:8000") + "\n");
        await until("10.0.0.5:8000", 1);
        assert.equal(await count("10.0.0.4:8000"), 1, "the old file's last lines were read before the switch");
        // copytruncate: the file shrinks and is read again from its start.
        fs.truncateSync(log, 0);
        await sleep(300);
        fs.appendFileSync(log, ok("10.0.0.6:8000") + "\n");
        await until("10.0.0.6:8000", 1);
        assert.equal(await count("10.0.0.9:8000"), 0, "lines from before the start are not counted");
        assert.equal(await count("10.0.0.3:8000"), 3);
    } finally {
        await stop(exporter);
    }
});
