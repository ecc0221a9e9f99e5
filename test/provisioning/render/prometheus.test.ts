/**
 * Prometheus' configuration and alert rules: rendered, then checked and
 * unit-tested by the real promtool (`check config`, `check rules`,
 * `test rules`), as the monitoring node checks them before switching.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { parse as parseYaml, stringify } from "yaml";
import { alertRules, AlertRulesOptions, renderAlertRules, renderPrometheusConfig, ScrapeTarget } from "../../../provisioning/render/prometheus";
import { missingTools, sh, tempDir } from "../../support/hostTools";

const RULES: AlertRulesOptions = { errorRatio: 0.05, latencyP95Seconds: 1, gunicornWorkers: 5, scrapeIntervalSeconds: 15 };
const TARGETS: ScrapeTarget[] = [
    { job: "node", address: "10.0.0.2", port: 9100, role: "lb", node: "c-lb" },
    { job: "node", address: "10.0.0.3", port: 9100, role: "app", node: "c-app-0" },
    { job: "nginx", address: "10.0.0.2", port: 9113, role: "lb", node: "c-lb" },
    { job: "gunicorn", address: "10.0.0.3", port: 9102, role: "app", node: "c-app-0" },
];

const skip = () => missingTools(["promtool"]);

/** Writes the rendered files into a fresh directory, as they sit in /etc/prometheus. */
function writeConfig(rules = renderAlertRules(RULES)): string {
    const dir = tempDir("pyc-prom-");
    fs.writeFileSync(path.join(dir, "pycluster.yml"), renderPrometheusConfig({ externalLabels: { cluster: "c" }, scrapeIntervalSeconds: 15, targets: TARGETS, ruleFiles: ["pycluster-alerts.yml"] }));
    fs.writeFileSync(path.join(dir, "pycluster-alerts.yml"), rules);
    return dir;
}

test("the scrape configuration: one job per exporter kind, every target labelled with its node and role", () => {
    const doc = parseYaml(renderPrometheusConfig({ externalLabels: { cluster: "c" }, scrapeIntervalSeconds: 5, targets: TARGETS, ruleFiles: ["r.yml"] })) as any;
    assert.deepEqual(doc.global, { scrape_interval: "5s", evaluation_interval: "5s", scrape_timeout: "5s", external_labels: { cluster: "c" } });
    assert.deepEqual(doc.scrape_configs.map((j: any) => j.job_name), ["node", "nginx", "gunicorn"]);
    assert.deepEqual(doc.scrape_configs[0].static_configs, [
        { targets: ["10.0.0.2:9100"], labels: { role: "lb", node: "c-lb" } },
        { targets: ["10.0.0.3:9100"], labels: { role: "app", node: "c-app-0" } },
    ]);
    assert.throws(() => renderPrometheusConfig({ externalLabels: {}, scrapeIntervalSeconds: 5, targets: [], ruleFiles: [] }), /at least one target/);
});

test("alert windows grow with the scrape interval, so every rate has samples", () => {
    const slow = alertRules({ ...RULES, scrapeIntervalSeconds: 120 });
    assert.match(slow.find(r => r.alert === "HighErrorRate")!.expr, /\[8m\]/);
    assert.equal(slow.find(r => r.alert === "NodeDown")!.for, "4m");
    assert.match(alertRules(RULES).find(r => r.alert === "HighErrorRate")!.expr, /\[5m\]/);
    assert.throws(() => alertRules({ ...RULES, errorRatio: 0 }), /errorRatio/);
});

test("promtool check config accepts the configuration and its rules; check rules accepts the rules", t => {
    const reason = skip();
    if (reason) return t.skip(reason);
    const dir = writeConfig();
    const config = sh("promtool", ["check", "config", path.join(dir, "pycluster.yml")]);
    console.log(config.output.trim());
    assert.equal(config.code, 0, config.output);
    assert.match(config.output, /SUCCESS: 7 rules found/);
    const rules = sh("promtool", ["check", "rules", path.join(dir, "pycluster-alerts.yml")]);
    assert.equal(rules.code, 0, rules.output);
});

test("promtool rejects a broken rule (what the monitoring node's validation relies on)", t => {
    const reason = skip();
    if (reason) return t.skip(reason);
    const broken = renderAlertRules(RULES).replace("up == 0", "up == ");
    const dir = writeConfig(broken);
    const r = sh("promtool", ["check", "config", path.join(dir, "pycluster.yml")]);
    assert.notEqual(r.code, 0);
    assert.match(r.output, /FAILED/);
});

