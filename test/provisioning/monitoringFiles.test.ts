/**
 * What each role receives for monitoring, and hostctl's validation of it with
 * the real tools (systemd-analyze on the package's unit plus our drop-in,
 * promtool check config, py_compile of our exporters): the same code the
 * hosts run before they switch anything.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parse } from "../config/configFixtures";
import { appMonitoring, lbMonitoring, monitoringNodeMonitoring, MonitoringPush, monitoringPorts, scrapeTargets } from "../../provisioning/monitoringFiles";
import { renderBundle } from "../../provisioning/render/bundle";
import { hostctl, missingTools } from "../support/hostTools";

const cfg = parse({ monitoringNode: "true" });
const ROLES: [string, MonitoringPush][] = [
    ["lb", lbMonitoring(cfg)],
    ["app", appMonitoring(cfg, "10.120.0.3")],
    ["monitoring", monitoringNodeMonitoring(cfg)],
];
const TOOLS = ["systemd-analyze", "promtool", "exporter-units"] as const;

test("each role's files and the endpoints checked after a change", () => {
    const names = (p: MonitoringPush) => p.files.map(f => f.name).sort();
    assert.deepEqual(names(ROLES[0][1]), ["access_log_exporter.py", "prometheus-nginx-exporter.conf", "prometheus-node-exporter.conf", "prometheus_text.py", "pycluster-access-log-exporter.service"]);
    assert.deepEqual(names(ROLES[1][1]), ["prometheus-node-exporter.conf", "prometheus_text.py", "pycluster-statsd-exporter.service", "statsd_exporter.py"]);
    assert.deepEqual(names(ROLES[2][1]), ["prometheus-node-exporter.conf", "prometheus.conf", "pycluster-alerts.yml", "pycluster.yml"]);
    assert.deepEqual(ROLES[0][1].endpoints.map(e => `${e.service} ${e.url}`), [
        "prometheus-node-exporter http://10.120.0.2:9100/metrics",
        "prometheus-nginx-exporter http://10.120.0.2:9113/metrics",
        "pycluster-access-log-exporter http://10.120.0.2:3903/metrics",
    ]);
    assert.deepEqual(ROLES[2][1].endpoints.map(e => e.url), ["http://10.120.0.127:9100/metrics", "http://10.120.0.127:9090/-/ready"]);
    // The ports each role listens on are the ones its kernel settings keep out of the ephemeral range.
    assert.deepEqual(monitoringPorts(cfg, "lb"), [9100, 9113, 3903]);
    assert.deepEqual(monitoringPorts(cfg, "app"), [9100, 9102, 9125]);
    assert.equal(scrapeTargets(cfg).length, 1 + 2 + 1 + 1 + 1 + 2 + 1, "node x4, nginx, lb_log, gunicorn x2, prometheus");
    assert.throws(() => monitoringNodeMonitoring(parse()), /monitoringNode is off/);
});

test("the drop-ins replace the packages' command lines and keep retrying until the private address exists", () => {
    const lb = Object.fromEntries(ROLES[0][1].files.map(f => [f.name, f.content]));
    for (const name of ["prometheus-node-exporter.conf", "prometheus-nginx-exporter.conf"]) {
        assert.match(lb[name], /^ExecStart=\nExecStart=\/usr\/bin\//m, `${name}: the package's ExecStart is replaced`);
        assert.match(lb[name], /^After=network-online\.target$/m);
        assert.match(lb[name], /^StartLimitIntervalSec=0$/m);
        assert.match(lb[name], /^Restart=always$/m);
    }
    const accessLog = lb["pycluster-access-log-exporter.service"];
    assert.match(accessLog, /^SupplementaryGroups=adm$/m, "reads nginx's www-data:adm 0640 logs");
    assert.match(accessLog, /^ExecStart=\/usr\/bin\/python3 \/usr\/local\/lib\/pycluster\/access_log_exporter\.py --log \/var\/log\/nginx\/access\.log --fields \S+ --listen 10\.120\.0\.2:3903 --buckets 0\.005,/m);
    assert.match(accessLog, /^DynamicUser=yes$/m);
    // systemd would expand $ and % in a command line: both are doubled.
    assert.match(lb["prometheus-node-exporter.conf"], /"--collector\.netdev\.device-exclude=\^\(lo\|veth\.\*\|docker\.\*\)\$\$"/);
    const app = Object.fromEntries(ROLES[1][1].files.map(f => [f.name, f.content]));
    assert.match(app["pycluster-statsd-exporter.service"], /^ExecStart=\/usr\/bin\/python3 \/usr\/local\/lib\/pycluster\/statsd_exporter\.py --statsd 127\.0\.0\.1:9125 --listen 10\.120\.0\.3:9102 --unit webapp\.service --app webapp$/m);
    assert.match(app["pycluster-statsd-exporter.service"], /^DynamicUser=yes$/m);
    const mon = Object.fromEntries(ROLES[2][1].files.map(f => [f.name, f.content]));
    assert.match(mon["prometheus.conf"], /--config\.file=\/etc\/prometheus\/pycluster\.yml --web\.listen-address=10\.120\.0\.127:9090 .*--storage\.tsdb\.retention\.time=15d/);
});

for (const [role, push] of ROLES) {
    test(`hostctl monitoring-validate accepts the ${role} bundle (real systemd-analyze, promtool, python)`, t => {
        const reason = missingTools([...TOOLS]);
        if (reason) return t.skip(reason);
        const r = hostctl(["monitoring-validate"], renderBundle(push.files));
        assert.equal(r.code, 0, r.output);
        assert.match(r.output, new RegExp(`monitoring: ${push.files.length} file\\(s\\) valid`));
    });
}

test("hostctl monitoring-validate rejects a broken drop-in, unit, Prometheus rule or script; and unknown files", t => {
    const reason = missingTools([...TOOLS]);
    if (reason) return t.skip(reason);
    const broken = (push: MonitoringPush, name: string, edit: (s: string) => string) =>
        renderBundle(push.files.map(f => (f.name === name ? { ...f, content: edit(f.content) } : f)));
    const cases: [string, string, RegExp][] = [
        ["drop-in", broken(ROLES[0][1], "prometheus-node-exporter.conf", s => s.replace("ExecStart=/usr/bin/", "ExecStart=usr/bin/")), /systemd-analyze rejected prometheus-node-exporter\.service/],
        ["unit", broken(ROLES[0][1], "pycluster-access-log-exporter.service", s => s.replace("ExecStart=/usr/bin/python3", "ExecStart=usr/bin/python3")), /systemd-analyze rejected pycluster-access-log-exporter\.service/],
        ["LB script", broken(ROLES[0][1], "access_log_exporter.py", s => s.replace("def main():", "def main(:")), /access_log_exporter\.py does not compile/],
        ["rule", broken(ROLES[2][1], "pycluster-alerts.yml", s => s.replace("up == 0", "up ==")), /promtool rejected the Prometheus configuration/],
        ["script", broken(ROLES[1][1], "statsd_exporter.py", s => s.replace("def main():", "def main(:")), /statsd_exporter\.py does not compile/],
        ["unknown file", renderBundle([{ name: "evil.conf", mode: 0o644, content: "x" }]), /unexpected file in monitoring bundle: evil\.conf/],
    ];
    for (const [what, bundle, message] of cases) {
        const r = hostctl(["monitoring-validate"], bundle);
        assert.equal(r.code, 1, `${what}: ${r.output}`);
        assert.match(r.output, message, what);
    }
});
