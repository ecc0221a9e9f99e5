import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ConfigError } from "../../config/reader";
import { BAD } from "./badConfigs";
import { CliConfigError } from "../../local/cliConfig";
import { parse, parseRaw, SAMPLE_APP, VALID } from "./configFixtures";
import { MEASURED_RATES } from "../../config/rates";

test("defaults come from Pulumi.yaml and derived sizes follow the flavor and the target", () => {
    const c = parse();
    assert.equal(c.openstack.region, "GRA11");
    assert.equal(c.platform.image, "Debian 12");
    assert.equal(c.ssh.user, "debian");
    assert.equal(c.platform.nginxVersion, "1.22.1");
    assert.equal(c.app.nodeCount, 2);
    assert.equal(c.app.vcpus, 2);
    assert.equal(c.gunicorn.workers, 5, "(2 x 2 vCPU) + 1");
    assert.equal(c.gunicorn.workerClass, "gevent");
    // A worker may hold the whole target (50,000 x 1.2 headroom); nginx gives each node its share: 60,000 over 2 nodes.
    assert.equal(c.gunicorn.workerConnections, 60000);
    assert.equal(c.gunicorn.openFiles, 61024);
    assert.equal(c.overload.perNodeConnections, 30000);
    assert.equal(c.gunicorn.keepalive, 25, "upstreamKeepaliveTimeout 10 + 15");
    // nginx lets go of idle connections to a node before a leaving gevent worker would close them.
    assert.ok(c.lb.upstreamKeepaliveTimeout < c.gunicorn.gracefulTimeout);
    assert.equal(c.lb.workerProcesses, 2);
    assert.equal(c.lb.workerConnections, 60000, "2 connections per request x 60,000 / 2 workers");
    assert.ok(c.lb.workerOpenFiles >= c.lb.workerConnections);
    assert.ok(c.capacity.ceiling >= c.targetConcurrency);
    assert.equal(c.openstack.authUrl, "https://auth.cloud.ovh.net/v3/");
    assert.equal(c.app.sample, true);
    assert.equal(c.app.module, "app:application");
});

test("an app node's own settings do not depend on the node count: scaling out leaves the serving nodes alone", () => {
    for (const kind of ["wsgi", "asgi"]) {
        const two = parse({ appKind: kind, appNodeCount: "2" });
        const five = parse({ appKind: kind, appNodeCount: "5" });
        assert.deepEqual(five.gunicorn, two.gunicorn, kind);
        assert.deepEqual(five.kernel, two.kernel, kind);
        // What changes is what nginx gives each node, and nginx's configuration changes anyway (its upstreams).
        assert.equal(two.overload.perNodeConnections, 5 * 6000, kind);
        assert.equal(five.overload.perNodeConnections, 5 * 2400, kind);
        assert.equal(five.capacity.limits.find(l => l.name === "nginx max_conns per app node")!.requests, 5 * 5 * 2400, kind);
    }
});

test("the subnet plan: gateway first, fixed node addresses, DHCP in the second half", () => {
    const c = parse({ appNodeCount: "3" });
    assert.equal(c.network.gatewayIp, "10.120.0.1");
    assert.equal(c.network.lbIp, "10.120.0.2");
    assert.deepEqual(c.network.appIps, ["10.120.0.3", "10.120.0.4", "10.120.0.5"]);
    assert.deepEqual(c.network.allocationPool, { start: "10.120.0.128", end: "10.120.0.254" });
});

test("an ASGI app gets the uvicorn worker and no worker_connections", () => {
    const c = parse({ appKind: "asgi" });
    assert.equal(c.gunicorn.workerClass, "uvicorn.workers.UvicornWorker");
    assert.equal(c.gunicorn.workerConnections, undefined);
    assert.equal(c.app.module, "app:asgi_application");
    assert.ok(c.capacity.limits.every(l => l.name !== "gunicorn worker_connections"));
    // uvicorn workers close their idle connections as they start to leave: nginx may keep its own longer.
    assert.equal(parse({ appKind: "asgi", upstreamKeepaliveTimeout: "60" }).lb.upstreamKeepaliveTimeout, 60);
});

test("a low open-file cap adds nginx and gunicorn processes instead of failing", () => {
    const c = parse({ maxOpenFiles: "20000", appNodeCount: "4" });
    assert.ok(c.lb.workerProcesses > 2, `nginx workers ${c.lb.workerProcesses}`);
    assert.ok(c.lb.workerOpenFiles <= 20000);
    assert.ok((c.gunicorn.workerConnections ?? 0) <= 20000 - 128);
    assert.ok(c.capacity.ceiling >= 50000, `ceiling ${c.capacity.ceiling}`);
});

