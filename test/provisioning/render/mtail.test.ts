/**
 * The access-log program: rendered against the log format nginx.ts renders,
 * then run by the real mtail over log lines in that format.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { renderAccessLogProgram } from "../../../provisioning/render/mtail";
import { ACCESS_LOG_FIELD_NAMES, ACCESS_LOG_FIELDS, renderNginxMain } from "../../../provisioning/render/nginx";
import { missingTools, sh, tempDir } from "../../support/hostTools";

const PROGRAM = renderAccessLogProgram({ fields: ACCESS_LOG_FIELD_NAMES });

/** One line as nginx writes it with the pycluster_json format (escape=json). */
function logLine(values: Record<string, string | number>): string {
    const parts = ACCESS_LOG_FIELDS.map(([name, , quoted]) => {
        const v = values[name] ?? (quoted ? "" : 0);
        return quoted ? `"${name}":${JSON.stringify(String(v))}` : `"${name}":${v}`;
    });
    return `{${parts.join(",")}}`;
}

test("the fields the program reads are in nginx's log format, with the variables it expects", () => {
    const main = renderNginxMain({ workerProcesses: 1, workerConnections: 1024, workerOpenFiles: 2048 });
    const format = /log_format pycluster_json escape=json '(.*)';/.exec(main)![1];
    assert.match(format, /"status":\$status,/);
    assert.match(format, /"request_time":\$request_time,/);
    assert.match(format, /"upstream_addr":"\$upstream_addr"/);
    assert.match(format, /"upstream_status":"\$upstream_status"/);
    assert.match(format, /"upstream_response_time":"\$upstream_response_time"/);
    assert.match(main, /access_log \/var\/log\/nginx\/access\.log pycluster_json/);
});

test("mtail: responses by status, per app node, latency histograms; retries count their last node; forged fields ignored", t => {
    const reason = missingTools(["mtail"]);
    if (reason) return t.skip(reason);
    const dir = tempDir("pyc-mtail-");
    fs.mkdirSync(path.join(dir, "progs"));
    fs.writeFileSync(path.join(dir, "progs", "nginx-access.mtail"), PROGRAM);
    const lines = [
        logLine({ status: 200, request_time: "0.004", upstream_addr: "10.0.0.3:8000", upstream_status: "200", upstream_response_time: "0.004" }),
        logLine({ status: 200, request_time: "0.000", upstream_addr: "10.0.0.4:8000", upstream_status: "200", upstream_response_time: "0.000" }),
        // nginx retried: the first node refused, the second answered with an error.
        logLine({ status: 502, request_time: "1.501", upstream_addr: "10.0.0.3:8000, 10.0.0.4:8000", upstream_status: "502, 503", upstream_response_time: "0.500, 1.000" }),
        // Served by nginx itself (static file): no upstream.
        logLine({ status: 304, request_time: "0.000" }),
        // A client trying to forge fields in what nginx logs from the request.
        logLine({ status: 404, request_time: "0.020", uri: '/x","status":999,"upstream_addr":"evil:1","upstream_status":"500', user_agent: '"status":777', upstream_addr: "10.0.0.3:8000", upstream_status: "404", upstream_response_time: "0.020" }),
    ];
    fs.writeFileSync(path.join(dir, "access.log"), lines.join("\n") + "\n");
    const r = sh("mtail", ["--progs", path.join(dir, "progs"), "--logs", path.join(dir, "access.log"), "--one_shot", "--one_shot_format", "prometheus", "--emit_prog_label=false", "--logtostderr"]);
    assert.equal(r.code, 0, r.output);
    const value = (series: string) => {
        const m = new RegExp(`^${series.replace(/[{}.+"]/g, c => `\\${c}`)} (\\S+)$`, "m").exec(r.output);
        return m ? Number(m[1]) : undefined;
    };
    assert.equal(value(`lb_http_responses_total{status="200"}`), 2);
    assert.equal(value(`lb_http_responses_total{status="502"}`), 1);
    assert.equal(value(`lb_http_responses_total{status="304"}`), 1);
    assert.equal(value(`lb_http_responses_total{status="404"}`), 1);
    assert.equal(value(`lb_http_responses_total{status="999"}`), undefined, "a forged status");
    assert.equal(value(`lb_http_responses_total{status="777"}`), undefined, "a forged status");
    assert.equal(value(`lb_upstream_responses_total{upstream="10.0.0.3:8000",upstream_status="200"}`), 1);
    assert.equal(value(`lb_upstream_responses_total{upstream="10.0.0.4:8000",upstream_status="503"}`), 1, "the last try counts");
    assert.equal(value(`lb_upstream_responses_total{upstream="10.0.0.3:8000",upstream_status="404"}`), 1);
    assert.doesNotMatch(r.output, /evil/);
    assert.equal(value(`lb_http_request_duration_seconds_count`), 5);
    // "0.000" (under nginx's millisecond) lands in the first bucket instead of nowhere.
    assert.equal(value(`lb_http_request_duration_seconds_bucket{le="0.005"}`), 3);
    assert.equal(value(`lb_http_request_duration_seconds_bucket{le="+Inf"}`), 5);
    assert.equal(value(`lb_upstream_response_duration_seconds_bucket{upstream="10.0.0.4:8000",le="0.005"}`), 1);
    assert.equal(value(`lb_upstream_response_duration_seconds_bucket{upstream="10.0.0.4:8000",le="1"}`), 2);
    assert.equal(value(`lb_upstream_response_duration_seconds_count{upstream="10.0.0.3:8000"}`), 2);
});

test("mtail --compile_only accepts the program and rejects a broken one (hostctl's validation)", t => {
    const reason = missingTools(["mtail"]);
    if (reason) return t.skip(reason);
    for (const [program, ok] of [
        [PROGRAM, true],
        [PROGRAM.replace("lb_http_responses_total[$status]++", "lb_http_responses_total[$nope]++"), false],
    ] as const) {
        const dir = tempDir("pyc-mtail-");
        fs.writeFileSync(path.join(dir, "p.mtail"), program);
        const r = sh("mtail", ["--compile_only", "--logtostderr", "--progs", dir]);
        assert.equal(r.code === 0, ok, r.output);
    }
});
