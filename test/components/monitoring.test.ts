/**
 * Monitoring in the real program (under mocks): exporters on every node bound
 * to its private address, the optional monitoring node, the security groups
 * that decide who scrapes what, the outputs, and the policy pack on the result.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import {
    checkAppNodesPrivate,
    checkExplicitSecurityGroups,
    checkImagePinned,
    checkProductionStack,
    checkPublicAddressesOnlyOnLb,
    checkSecurityGroupsManaged,
    checkWorldIngressOnlyOnLb,
    checkWorldOpenIngress,
    ResourceDescription,
} from "../../policy/rules";
import { bundleFiles } from "../support/bundle";
import { COMMAND, fakeState, ProgramRun, RecordedResource, runProgram } from "../support/programHarness";

const INSTANCE = "openstack:compute/instance:Instance";
const PORT = "openstack:networking/port:Port";
const RULE = "openstack:networking/secGroupRule:SecGroupRule";
const GROUP = "openstack:networking/secGroup:SecGroup";

const runs = new Map<string, Promise<ProgramRun>>();
function stack(name: string, monitoring: boolean): Promise<ProgramRun> {
    const key = `${name}:${monitoring}`;
    if (!runs.has(key)) {
        const set: Record<string, string> = monitoring ? { monitoringNode: "true" } : {};
        runs.set(key, runProgram({ stack: name, set }));
    }
    return runs.get(key)!;
}

const find = (run: ProgramRun, type: string, name: string): RecordedResource => {
    const r = run.resources.find(x => x.type === type && x.name === name);
    assert.ok(r, `no ${type} named ${name}`);
    return r;
};
const rulesOf = (run: ProgramRun, role: string) => run.byType(RULE).filter(r => r.name.startsWith(`pycluster-staging-${role}-`));
const portsFrom = (rules: RecordedResource[], group: string) => rules.filter(r => r.inputs.remoteGroupId === `sg-uuid-pycluster-staging-${group}`).map(r => r.inputs.portRangeMin).sort();

test("every node's exporters listen on its private address, never on all addresses", async () => {
    const run = await stack("staging", true);
    const expected: Record<string, [string, RegExp[]]> = {
        "pycluster-staging-lb": ["10.120.0.2", [/--web\.listen-address=10\.120\.0\.2:9100/, /-web\.listen-address=10\.120\.0\.2:9113/, /--listen 10\.120\.0\.2:3903/]],
        "pycluster-staging-app-0": ["10.120.0.3", [/--web\.listen-address=10\.120\.0\.3:9100/, /--listen 10\.120\.0\.3:9102/]],
        "pycluster-staging-app-1": ["10.120.0.4", [/--web\.listen-address=10\.120\.0\.4:9100/, /--listen 10\.120\.0\.4:9102/]],
        "pycluster-staging-mon": ["10.120.0.127", [/--web\.listen-address=10\.120\.0\.127:9100/, /--web\.listen-address=10\.120\.0\.127:9090/]],
    };
    for (const [host, [ip, patterns]] of Object.entries(expected)) {
        const step = find(run, COMMAND, `${host}-monitoring`);
        for (const p of patterns) assert.match(step.inputs.stdin, p, `${host}: ${p}`);
        assert.doesNotMatch(step.inputs.stdin, /0\.0\.0\.0|listen-address=:|\[::\]/, `${host}: nothing on all addresses`);
        // What hostctl checks after a change: each exporter answers on the private address.
        for (const url of step.inputs.create.split(" ").filter((w: string) => w.includes("=http://"))) assert.match(url, new RegExp(`=http://${ip.replace(/\./g, "\\.")}:\\d+/`), `${host}: ${url}`);
    }
    // The LB's nginx exporter reads stub_status on the private listener.
    assert.match(find(run, COMMAND, "pycluster-staging-lb-monitoring").inputs.stdin, /-nginx\.scrape-uri=http:\/\/10\.120\.0\.2:8080\/stub_status/);
});

test("exporter packages are installed over SSH: enabling monitoring never changes user data", async () => {
    const off = await stack("staging", false);
    const on = await stack("staging", true);
    const userData = (run: ProgramRun) => run.byType(INSTANCE).filter(i => !i.name.endsWith("-mon")).map(i => [i.name, i.inputs.userData]);
    assert.deepEqual(userData(on), userData(off));
    assert.match(find(on, COMMAND, "pycluster-staging-app-0-packages").inputs.create, /packages gunicorn .* prometheus-node-exporter$/);
    assert.match(find(on, COMMAND, "pycluster-staging-mon-packages").inputs.create, /packages prometheus prometheus-node-exporter$/);
});

test("without the monitoring node: no extra host, and the LB's exporters admit nobody from outside", async () => {
    const run = await stack("staging", false);
    assert.equal(run.byType(INSTANCE).length, 3);
    assert.equal(run.byType(GROUP).length, 2);
    assert.deepEqual(rulesOf(run, "lb").map(r => r.inputs.portRangeMin).filter(p => [9100, 9113, 3903].includes(p)), []);
    const o = run.outputs.monitoring as any;
    assert.equal(o.prometheus, null);
    assert.deepEqual(o.exporters.node, ["http://10.120.0.2:9100/metrics", "http://10.120.0.3:9100/metrics", "http://10.120.0.4:9100/metrics"]);
    assert.deepEqual(o.exporters.gunicorn, ["http://10.120.0.3:9102/metrics", "http://10.120.0.4:9102/metrics"]);
});

test("the monitoring node: private, its own group, a fixed address that scaling never moves, reached through the LB", async () => {
    const run = await stack("staging", true);
    const mon = find(run, INSTANCE, "pycluster-staging-mon");
    assert.equal(mon.inputs.flavorName, "d2-4");
    assert.deepEqual(mon.inputs.networks.length, 1);
    const port = find(run, PORT, "pycluster-staging-mon-port");
    assert.deepEqual(port.inputs.securityGroupIds, ["sg-uuid-pycluster-staging-mon"]);
    assert.equal(port.inputs.fixedIps[0].ipAddress, "10.120.0.127");
    assert.equal(run.byType("openstack:networking/floatingIpAssociate:FloatingIpAssociate").length, 1, "still one public address: the LB's");
    for (const c of run.byType(COMMAND).filter(x => x.name.startsWith("pycluster-staging-mon-"))) {
        assert.equal(c.inputs.connection.host, "10.120.0.127", c.name);
        assert.equal(c.inputs.connection.proxy?.host, run.outputs.lbPublicIp, `${c.name} goes through the LB`);
        assert.match(c.inputs.connection.proxy?.hostKey, /AAAAFAKEpyclusterstaginglbhostkey/);
    }
    const scaled = await runProgram({ stack: "staging", set: { monitoringNode: "true", appNodeCount: "6" } });
    assert.equal(find(scaled, PORT, "pycluster-staging-mon-port").inputs.fixedIps[0].ipAddress, "10.120.0.127");
});

test("security groups: exporters from the monitoring node's group only (app nodes' also from the LB); Prometheus from the LB only", async () => {
    const run = await stack("staging", true);
    assert.deepEqual(portsFrom(rulesOf(run, "lb"), "mon"), [3903, 9100, 9113]);
    assert.deepEqual(portsFrom(rulesOf(run, "app"), "mon"), [9100, 9102]);
    assert.deepEqual(portsFrom(rulesOf(run, "app"), "lb"), [22, 8000, 9100, 9102]);
    const monRules = rulesOf(run, "mon");
    assert.deepEqual(monRules.map(r => [r.inputs.portRangeMin, r.inputs.remoteGroupId]).sort(), [
        [22, "sg-uuid-pycluster-staging-lb"],
        [9090, "sg-uuid-pycluster-staging-lb"],
    ]);
    for (const rule of run.byType(RULE)) {
        const p = rule.inputs.portRangeMin;
        if ([9100, 9113, 3903, 9102, 9090, 9125].includes(p)) assert.equal(rule.inputs.remoteIpPrefix, undefined, `${rule.name}: exporter port open to an address range`);
    }
});

test("Prometheus scrapes every exporter of every node; its alert rules use the stack's worker count", async () => {
    const run = await stack("staging", true);
    const step = find(run, COMMAND, "pycluster-staging-mon-monitoring");
    const files = bundleFiles(step.inputs.stdin);
    const config = parseYaml(files["pycluster.yml"]) as any;
    const targets = config.scrape_configs.flatMap((j: any) => j.static_configs.map((s: any) => `${j.job_name} ${s.targets[0]} ${s.labels.role} ${s.labels.node}`));
    assert.deepEqual(targets.sort(), [
        "gunicorn 10.120.0.3:9102 app pycluster-staging-app-0",
        "gunicorn 10.120.0.4:9102 app pycluster-staging-app-1",
        "lb_log 10.120.0.2:3903 lb pycluster-staging-lb",
        "nginx 10.120.0.2:9113 lb pycluster-staging-lb",
        "node 10.120.0.127:9100 monitoring pycluster-staging-mon",
        "node 10.120.0.2:9100 lb pycluster-staging-lb",
        "node 10.120.0.3:9100 app pycluster-staging-app-0",
        "node 10.120.0.4:9100 app pycluster-staging-app-1",
        "prometheus 10.120.0.127:9090 monitoring pycluster-staging-mon",
    ]);
    assert.deepEqual(config.rule_files, ["pycluster-alerts.yml"]);
    assert.equal(config.global.external_labels.cluster, "pycluster-staging");
    const rules = parseYaml(files["pycluster-alerts.yml"]) as any;
    const workersLow = rules.groups[0].rules.find((r: any) => r.alert === "GunicornWorkersLow");
    assert.equal(workersLow.expr, "gunicorn_workers < 5 and on (instance) gunicorn_up == 1");
    assert.match(step.inputs.create, /hostctl\.pyz monitoring prometheus-node-exporter=http:\/\/10\.120\.0\.127:9100\/metrics prometheus=http:\/\/10\.120\.0\.127:9090\/-\/ready$/);
});

test("outputs: Prometheus's private URL and the SSH tunnel through the load balancer", async () => {
    const run = await stack("staging", true);
    const o = run.outputs as any;
    assert.deepEqual(o.monitoring.prometheus, {
        url: "http://10.120.0.127:9090/",
        tunnel: "ssh -F ~/.ssh/pycluster-staging.config -N -L 9090:10.120.0.127:9090 pycluster-staging-lb",
        tunnelUrl: "http://localhost:9090/",
        ssh: "ssh -F ~/.ssh/pycluster-staging.config pycluster-staging-mon",
    });
    assert.deepEqual(o.monitoring.exporters.prometheus, ["http://10.120.0.127:9090/metrics"]);
});

const described = (run: ProgramRun): ResourceDescription[] =>
    run.resources.map(r => {
        const { id, state } = fakeState(r.type, r.name, r.inputs);
        return { type: r.type, name: r.name, urn: r.urn, props: { ...state, id }, opts: { ignoreChanges: r.options.ignoreChanges } };
    });

test("the policy pack's network and security-group rules pass on every stack with the monitoring node on", async () => {
    for (const name of ["dev", "staging", "prod"]) {
        const resources = described(await stack(name, true));
        const perResource = resources.flatMap(r => [checkWorldOpenIngress, checkAppNodesPrivate, checkExplicitSecurityGroups, checkImagePinned].flatMap(check => check(r)));
        const perStack = [checkWorldIngressOnlyOnLb, checkPublicAddressesOnlyOnLb, checkSecurityGroupsManaged].flatMap(check => check(resources));
        assert.deepEqual([...perResource, ...perStack.map(v => v.message)], [], name);
        assert.ok(resources.some(r => r.name === `pycluster-${name}-mon`), `${name} has its monitoring node`);
        // The production rule judges the app tier and the certificate: the monitoring node changes neither.
        const production = (run: ProgramRun) => checkProductionStack(described(run), name, name === "prod").map(v => v.message);
        assert.deepEqual(production(await stack(name, true)), production(await stack(name, false)), name);
        // prod (Let's Encrypt, 4 nodes) passes it: its placeholder certificate is not a self-signed site.
        if (name === "prod") assert.deepEqual(production(await stack(name, true)), []);
    }
});

test("gunicorn's per-request statsd is opt-in: off by default, on with monitoringAppStatsd", async () => {
    const off = await stack("staging", true);
    assert.doesNotMatch(find(off, COMMAND, "pycluster-staging-app-0-app").inputs.stdin, /statsd_host/);
    const on = await runProgram({ stack: "staging", set: { monitoringNode: "true", monitoringAppStatsd: "true" } });
    assert.match(find(on, COMMAND, "pycluster-staging-app-0-app").inputs.stdin, /^statsd_host = "127\.0\.0\.1:9125"$/m);
    // The exporter runs either way: worker counts come from the unit's cgroup.
    assert.match(find(off, COMMAND, "pycluster-staging-app-0-monitoring").inputs.stdin, /pycluster-statsd-exporter/);
});