test("workers far above (2 x vCPU) + 1 warn about memory but are allowed", () => {
    const c = parse({ gunicornWorkers: "100" });
    assert.equal(c.gunicorn.workers, 100);
    assert.match(c.warnings.join("\n"), /gunicornWorkers = 100 is far above .* = 5/);
});

const CREDENTIALS_UNSET = { serviceName: undefined, ovhApplicationKey: undefined, ovhApplicationSecret: undefined, ovhConsumerKey: undefined, openstackUserName: undefined, openstackPassword: undefined };
const CREDENTIAL_ENV = {
    OVH_CLOUD_PROJECT_SERVICE: "fedcba9876543210fedcba9876543210",
    OVH_APPLICATION_KEY: "k",
    OVH_APPLICATION_SECRET: "s",
    OVH_CONSUMER_KEY: "c",
    OS_USERNAME: "u",
    OS_PASSWORD: "p",
};

test("credentials only in the environment (the README's path): the CLI passes Pulumi.yaml's empty defaults, the program reads the variables", () => {
    const c = parse(CREDENTIALS_UNSET, { env: CREDENTIAL_ENV });
    assert.equal(c.ovh.serviceName, "fedcba9876543210fedcba9876543210");
    assert.equal(c.ovh.applicationKey, "k");
    assert.equal(c.ovh.consumerKey.reveal(), "c");
    assert.equal(c.openstack.userName, "u");
    assert.equal(c.openstack.password.reveal(), "p");
    assert.equal(c.ovh.endpoint, "ovh-eu", "the region's endpoint when OVH_ENDPOINT is not exported");
    assert.equal(c.openstack.authUrl, "https://auth.cloud.ovh.net/v3/");
});

test("OVH_ENDPOINT and OS_AUTH_URL from the environment are not shadowed by Pulumi.yaml's defaults", () => {
    const c = parse({ ...CREDENTIALS_UNSET, region: "US-EAST-VA-1" }, { env: { ...CREDENTIAL_ENV, OVH_ENDPOINT: "ovh-us" } });
    assert.equal(c.ovh.endpoint, "ovh-us");
    assert.equal(c.openstack.authUrl, "https://auth.cloud.ovh.us/v3/");
    const custom = parse(CREDENTIALS_UNSET, { env: { ...CREDENTIAL_ENV, OVH_ENDPOINT: "ovh-ca", OS_AUTH_URL: "https://keystone.example.net/v3/" } });
    assert.equal(custom.ovh.endpoint, "ovh-ca");
    assert.equal(custom.openstack.authUrl, "https://keystone.example.net/v3/");
});

test("a value set in the stack wins over the environment; an empty one does not", () => {
    const c = parse({ ovhApplicationKey: "from-stack", ovhConsumerKey: "" }, { env: { OVH_APPLICATION_KEY: "from-env", OVH_CONSUMER_KEY: "ck-env" } });
    assert.equal(c.ovh.applicationKey, "from-stack");
    assert.equal(c.ovh.consumerKey.reveal(), "ck-env");
});

test("the region is never taken from the environment (a sourced openrc must not move a stack)", () => {
    const c = parse({}, { env: { OS_REGION_NAME: "SBG5" } });
    assert.equal(c.openstack.region, "GRA11");
});

test("CIDRs and resolvers reach the cloud normalised: what was validated is what is sent", () => {
    const c = parse({ adminCidrs: '[" 203.0.113.10/32", "11.0.0.0/08"]', subnetCidr: " 172.16.5.0/24", dnsNameservers: '["213.186.33.99 "]' });
    assert.deepEqual(c.ssh.adminCidrs, ["203.0.113.10/32", "11.0.0.0/8"]);
    assert.equal(c.network.cidr, "172.16.5.0/24");
    assert.deepEqual(c.network.dnsNameservers, ["213.186.33.99"]);
});

test("deployerCidrs: normalised, and an address already in adminCidrs gets no second rule", () => {
    const c = parse({ deployerCidrs: '["203.0.113.10/32", "192.0.2.44/32"]' });
    assert.deepEqual(c.ssh.deployerCidrs, ["192.0.2.44/32"]);
});

test("secrets print as [secret] in messages, JSON and string conversion", () => {
    const c = parse();
    assert.equal(String(c.openstack.password), "[secret]");
    assert.equal(JSON.stringify({ p: c.ovh.consumerKey }), '{"p":"[secret]"}');
    assert.ok(!JSON.stringify(c).includes("os-password-secret"));
});