/** A promtool unit test of one situation: the series over time, and what must fire when. */
interface Case {
    name: string;
    series: [string, string][];
    expect: { at: string; alert: string; firing: { labels: Record<string, string>; summary: string; description: string }[] }[];
}

const lb = `job="lb_log",instance="10.0.0.2:3903",node="c-lb",role="lb"`;
const app0 = `job="gunicorn",instance="10.0.0.3:9102",node="c-app-0",role="app",app="webapp"`;

const CASES: Case[] = [
    {
        name: "a node's exporter stops answering",
        series: [
            [`up{job="node",instance="10.0.0.3:9100",node="c-app-0",role="app"}`, "1 1 1 1 0x40"],
            [`up{job="node",instance="10.0.0.2:9100",node="c-lb",role="lb"}`, "1x44"],
        ],
        expect: [
            { at: "90s", alert: "NodeDown", firing: [] },
            {
                at: "3m",
                alert: "NodeDown",
                firing: [
                    {
                        labels: { severity: "critical", job: "node", instance: "10.0.0.3:9100", node: "c-app-0", role: "app" },
                        summary: "c-app-0: node exporter unreachable",
                        description: "Prometheus cannot scrape 10.0.0.3:9100 (node on the app node c-app-0): the node or its exporter is down.",
                    },
                ],
            },
        ],
    },
    {
        name: "nginx stops answering its status page",
        series: [[`nginx_up{job="nginx",instance="10.0.0.2:9113",node="c-lb",role="lb"}`, "1 1 0x40"]],
        expect: [
            {
                at: "3m",
                alert: "NginxDown",
                firing: [
                    {
                        labels: { severity: "critical", job: "nginx", instance: "10.0.0.2:9113", node: "c-lb", role: "lb" },
                        summary: "c-lb: nginx does not answer its status page",
                        description: "prometheus-nginx-exporter on c-lb cannot read nginx's stub_status: nginx is down or its private status listener is gone.",
                    },
                ],
            },
        ],
    },
    {
        name: "10% of responses are 5xx, all from one app node",
        series: [
            [`lb_http_responses_total{${lb},status="200"}`, "0+90x60"],
            [`lb_http_responses_total{${lb},status="502"}`, "0+10x60"],
            [`lb_upstream_responses_total{${lb},upstream="10.0.0.3:8000",upstream_status="200"}`, "0+45x60"],
            [`lb_upstream_responses_total{${lb},upstream="10.0.0.4:8000",upstream_status="200"}`, "0+45x60"],
            [`lb_upstream_responses_total{${lb},upstream="10.0.0.4:8000",upstream_status="502"}`, "0+10x60"],
        ],
        expect: [
            { at: "4m", alert: "HighErrorRate", firing: [] },
            {
                at: "10m",
                alert: "HighErrorRate",
                firing: [{ labels: { severity: "critical" }, summary: "More than 5% of responses are 5xx", description: "10% of the load balancer's responses are server errors." }],
            },
            {
                at: "10m",
                alert: "AppNodeErrorRate",
                firing: [
                    {
                        labels: { severity: "warning", upstream: "10.0.0.4:8000" },
                        summary: "App node 10.0.0.4:8000: more than 5% of its answers are 5xx",
                        description: "18.18% of what nginx got from 10.0.0.4:8000 were server errors (nginx may have retried them elsewhere).",
                    },
                ],
            },
        ],
    },
    {
        name: "1% of responses are 5xx: below the threshold",
        series: [
            [`lb_http_responses_total{${lb},status="200"}`, "0+99x60"],
            [`lb_http_responses_total{${lb},status="500"}`, "0+1x60"],
        ],
        expect: [{ at: "10m", alert: "HighErrorRate", firing: [] }],
    },
    {
        name: "the app nodes' responses take over a second",
        series: [
            [`lb_upstream_response_duration_seconds_bucket{${lb},upstream="10.0.0.3:8000",le="0.5"}`, "0x80"],
            [`lb_upstream_response_duration_seconds_bucket{${lb},upstream="10.0.0.3:8000",le="1"}`, "0x80"],
            [`lb_upstream_response_duration_seconds_bucket{${lb},upstream="10.0.0.3:8000",le="2.5"}`, "0+10x80"],
            [`lb_upstream_response_duration_seconds_bucket{${lb},upstream="10.0.0.3:8000",le="+Inf"}`, "0+10x80"],
        ],
        expect: [
            { at: "8m", alert: "UpstreamLatencyHigh", firing: [] },
            {
                at: "16m",
                alert: "UpstreamLatencyHigh",
                firing: [
                    {
                        labels: { severity: "warning" },
                        summary: "95th percentile of the app nodes' response time above 1 s",
                        description: "nginx waits 2.425s or more for 5% of the app nodes' responses.",
                    },
                ],
            },
        ],
    },
    {
        name: "fast responses: no latency alert",
        series: [
            [`lb_upstream_response_duration_seconds_bucket{${lb},upstream="10.0.0.3:8000",le="0.05"}`, "0+10x80"],
            [`lb_upstream_response_duration_seconds_bucket{${lb},upstream="10.0.0.3:8000",le="1"}`, "0+10x80"],
            [`lb_upstream_response_duration_seconds_bucket{${lb},upstream="10.0.0.3:8000",le="+Inf"}`, "0+10x80"],
        ],
        expect: [{ at: "16m", alert: "UpstreamLatencyHigh", firing: [] }],
    },
    {
        name: "an app node runs 3 of its 5 workers",
        series: [
            [`gunicorn_workers{${app0}}`, "5 5 5 5 3x40"],
            [`gunicorn_up{${app0}}`, "1x44"],
        ],
        expect: [
            { at: "2m", alert: "GunicornWorkersLow", firing: [] },
            {
                at: "5m",
                alert: "GunicornWorkersLow",
                firing: [
                    {
                        labels: { severity: "warning", job: "gunicorn", instance: "10.0.0.3:9102", node: "c-app-0", role: "app", app: "webapp" },
                        summary: "c-app-0: 3 gunicorn workers instead of 5",
                        description: "The gunicorn master on c-app-0 runs fewer workers than configured: workers keep crashing or cannot start.",
                    },
                ],
            },
            { at: "5m", alert: "GunicornDown", firing: [] },
        ],
    },
    {
        name: "gunicorn stops on an app node: down, and no second alert about its workers",
        series: [
            [`gunicorn_up{${app0}}`, "1 1 1 1 0x40"],
            [`gunicorn_workers{${app0}}`, "5 5 5 5 0x40"],
        ],
        expect: [
            { at: "90s", alert: "GunicornDown", firing: [] },
            {
                at: "4m",
                alert: "GunicornDown",
                firing: [
                    {
                        labels: { severity: "critical", job: "gunicorn", instance: "10.0.0.3:9102", node: "c-app-0", role: "app", app: "webapp" },
                        summary: "c-app-0: gunicorn is not running",
                        description: "The app's gunicorn master on c-app-0 is not running (its unit has no master process): the node serves nothing.",
                    },
                ],
            },
            { at: "6m", alert: "GunicornWorkersLow", firing: [] },
        ],
    },
    {
        name: "a healthy cluster fires nothing",
        series: [
            [`up{job="node",instance="10.0.0.3:9100",node="c-app-0",role="app"}`, "1x80"],
            [`nginx_up{job="nginx",instance="10.0.0.2:9113",node="c-lb",role="lb"}`, "1x80"],
            [`lb_http_responses_total{${lb},status="200"}`, "0+100x80"],
            [`gunicorn_workers{${app0}}`, "5x80"],
            [`gunicorn_up{${app0}}`, "1x80"],
        ],
        expect: ["NodeDown", "NginxDown", "HighErrorRate", "AppNodeErrorRate", "UpstreamLatencyHigh", "GunicornWorkersLow", "GunicornDown"].map(alert => ({ at: "15m", alert, firing: [] })),
    },
];

test("promtool test rules: each alert fires in its situation, after its delay, with its labels and text, and not otherwise", t => {
    const reason = skip();
    if (reason) return t.skip(reason);
    const dir = writeConfig();
    const doc = {
        rule_files: ["pycluster-alerts.yml"],
        evaluation_interval: "15s",
        tests: CASES.map(c => ({
            name: c.name,
            interval: "15s",
            input_series: c.series.map(([series, values]) => ({ series, values })),
            alert_rule_test: c.expect.map(e => ({
                eval_time: e.at,
                alertname: e.alert,
                exp_alerts: e.firing.map(f => ({ exp_labels: { alertname: e.alert, ...f.labels }, exp_annotations: { summary: f.summary, description: f.description } })),
            })),
        })),
    };
    fs.writeFileSync(path.join(dir, "tests.yml"), stringify(doc));
    const r = sh("promtool", ["test", "rules", path.join(dir, "tests.yml")]);
    console.log(r.output.trim());
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /SUCCESS/);
    // Every alert is exercised firing at least once.
    const fired = new Set(CASES.flatMap(c => c.expect.filter(e => e.firing.length > 0).map(e => e.alert)));
    assert.deepEqual([...fired].sort(), alertRules(RULES).map(r => r.alert).sort());
});
