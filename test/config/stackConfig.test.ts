import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ConfigError } from "../../config/stackConfig";
import { parse, SAMPLE_APP } from "./configFixtures";

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
    // 50,000 x 1.2 headroom over 2 nodes x 5 workers.
    assert.equal(c.gunicorn.workerConnections, 6000);
    assert.equal(c.gunicorn.keepalive, 75, "upstreamKeepaliveTimeout 60 + 15");
    assert.equal(c.lb.workerProcesses, 2);
    assert.equal(c.lb.workerConnections, 60000, "2 connections per request x 60,000 / 2 workers");
    assert.ok(c.lb.workerOpenFiles >= c.lb.workerConnections);
    assert.ok(c.capacity.ceiling >= c.targetConcurrency);
    assert.equal(c.openstack.authUrl, "https://auth.cloud.ovh.net/v3/");
    assert.equal(c.app.sample, true);
    assert.equal(c.app.module, "app:application");
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

test("credentials can come from the environment", () => {
    const c = parse(
        { serviceName: undefined, ovhApplicationKey: undefined, ovhApplicationSecret: undefined, ovhConsumerKey: undefined, openstackUserName: undefined, openstackPassword: undefined },
        {
            env: {
                OVH_CLOUD_PROJECT_SERVICE: "fedcba9876543210fedcba9876543210",
                OVH_APPLICATION_KEY: "k",
                OVH_APPLICATION_SECRET: "s",
                OVH_CONSUMER_KEY: "c",
                OS_USERNAME: "u",
                OS_PASSWORD: "p",
                OVH_ENDPOINT: "ovh-us",
            },
        },
    );
    assert.equal(c.ovh.serviceName, "fedcba9876543210fedcba9876543210");
    assert.equal(c.ovh.endpoint, "ovh-us");
    assert.equal(c.openstack.authUrl, "https://auth.cloud.ovh.us/v3");
    assert.equal(c.openstack.password.reveal(), "p");
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

/**
 * Bad configurations: each fails before anything is created, with a message
 * naming the key, the value and what to do.
 */
const BAD: [string, Record<string, string | undefined>, RegExp, { stack?: string; secretKeys?: string[] }?][] = [
    ["vlanId below range", { vlanId: "1" }, /pycluster:vlanId = 1: must be from 2 to 4000 \(each stack sharing the vRack needs its own\)/],
    ["vlanId above range", { vlanId: "4001" }, /pycluster:vlanId = 4001: must be from 2 to 4000/],
    ["vlanId not an integer", { vlanId: "12x" }, /pycluster:vlanId = "12x": must be an integer from 2 to 4000/],
    ["vlanId missing", { vlanId: undefined }, /pycluster:vlanId is not set: an integer from 2 to 4000 is required.*Set it in Pulumi.staging.yaml/],
    ["appNodeCount zero", { appNodeCount: "0" }, /pycluster:appNodeCount = 0: must be from 1 to 200/],
    ["appNodeCount not a number", { appNodeCount: "two" }, /pycluster:appNodeCount = "two": must be an integer from 1 to 200/],
    ["subnet syntax", { subnetCidr: "10.0.0.0/33" }, /pycluster:subnetCidr = "10.0.0.0\/33": must be an IPv4 network in CIDR notation .* e.g. 10.10.0.0\/24/],
    ["subnet host bits", { subnetCidr: "10.0.0.7/24" }, /pycluster:subnetCidr = "10.0.0.7\/24": must be an IPv4 network in CIDR notation with zero host bits/],
    ["subnet public", { subnetCidr: "8.8.8.0/24" }, /pycluster:subnetCidr = "8.8.8.0\/24": must be a private \(RFC 1918\) range/],
    ["subnet too small", { subnetCidr: "10.0.0.0/28", appNodeCount: "8" }, /pycluster:subnetCidr = "10.0.0.0\/28": has room for 6 fixed node addresses .* but the stack needs 9 \(1 load balancer \+ 8 app nodes\): use a larger subnet/],
    ["region format", { region: "GRA" }, /pycluster:region = "GRA": must be an OpenStack region such as GRA11/],
    ["admin CIDR missing", { adminCidrs: undefined }, /pycluster:adminCidrs is not set: list where SSH to the load balancer may come from/],
    ["admin CIDR empty", { adminCidrs: "[]" }, /pycluster:adminCidrs = \[\]: must list at least one CIDR/],
    ["admin CIDR whole internet", { adminCidrs: '["0.0.0.0/0"]' }, /pycluster:adminCidrs = "0.0.0.0\/0": opens SSH to the whole internet: .* set allowSshFromAnywhere to true/],
    ["admin CIDR syntax", { adminCidrs: '["203.0.113.7"]' }, /pycluster:adminCidrs = "203.0.113.7": each entry must be an IPv4 CIDR/],
    ["admin CIDR not a list", { adminCidrs: "203.0.113.7/32" }, /pycluster:adminCidrs = "203.0.113.7\/32": must be a list of strings/],
    ["admin CIDR overlaps the subnet", { adminCidrs: '["10.120.0.0/16"]' }, /pycluster:adminCidrs = "10.120.0.0\/16": overlaps subnetCidr 10.120.0.0\/24/],
    ["lbMethod unknown", { lbMethod: "random" }, /pycluster:lbMethod = "random": must be one of least_conn, round_robin, ip_hash/],
    ["appKind unknown", { appKind: "rsgi" }, /pycluster:appKind = "rsgi": must be one of wsgi, asgi/],
    ["tlsMode unknown", { tlsMode: "acme" }, /pycluster:tlsMode = "acme": must be one of selfSigned, provided, letsencrypt/],
    ["gatewayModel unknown", { gatewayModel: "huge" }, /pycluster:gatewayModel = "huge": must be one of s, m, l, xl, 2xl/],
    ["appPort privileged", { appPort: "80" }, /pycluster:appPort = 80: must be from 1024 to 65535 \(the app runs unprivileged\)/],
    ["appPort collides with status port", { appPort: "8080" }, /pycluster:appPort = 8080: is reserved for the status listener/],
    ["empty flavor", { appFlavor: "" }, /pycluster:appFlavor = "": must be an OVH flavor name/],
    ["unknown flavor without vCPUs", { appFlavor: "x9-77" }, /pycluster:appFlavor = "x9-77": is not in the built-in flavor table: set appVcpus/],
    ["empty image", { image: "" }, /pycluster:image = "": must name an image/],
    ["unknown image without versions", { image: "Arch Linux" }, /pycluster:image = "Arch Linux": is not a known image .*: also set sshUser/],
    ["missing OVH secret", { ovhConsumerKey: undefined }, /pycluster:ovhConsumerKey is not set: the OVH API consumer key is required.*\(or the environment variable OVH_CONSUMER_KEY\)/],
    ["secret stored in plain text", { openstackPassword: "plain" }, /pycluster:openstackPassword is stored in plain text: it is a secret. Re-set it with: pulumi config set --secret openstackPassword/, { secretKeys: ["ovhApplicationSecret", "ovhConsumerKey"] }],
    ["serviceName format", { serviceName: "my-project" }, /pycluster:serviceName = "my-project": must be the Public Cloud project id: 32 lowercase hex characters/],
    ["appDir missing", { appDir: "/nonexistent/app", appModule: "app:application" }, /pycluster:appDir = "\/nonexistent\/app": is not a directory/],
    ["appDir without appModule", { appDir: SAMPLE_APP, appModule: undefined }, /pycluster:appModule is not set: the entry point of the app in appDir is required/],
    ["appModule syntax", { appModule: "app" }, /pycluster:appModule = "app": must be module:callable/],
    ["appModule not in the sample", { appModule: "server:app" }, /pycluster:appModule = "server:app": its module is not in appDir: expected server.py/],
    ["appEnv not JSON", { appEnv: "A=1" }, /pycluster:appEnv = \(secret value hidden\): must be a JSON object of variables/],
    ["appEnv bad name", { appEnv: '{"1BAD": "x"}' }, /pycluster:appEnv = \(secret value hidden\): variable name "1BAD" is not a valid environment variable name/],
    ["keepalive shorter than nginx's", { gunicornKeepalive: "30" }, /pycluster:gunicornKeepalive = 30: must be longer than upstreamKeepaliveTimeout \(60\): otherwise gunicorn closes idle connections nginx is about to reuse/],
    ["jitter larger than max_requests", { gunicornMaxRequests: "100", gunicornMaxRequestsJitter: "100" }, /pycluster:gunicornMaxRequestsJitter = 100: must be smaller than gunicornMaxRequests \(100\)/],
    ["worker settings below the target", { gunicornWorkers: "2", gunicornWorkerConnections: "1000" }, /pycluster:targetConcurrency = 50000: the cluster holds at most 4000 concurrent requests, bound by gunicorn worker_connections \(2 nodes x 2 workers x 1000 connections\)\. Raise that limit/],
    ["nginx workers below the target", { lbWorkerProcesses: "1", maxOpenFiles: "20000" }, /pycluster:targetConcurrency = 50000: the cluster holds at most \d+ concurrent requests, bound by nginx (worker_connections|open files)/],
    ["worker_connections above the fd cap", { gunicornWorkerConnections: "30000", maxOpenFiles: "20000" }, /pycluster:gunicornWorkerConnections = 30000: exceeds what one process may open \(maxOpenFiles 20000 - 128\); add workers instead/],
    ["provided TLS without a certificate", { tlsMode: "provided" }, /pycluster:tlsCertificate is not set: tlsMode provided needs the PEM certificate chain/],
    ["letsencrypt without a domain", { tlsMode: "letsencrypt", letsencryptEmail: "ops@example.com" }, /pycluster:domain is not set: tlsMode letsencrypt needs the public host name/],
    ["letsencrypt with a bad e-mail", { tlsMode: "letsencrypt", domain: "www.example.com", letsencryptEmail: "ops" }, /pycluster:letsencryptEmail = "ops": tlsMode letsencrypt needs a valid account e-mail/],
    ["domain syntax", { domain: "not a host" }, /pycluster:domain = "not a host": must be a fully qualified host name/],
    ["rollout batch larger than the tier", { rolloutBatchSize: "3" }, /pycluster:rolloutBatchSize = 3: is larger than appNodeCount \(2\)/],
    ["release pin syntax", { appRelease: "v1.2" }, /pycluster:appRelease = "v1.2": must be a release id \(12 hex characters\)/],
    ["health path", { healthPath: "healthz" }, /pycluster:healthPath = "healthz": must be a URL path starting with \//],
    ["body size syntax", { clientMaxBodySize: "10 MB" }, /pycluster:clientMaxBodySize = "10 MB": must be an nginx size such as 10m/],
    ["boolean syntax", { allowSshFromAnywhere: "yes" }, /pycluster:allowSshFromAnywhere = "yes": must be true or false/],
    ["static path without dir", { staticUrlPath: "/static/" }, /pycluster:staticDir = "": must be a directory inside appDir/],
    ["static dir outside the app", { staticUrlPath: "/static/", staticDir: "../etc" }, /pycluster:staticDir = "..\/etc": must be a directory inside appDir/],
    ["app name", { appName: "My App" }, /pycluster:appName = "My App": must be 1-31 characters/],
    ["app name is a system account", { appName: "www-data" }, /pycluster:appName = "www-data": is a system account name/],
    ["unknown key (typo)", { vlanID: "5" }, /pycluster:vlanID is not a setting of this project \(did you mean vlanId\?\)\. Remove it with: pulumi config rm vlanID/],
];

for (const [what, overrides, message, o] of BAD) {
    test(`rejects: ${what}`, () => {
        assert.throws(() => parse(overrides, o), (e: unknown) => {
            assert.ok(e instanceof ConfigError, String(e));
            assert.match(e.message, message);
            assert.match(e.message, /nothing was created/);
            return true;
        });
    });
}

test("the bad-configuration table covers at least 25 cases", () => {
    assert.ok(BAD.length >= 25, `${BAD.length}`);
});