test("production stacks: at least 2 nodes and a trusted certificate", () => {
    assert.throws(() => parse({ appNodeCount: "1", rolloutBatchSize: "1" }, { stack: "prod" }), /appNodeCount = 1: a production stack needs at least 2 app nodes/);
    assert.throws(() => parse({}, { stack: "prod" }), /tlsMode = "selfSigned": a production stack needs a certificate browsers trust/);
    const ok = parse({ domain: "www.example.com", tlsMode: "letsencrypt", letsencryptEmail: "ops@example.com" }, { stack: "prod" });
    assert.equal(ok.production, true);
});

test("a user app directory is checked for its entry module", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyc-app-"));
    fs.mkdirSync(path.join(dir, "myapp"));
    fs.writeFileSync(path.join(dir, "myapp", "wsgi.py"), "application = None\n");
    const c = parse({ appDir: dir, appModule: "myapp.wsgi:application" });
    assert.equal(c.app.dir, dir);
    assert.equal(c.app.sample, false);
    assert.throws(() => parse({ appDir: dir, appModule: "myapp.main:app" }), /appModule = "myapp.main:app": its module is not in appDir: expected myapp\/main.py or myapp\/main\/__init__.py/);
    fs.rmSync(dir, { recursive: true });
});

test("every problem is reported at once, and nothing secret is printed", () => {
    try {
        parse({ vlanId: "1", region: "GRA", lbMethod: "random", openstackPassword: "hunter2-plain" }, { secretKeys: [] });
        assert.fail("expected a ConfigError");
    } catch (e) {
        assert.ok(e instanceof ConfigError);
        assert.ok(e.problems.length >= 4, e.message);
        assert.ok(!e.message.includes("hunter2-plain"));
        assert.ok(!e.message.includes("as-secret"));
    }
});

for (const [what, overrides, message, o] of BAD) {
    test(`rejects: ${what}`, () => {
        assert.throws(() => parse(overrides, o), (e: unknown) => {
            if (o?.cli) {
                assert.ok(e instanceof CliConfigError, String(e));
            } else {
                assert.ok(e instanceof ConfigError, String(e));
                assert.match(e.message, /nothing was created/);
            }
            assert.match(e.message, message);
            return true;
        });
    });
}

test("outside the CLI (no type check in front), the program still refuses what is not an integer or a boolean", () => {
    const values = { ...VALID, vlanId: "12x", allowSshFromAnywhere: "yes" };
    assert.throws(() => parseRaw(values), (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.match(e.message, /pycluster:vlanId = "12x": must be an integer from 2 to 4000/);
        assert.match(e.message, /pycluster:allowSshFromAnywhere = "yes": must be true or false/);
        return true;
    });
});

test("the bad-configuration table covers at least 25 cases", () => {
    assert.ok(BAD.length >= 25, `${BAD.length}`);
});

test("monitoring: exporters always, the monitoring node only when asked for, at the last fixed address", () => {
    const off = parse();
    assert.equal(off.monitoring.node, undefined);
    assert.equal(off.network.monitoringIp, undefined);
    assert.deepEqual(off.monitoring.ports, { nodeExporter: 9100, nginxExporter: 9113, accessLogExporter: 3903, statsdExporter: 9102, statsd: 9125, prometheus: 9090 });
    assert.deepEqual(off.monitoring.alerts, { errorRatio: 0.05, latencyP95Seconds: 1 });
    assert.equal(off.monitoring.scrapeIntervalSeconds, 15);
    const on = parse({ monitoringNode: "true", monitoringRetentionDays: "30", alertErrorRatePercent: "2", alertLatencyP95Ms: "250" });
    assert.deepEqual(on.monitoring.node, { flavor: "d2-4", ip: "10.120.0.127", retentionDays: 30 });
    assert.deepEqual(on.monitoring.alerts, { errorRatio: 0.02, latencyP95Seconds: 0.25 });
    // Scaling the app tier never moves it.
    assert.equal(parse({ monitoringNode: "true", appNodeCount: "40" }).monitoring.node!.ip, "10.120.0.127");
    assert.equal(parse({ monitoringNode: "true", subnetCidr: "10.120.0.0/26" }).monitoring.node!.ip, "10.120.0.31");
});

test("the LB's listening ports (status, exporters) are taken out of its ephemeral ports in the capacity model", () => {
    const c = parse({ appNodeCount: "1", targetConcurrency: "1000" });
    const ports = c.capacity.limits.find(l => l.name === "LB->app ephemeral ports")!;
    assert.equal(ports.requests, 65535 - 1024 + 1 - 4);
});

