/**
 * The Grafana dashboard in monitoring/: it parses, covers what the seed asked
 * to watch, every query is valid PromQL (promtool) and reads only metrics our
 * exporters (pycluster-access-log-exporter, pycluster-statsd-exporter) or Prometheus produce.
 * The alert rules are held to the same standard.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { stringify } from "yaml";
import { alertRules, knownMetricNames } from "../../provisioning/render/prometheus";
import { missingTools, ROOT, sh, tempDir } from "../support/hostTools";
import { metricNames, withoutGrafanaVariables } from "../support/promql";

const DASHBOARD = path.join(ROOT, "monitoring", "grafana-dashboard.json");
const dashboard = JSON.parse(fs.readFileSync(DASHBOARD, "utf8"));
const panels: any[] = dashboard.panels.filter((p: any) => p.type !== "row");
const queries: { panel: string; expr: string }[] = panels.flatMap(p => p.targets.map((t: any) => ({ panel: p.title, expr: t.expr })));

test("the metric-name reader finds names and skips functions, labels, keywords and ranges", () => {
    assert.deepEqual(
        metricNames('sum by (le, upstream) (rate(a_bucket{status=~"5..",x="rate(b)"}[5m])) / on(node) group_left c_total > bool 0.5 and d offset 5m'),
        ["a_bucket", "c_total", "d"],
    );
    assert.deepEqual(metricNames(`histogram_quantile(0.95, sum by (le) (rate(x_bucket[$__rate_interval])))`), ["x_bucket"]);
});

test("the dashboard parses, has a stable uid, a Prometheus data source variable and a query in every panel", () => {
    assert.equal(dashboard.uid, "pycluster-overview");
    assert.equal(dashboard.title, "pycluster");
    assert.ok(dashboard.templating.list.some((v: any) => v.type === "datasource" && v.query === "prometheus"));
    assert.ok(panels.length >= 15, `${panels.length} panels`);
    for (const p of panels) {
        assert.ok(p.targets.length > 0, `${p.title}: no query`);
        assert.equal(p.datasource.uid, "${datasource}", p.title);
        for (const t of p.targets) assert.ok(typeof t.expr === "string" && t.expr.length > 0 && t.refId, p.title);
    }
    const ids = panels.map(p => p.id);
    assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
});

test("the dashboard covers CPU, memory, network, latency, error rates and worker status", () => {
    const reads = (metric: string) => queries.some(q => metricNames(q.expr).includes(metric));
    assert.ok(reads("node_cpu_seconds_total"), "CPU");
    assert.ok(reads("node_memory_MemAvailable_bytes"), "memory");
    assert.ok(reads("node_network_receive_bytes_total") && reads("node_network_transmit_bytes_total"), "network");
    assert.ok(reads("lb_upstream_response_duration_seconds_bucket"), "latency");
    assert.ok(queries.some(q => /lb_http_responses_total\{status=~"5\.\."\}/.test(q.expr)), "error rate");
    assert.ok(reads("gunicorn_workers"), "worker status");
});

test("every metric a dashboard query or an alert rule reads is one our exporters or Prometheus produce", () => {
    const known = knownMetricNames();
    const rules = alertRules({ errorRatio: 0.05, latencyP95Seconds: 1, gunicornWorkers: 5, scrapeIntervalSeconds: 15 });
    const unknown = [
        ...queries.flatMap(q => metricNames(q.expr).filter(m => !known.has(m)).map(m => `dashboard "${q.panel}": ${m}`)),
        ...rules.flatMap(r => metricNames(r.expr).filter(m => !known.has(m)).map(m => `alert ${r.alert}: ${m}`)),
    ];
    assert.deepEqual(unknown, []);
    // And the other way round: the dashboard shows every metric family we produce ourselves.
    const read = new Set(queries.flatMap(q => metricNames(q.expr)));
    for (const m of ["lb_http_responses_total", "lb_upstream_responses_total", "lb_upstream_response_duration_seconds_bucket", "gunicorn_workers"]) assert.ok(read.has(m), m);
    // gunicorn's per-request statsd is opt-in (monitoringAppStatsd): the dashboard must work without it.
    for (const m of ["gunicorn_requests_total", "gunicorn_responses_total", "gunicorn_request_duration_seconds_bucket"]) assert.ok(!read.has(m), `${m} exists only with monitoringAppStatsd`);
});

test("promtool accepts every dashboard query as PromQL", t => {
    const reason = missingTools(["promtool"]);
    if (reason) return t.skip(reason);
    const dir = tempDir("pyc-dash-");
    const file = path.join(dir, "dashboard-queries.yml");
    const rules = queries.map((q, i) => ({ record: `pycluster:dashboard_query_${i}`, expr: withoutGrafanaVariables(q.expr) }));
    fs.writeFileSync(file, stringify({ groups: [{ name: "dashboard", rules }] }));
    const r = sh("promtool", ["check", "rules", file]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, new RegExp(`SUCCESS: ${queries.length} rules found`));
});