test("letsencrypt: certbot's server is Let's Encrypt production unless set; dnsZone makes the domain's name in the zone a managed record", () => {
    const plain = parse({ tlsMode: "letsencrypt", domain: "www.example.com", letsencryptEmail: "ops@example.com" });
    assert.equal(plain.lb.tls.letsencryptServer, "https://acme-v02.api.letsencrypt.org/directory");
    assert.equal(plain.lb.dnsRecord, undefined, "no dnsZone: the user points the record");
    const staging = "https://acme-staging-v02.api.letsencrypt.org/directory";
    assert.equal(parse({ letsencryptServer: ` ${staging} ` }).lb.tls.letsencryptServer, staging);
    assert.deepEqual(parse({ domain: "www.shop.example.com", dnsZone: "Example.com." }).lb.dnsRecord, { zone: "example.com", subdomain: "www.shop", ttl: 60 });
    assert.deepEqual(parse({ domain: "example.com", dnsZone: "example.com", dnsRecordTtl: "300" }).lb.dnsRecord, { zone: "example.com", subdomain: "", ttl: 300 }, "the apex");
});

test("rates: what the flavors' vCPUs carry, from the measured per-core costs; targets 0 = not checked", () => {
    const c = parse();
    assert.deepEqual(c.rates.targets, { requestsPerSecond: 0, newConnectionsPerSecond: 0 });
    assert.equal(c.rates.appRequestsPerCore, MEASURED_RATES.sampleAppRequestsPerCore, "the bundled sample's measured cost");
    assert.equal(c.rates.model.newConnections.limits[0].perSecond, Math.floor(2 * MEASURED_RATES.tlsHandshakesPerLbCore));
    assert.equal(c.rates.model.requests.limits.find(l => l.name === "app CPU")!.perSecond, Math.floor(2 * 2 * MEASURED_RATES.sampleAppRequestsPerCore));
    assert.equal(c.rates.measured, MEASURED_RATES.provenance);
    const bigger = parse({ lbFlavor: "b3-32", appFlavor: "c3-16", appNodeCount: "4" });
    assert.equal(bigger.rates.model.newConnections.limits[0].perSecond, Math.floor(8 * MEASURED_RATES.tlsHandshakesPerLbCore), "8 vCPUs from the flavor table");
    assert.equal(bigger.rates.model.appCoresPerNode, 8);
});

test("a rate target the flavors carry passes, and sizes nothing beyond the model", () => {
    const rps = Math.floor(parse().rates.model.requests.ceiling / 1.2);
    const c = parse({ targetRequestsPerSecond: String(rps), targetNewConnectionsPerSecond: "10" });
    assert.equal(c.rates.targets.requestsPerSecond, rps);
    assert.ok(c.rates.load.lbCores <= 2);
    assert.throws(() => parse({ targetRequestsPerSecond: String(rps * 2) }), /targetRequestsPerSecond = \d+: the (load balancer's 2 vCPUs|app nodes) cannot carry it/);
});

test("another app's cost is its own: unknown until set, then checked", () => {
    const custom = { appDir: SAMPLE_APP, appModule: "app:application" };
    const c = parse(custom);
    assert.equal(c.rates.appRequestsPerCore, undefined);
    assert.equal(c.rates.model.appRateKnown, false);
    assert.ok(c.rates.model.requests.limits.every(l => l.name !== "app CPU"));
    const measured = parse({ ...custom, appRequestsPerCore: "50", targetRequestsPerSecond: "150" });
    assert.equal(measured.rates.model.requests.ceiling, 2 * 2 * 50);
    assert.throws(() => parse({ ...custom, appRequestsPerCore: "50", targetRequestsPerSecond: "200" }), /app CPU: 240 requests\/s over 2 nodes at 50 per core need 2\.40 cores per node, and a node uses at most min\(5 workers, 2 vCPUs\) = 2/);
});

test("overload: nginx refuses beyond the model's request rate (or the operator's) and beyond what a node holds", () => {
    const c = parse();
    assert.equal(c.overload.requestRate, Math.min(...c.rates.model.requests.limits.filter(l => l.on === "lb").map(l => l.perSecond)), "the LB's own ceiling");
    assert.equal(c.overload.perNodeConnections, 5 * 6000);
    assert.equal(c.overload.retryAfterSeconds, 1);
    assert.equal(parse({ lbRequestRateLimit: "250" }).overload.requestRate, 250);
});

test("memory: the nodes' RAM from the flavor table bounds what they hold; a vCPU override leaves it out", () => {
    const c = parse();
    const lb = c.capacity.limits.find(l => l.name === "LB memory")!;
    assert.match(lb.formula, /0\.75 x 7629 MiB/, "b3-8: 8 GB");
    assert.ok(c.capacity.limits.some(l => l.name === "app memory"));
    assert.ok(parse({ lbVcpus: "4" }).capacity.limits.every(l => !/memory/.test(l.name)));
});
