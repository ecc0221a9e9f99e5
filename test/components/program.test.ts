import { test } from "node:test";
import assert from "node:assert/strict";
import { parseReleases } from "../../components/outputs";
import { UNKNOWN_OUTPUT } from "../../local/program";
import { recordPushes } from "../support/pushRecording";
import { COMMAND, CONFIG_CREDENTIALS, COPY, isWrappedSecret, loadStackFile, ProgramRun, RecordedResource, runProgram, TEST_CREDENTIALS, TEST_ENV } from "../support/programHarness";

const INSTANCE = "openstack:compute/instance:Instance";
const PORT = "openstack:networking/port:Port";
const RULE = "openstack:networking/secGroupRule:SecGroupRule";
const FIP = "openstack:networking/floatingIp:FloatingIp";
const FIP_ASSOC = "openstack:networking/floatingIpAssociate:FloatingIpAssociate";

const runs = new Map<string, ProgramRun>();
async function stack(name: string): Promise<ProgramRun> {
    if (!runs.has(name)) runs.set(name, await runProgram({ stack: name }));
    return runs.get(name)!;
}

const find = (run: ProgramRun, type: string, name: string): RecordedResource => {
    const r = run.resources.find(x => x.type === type && x.name === name);
    assert.ok(r, `no ${type} named ${name}; have ${run.byType(type).map(x => x.name).join(", ")}`);
    return r;
};

const EXPECTED_NODES: Record<string, number> = { dev: 1, staging: 2, prod: 4 };
/** prod runs a pair of load balancers (Pulumi.prod.yaml, docs/pair.md). */
const EXPECTED_LBS: Record<string, number> = { dev: 1, staging: 1, prod: 2 };

for (const name of ["dev", "staging", "prod"]) {
    test(`${name}: ${EXPECTED_LBS[name]} load balancer(s), ${EXPECTED_NODES[name]} app node(s), one network, two security groups`, async () => {
        const run = await stack(name);
        const nodes = EXPECTED_NODES[name];
        const lbs = EXPECTED_LBS[name];
        const count = (type: string) => run.byType(type).length;
        assert.equal(count(INSTANCE), lbs + nodes);
        // A pair adds the VIP port, which only holds the shared address.
        assert.equal(count(PORT), lbs + nodes + (lbs === 2 ? 1 : 0));
        assert.equal(count("ovh:CloudProject/networkPrivate:NetworkPrivate"), 1);
        assert.equal(count("ovh:CloudProject/networkPrivateSubnetV2:NetworkPrivateSubnetV2"), 1);
        assert.equal(count("ovh:CloudProject/gateway:Gateway"), 1);
        assert.equal(count("openstack:networking/secGroup:SecGroup"), 2);
        assert.equal(count("openstack:compute/keypair:Keypair"), 1);
        assert.equal(count(FIP), 1);
        assert.equal(count(COPY), nodes, "one release upload per app node");
        // Per host: bootstrap, packages, kernel, monitoring. Per LB: nginx, keepalived (a pair), letsencrypt (prod);
        // a pair's first LB also finishes nginx's change after the second (lbRolloutSteps).
        // Per app node: release, check, app, releases, and its admit on each LB.
        const perLb = 1 + (lbs === 2 ? 1 : 0) + (name === "prod" ? 1 : 0);
        assert.equal(count(COMMAND), 4 * (lbs + nodes) + perLb * lbs + (lbs === 2 ? 1 : 0) + (4 + lbs) * nodes);
        assert.deepEqual(run.outputs.appPrivateIps, Array.from({ length: nodes }, (_, i) => `10.${{ dev: 110, staging: 120, prod: 130 }[name]}.0.${3 + i}`));
    });
}

test("exactly one public address, and it is the load balancer's", async () => {
    const run = await stack("staging");
    const [fip] = run.byType(FIP);
    assert.equal(fip.inputs.pool, "Ext-Net");
    assert.equal(fip.name, "pycluster-staging-lb-fip");
    const [assoc] = run.byType(FIP_ASSOC);
    assert.equal(assoc.inputs.portId, "os-port-uuid-pycluster-staging-lb-port");
    for (const instance of run.byType(INSTANCE)) {
        assert.equal(instance.inputs.floatingIp, undefined);
        assert.deepEqual(instance.inputs.networks.length, 1);
        assert.ok(instance.inputs.networks[0].port, "attached through its own port only");
    }
    for (const port of run.byType(PORT)) assert.equal(port.inputs.networkId, "os-net-uuid-GRA11");
    assert.equal(run.outputs.url, `https://${run.outputs.lbPublicIp}/`);
});

test("no rule opens SSH or the app port to the world, and none leaves its source empty", async () => {
    for (const name of ["dev", "staging", "prod"]) {
        const run = await stack(name);
        for (const rule of run.byType(RULE)) {
            const i = rule.inputs;
            assert.ok(i.remoteIpPrefix || i.remoteGroupId, `${rule.name}: a source is required`);
            if (i.protocol === "vrrp") {
                // keepalived's adverts: no ports in IP protocol 112, and only from the LB group itself.
                assert.equal(i.remoteGroupId, `sg-uuid-pycluster-${name}-lb`, `${rule.name}: VRRP from the pair only`);
                continue;
            }
            assert.ok(i.portRangeMin && i.portRangeMax, `${rule.name}: a port range is required`);
            if (i.remoteIpPrefix === "0.0.0.0/0") assert.ok([80, 443].includes(i.portRangeMin) && i.portRangeMin === i.portRangeMax, `${rule.name} is world-open`);
        }
        const appRules = run.byType(RULE).filter(r => r.name.includes("-app-"));
        const lbGroup = `sg-uuid-pycluster-${name}-lb`;
        // The app port and SSH; the exporters for an operator's tunnel through the bastion. Nothing else.
        assert.deepEqual(appRules.map(r => [r.inputs.portRangeMin, r.inputs.remoteGroupId]).sort(), [[22, lbGroup], [8000, lbGroup], [9100, lbGroup], [9102, lbGroup]]);
        const ssh = run.byType(RULE).filter(r => r.inputs.portRangeMin === 22 && r.name.includes("-lb-"));
        assert.deepEqual(ssh.filter(r => r.inputs.remoteIpPrefix).map(r => r.inputs.remoteIpPrefix), JSON.parse(loadStackFile(name).adminCidrs));
        // Besides the admins: a pair's LBs reach each other (the one holding the address relays SSH to its peer).
        assert.deepEqual(ssh.filter(r => !r.inputs.remoteIpPrefix).map(r => r.inputs.remoteGroupId), name === "prod" ? [lbGroup] : []);
    }
});

test("SSH opened to the world only with the explicit opt-in, and labelled so", async () => {
    const run = await runProgram({ stack: "staging", set: { adminCidrs: '["0.0.0.0/0"]', allowSshFromAnywhere: "true" } });
    const [ssh] = run.byType(RULE).filter(r => r.inputs.portRangeMin === 22 && r.name.includes("-lb-"));
    assert.equal(ssh.inputs.remoteIpPrefix, "0.0.0.0/0");
    assert.match(ssh.inputs.description, /allowSshFromAnywhere/);
});

test("ports use our security groups, never OVH's default; the OpenStack UUID everywhere OpenStack needs it", async () => {
    const run = await stack("staging");
    for (const port of run.byType(PORT)) {
        assert.equal(port.inputs.securityGroupIds.length, 1);
        assert.match(port.inputs.securityGroupIds[0], port.name.includes("-lb-") ? /-lb$/ : /-app$/);
        assert.equal(port.inputs.fixedIps[0].subnetId, "os-subnet-uuid-pycluster-staging-net-subnet");
    }
    const subnet = run.byType("ovh:CloudProject/networkPrivateSubnetV2:NetworkPrivateSubnetV2")[0];
    assert.equal(subnet.inputs.networkId, "os-net-uuid-GRA11");
    assert.deepEqual(subnet.inputs.allocationPools, [{ start: "10.120.0.128", end: "10.120.0.254" }]);
    const gateway = run.byType("ovh:CloudProject/gateway:Gateway")[0];
    assert.equal(gateway.inputs.networkId, "os-net-uuid-GRA11");
    assert.equal(gateway.inputs.subnetId, subnet.name.replace(/^/, "os-subnet-uuid-"));
    const network = run.byType("ovh:CloudProject/networkPrivate:NetworkPrivate")[0];
    assert.equal(network.inputs.vlanId, 120);
    assert.deepEqual(network.inputs.regions, ["GRA11"]);
});

test("cloud resources use the program's explicit providers", async () => {
    const run = await stack("staging");
    for (const r of run.resources.filter(x => /^(ovh|openstack):/.test(x.type) && !x.type.startsWith("pulumi:providers"))) {
        const parentProvider = run.resources.find(p => p.type === `pulumi:providers:${r.type.split(":")[0]}`);
        assert.ok(parentProvider, `${r.type} provider registered`);
    }
    const ovhProvider = run.byType("pulumi:providers:ovh")[0];
    assert.equal(ovhProvider.inputs.applicationKey, TEST_CREDENTIALS.ovhApplicationKey);
    assert.ok(isWrappedSecret(ovhProvider.rawInputs.consumerKey), "consumer key passed as a secret");
    const os = run.byType("pulumi:providers:openstack")[0];
    assert.equal(os.inputs.authUrl, "https://auth.cloud.ovh.net/v3/");
    assert.equal(os.inputs.tenantId, TEST_CREDENTIALS.serviceName);
    assert.ok(isWrappedSecret(os.rawInputs.password));
});

test("instances: flavor and image from config, image name changes ignored, user data only prepares the host", async () => {
    const run = await stack("prod");
    const lb = find(run, INSTANCE, "pycluster-prod-lb");
    assert.equal(lb.inputs.flavorName, "c3-8");
    assert.equal(lb.inputs.imageName, "Debian 12");
    const app = find(run, INSTANCE, "pycluster-prod-app-3");
    assert.equal(app.inputs.flavorName, "b3-16");
    for (const instance of run.byType(INSTANCE)) {
        assert.deepEqual(instance.options.ignoreChanges, ["imageName"]);
        assert.ok(isWrappedSecret(instance.rawInputs.userData), "user data holds the host's private key");
        const userData: string = instance.inputs.userData;
        assert.match(userData, /^#cloud-config/);
        assert.match(userData, /ed25519_private/);
        assert.doesNotMatch(userData, /gunicorn\.conf|nginx\.conf|worker_connections/, "configuration goes over SSH, not user data");
    }
    assert.match(app.inputs.userData, /name: webapp/);
    assert.match(lb.inputs.userData, /packages:\n\s+- nginx\n/);
    assert.doesNotMatch(lb.inputs.userData, /certbot/, "extras go over SSH: user data stays the same for every configuration");
});

test("app nodes are reached through the load balancer; every connection pins its host key and is secret", async () => {
    const run = await stack("staging");
    const lbIp = run.outputs.lbPublicIp;
    const hostKeys = new Map(run.byType("tls:index/privateKey:PrivateKey").map(k => [k.name.replace(/-hostkey$/, ""), `ssh-ed25519 AAAAFAKE${k.name.replace(/[^A-Za-z0-9]/g, "")}`]));
    const steps = [...run.byType(COMMAND), ...run.byType(COPY)];
    for (const c of steps) {
        assert.ok(isWrappedSecret(c.rawInputs.connection), `${c.name}: connection is secret`);
        const conn = c.inputs.connection;
        assert.equal(conn.user, "debian");
        assert.match(conn.privateKey, /OPENSSH PRIVATE KEY/);
        const onApp = /-app-\d+-(bootstrap|packages|kernel|monitoring|release|releases|check|app|upload)$/.test(c.name);
        if (onApp) {
            const node = c.name.replace(/-(bootstrap|packages|kernel|monitoring|release|releases|check|app|upload)$/, "");
            assert.equal(conn.host, run.outputs.appPrivateIps instanceof Array ? (run.outputs.appPrivateIps as string[])[Number(node.split("-").pop())] : "", c.name);
            assert.equal(conn.hostKey, hostKeys.get(node), `${c.name} pins the node's key`);
            assert.equal(conn.proxy?.host, lbIp, `${c.name} goes through the LB`);
            assert.equal(conn.proxy?.hostKey, hostKeys.get("pycluster-staging-lb"), `${c.name} pins the LB's key`);
        } else {
            assert.equal(conn.host, lbIp, c.name);
            assert.equal(conn.proxy, undefined, c.name);
            assert.equal(conn.hostKey, hostKeys.get("pycluster-staging-lb"), `${c.name} pins the LB's key`);
        }
        assert.equal(c.options.deletedWith !== "", true, `${c.name} is deleted with its instance`);
    }
    const bootstraps = steps.filter(c => c.name.endsWith("-bootstrap"));
    assert.ok(bootstraps.every(c => c.inputs.connection.dialErrorLimit === -1), "first contact waits for sshd");
    assert.ok(steps.filter(c => !c.name.endsWith("-bootstrap")).every(c => c.inputs.connection.dialErrorLimit === 10));
    assert.deepEqual(run.secretOutputs, ["sshPrivateKey"]);
});

test("the LB's upstream lists exactly the app nodes, and grows with appNodeCount", async () => {
    for (const count of [2, 4]) {
        const run = await runProgram({ stack: "staging", set: { appNodeCount: String(count) } });
        const nginx = find(run, COMMAND, "pycluster-staging-lb-nginx");
        assert.ok(isWrappedSecret(nginx.rawInputs.stdin), "the bundle carries the TLS key");
        const stdin: string = nginx.inputs.stdin;
        const servers = [...stdin.matchAll(/^\s+server (\S+) max_fails/gm)].map(m => m[1]);
        assert.deepEqual(servers, Array.from({ length: count }, (_, i) => `10.120.0.${3 + i}:8000`));
        assert.match(stdin, /^file nginx\.conf 0644 \d+$/m);
        assert.match(stdin, /^file tls\/privkey\.pem 0600 \d+$/m);
        assert.match(stdin, /worker_connections 60000;/);
        assert.equal(nginx.inputs.create, "sudo python3 /usr/local/lib/pycluster/hostctl.pyz nginx --health-path /healthz --lease 150");
    }
});

test("each app node's commands carry its rendered files, bound to its own address", async () => {
    const run = await stack("staging");
    for (const [i, ip] of ["10.120.0.3", "10.120.0.4"].entries()) {
        const app = find(run, COMMAND, `pycluster-staging-app-${i}-app`);
        assert.match(app.inputs.stdin, new RegExp(`bind = \\["${ip.replace(/\./g, "\\.")}:8000"\\]`));
        assert.match(app.inputs.stdin, /forwarded_allow_ips = "10\.120\.0\.2"/);
        assert.match(app.inputs.stdin, /^file webapp\.service 0644 \d+$/m);
        assert.match(app.inputs.create, new RegExp(`--bind ${ip.replace(/\./g, "\\.")}:8000 --health-path /healthz --workers 5`));
        const upload = find(run, COPY, `pycluster-staging-app-${i}-upload`);
        assert.equal(upload.inputs.remotePath, `/var/tmp/pycluster-webapp-${run.outputs.release}.tar.gz`);
        const kernel = find(run, COMMAND, `pycluster-staging-app-${i}-kernel`);
        assert.match(kernel.inputs.stdin, /-net\.ipv4\.ip_local_reserved_ports = 8000/);
    }
    assert.match(find(run, COMMAND, "pycluster-staging-lb-kernel").inputs.stdin, /LimitNOFILE=60128/);
});

test("changes roll through app nodes in order: a batch starts when the previous one is back in rotation", async () => {
    const run = await runProgram({ stack: "staging", set: { appNodeCount: "4", rolloutBatchSize: "2" } });
    const urn = (name: string) => find(run, COMMAND, name).urn;
    const deps = (name: string) => find(run, COMMAND, name).options.dependsOn;
    const admitted = (i: number) => urn(`pycluster-staging-app-${i}-lb-admit`);
    // Batch of 2: nodes 0 and 1 first, then 2 and 3 after both are admitted.
    assert.ok(!deps("pycluster-staging-app-1-app").includes(admitted(0)));
    for (const i of [2, 3]) {
        assert.ok(deps(`pycluster-staging-app-${i}-app`).includes(admitted(0)), `${i} after node 0`);
        assert.ok(deps(`pycluster-staging-app-${i}-app`).includes(admitted(1)), `${i} after node 1`);
    }
    // Within a node: app (the node drains itself) -> admit (LB).
    assert.ok(deps("pycluster-staging-app-2-lb-admit").includes(urn("pycluster-staging-app-2-app")));
    // Releases unpack and changes are validated everywhere without waiting for the rollout...
    assert.ok(!deps("pycluster-staging-app-3-release").includes(admitted(0)));
    assert.ok(!deps("pycluster-staging-app-3-check").includes(admitted(0)));
    // ...and no node changes before every node validated the change.
    for (const i of [0, 1, 2, 3]) {
        for (const j of [0, 1, 2, 3]) assert.ok(deps(`pycluster-staging-app-${i}-app`).includes(urn(`pycluster-staging-app-${j}-check`)), `app ${i} after check ${j}`);
    }
    assert.match(find(run, COMMAND, "pycluster-staging-app-2-check").inputs.create, /hostctl\.pyz app .* --check-only$/);
    // nginx tries enough nodes to get past a whole batch that refuses connections while it changes.
    assert.match(find(run, COMMAND, "pycluster-staging-lb-nginx").inputs.stdin, /proxy_next_upstream_tries 4;/);
    assert.ok(run.byType(COMMAND).every(c => !c.name.endsWith("-lb-drain")), "rollouts never reload nginx to drain");
});

test("no secret reaches a command line, a plain input or a plain output", async () => {
    const env = { DB_PASSWORD: "db-secret-value-0192", API_TOKEN: "tok-secret-8841" };
    // Credentials in the stack's config (secrets with --secret), not the environment: they must stay secret from there too.
    const run = await runProgram({
        stack: "staging",
        set: CONFIG_CREDENTIALS.set,
        setSecret: { ...CONFIG_CREDENTIALS.setSecret, appEnv: JSON.stringify(env) },
        env: {},
    });
    const secrets = [
        TEST_CREDENTIALS.ovhApplicationSecret,
        TEST_CREDENTIALS.ovhConsumerKey,
        TEST_CREDENTIALS.openstackPassword,
        ...Object.values(env),
        ...run.byType("tls:index/privateKey:PrivateKey").map(k => `FAKE-OPENSSH-PRIVATE-KEY-${k.name}`),
        ...run.byType("tls:index/privateKey:PrivateKey").map(k => `FAKE-PRIVATE-KEY-${k.name}`),
    ];
    const leaks: string[] = [];
    const scan = (where: string, value: unknown) => {
        if (isWrappedSecret(value)) return;
        if (typeof value === "string") {
            for (const s of secrets) if (value.includes(s)) leaks.push(`${where} contains ${s.slice(0, 12)}...`);
        } else if (Array.isArray(value)) value.forEach((v, i) => scan(`${where}[${i}]`, v));
        else if (value && typeof value === "object") for (const [k, v] of Object.entries(value)) scan(`${where}.${k}`, v);
    };
    for (const r of run.resources) scan(`${r.type} ${r.name}`, r.rawInputs);
    for (const [k, v] of Object.entries(run.outputs)) if (!run.secretOutputs.includes(k)) scan(`output ${k}`, v);
    assert.deepEqual(leaks, [], leaks.join("\n"));
    // The env reached the app step, inside its secret stdin.
    const app = find(run, COMMAND, "pycluster-staging-app-0-app");
    assert.ok(isWrappedSecret(app.rawInputs.stdin));
    assert.match(app.inputs.stdin, /DB_PASSWORD="db-secret-value-0192"/);
    assert.ok(app.options.additionalSecretOutputs.includes("stdin"));
});

test("a preview (unknown outputs) builds the same plan without running anything", async () => {
    const run = await runProgram({ stack: "staging", preview: true });
    assert.equal(run.byType(INSTANCE).length, 3);
    assert.equal(run.byType(COMMAND).length, 4 * 3 + 1 + 5 * 2);
    // What only a host can say is unknown in a preview, as the CLI shows it.
    assert.equal(run.outputs.releases, UNKNOWN_OUTPUT);
});

test("outputs: URL, addresses, SSH commands through the stack's ssh_config, capacity and effective settings", async () => {
    const run = await stack("staging");
    const o = run.outputs as Record<string, any>;
    assert.equal(o.lbPrivateIp, "10.120.0.2");
    assert.equal(o.sshLb, "ssh -F ~/.ssh/pycluster-staging.config pycluster-staging-lb");
    assert.deepEqual(o.sshApps, ["ssh -F ~/.ssh/pycluster-staging.config pycluster-staging-app-0", "ssh -F ~/.ssh/pycluster-staging.config pycluster-staging-app-1"]);
    assert.equal(
        o.sshKeySetup,
        "(umask 077 && pulumi_cli() { if command -v pulumi >/dev/null 2>&1; then pulumi \"$@\"; else npx --no-install pulumi \"$@\"; fi; }" +
            " && mkdir -p ~/.ssh && rm -f ~/.ssh/pycluster-staging && pulumi_cli stack output --stack staging --show-secrets sshPrivateKey > ~/.ssh/pycluster-staging" +
            " && chmod 600 ~/.ssh/pycluster-staging && pulumi_cli stack output --stack staging sshConfig > ~/.ssh/pycluster-staging.config" +
            " && pulumi_cli stack output --stack staging sshKnownHosts > ~/.ssh/pycluster-staging.known_hosts)",
    );
    assert.ok(o.capacity.ceiling >= 50000);
    assert.match(o.capacity.bindingLimit, /worker_connections/);
    // What the vCPUs carry, from config/rates.ts, and the limits nginx answers overload with.
    const rates = o.capacity.rates;
    assert.ok(rates.requestsPerSecond.ceiling > 0 && rates.newConnectionsPerSecond.ceiling > 0);
    assert.match(rates.requestsPerSecond.bindingLimit, /^(LB CPU: proxying|app CPU): /);
    assert.equal(rates.requestsPerSecond.target, "not checked (0)");
    assert.match(rates.measured, /\(bench\/results\//);
    assert.ok(o.capacity.overload.requestRate >= rates.requestsPerSecond.ceiling, "nginx's limit is the LB's own ceiling: never below the model's");
    assert.equal(o.capacity.overload.perNodeConnections, 5 * 6000);
    assert.equal(o.settings.gunicorn.workers, 5);
    assert.match(o.release, /^[0-9a-f]{12}$/);
});

/** known_hosts text as address -> "type key", checking each line's shape. */
function knownHosts(text: string): Map<string, string> {
    const lines = text.split("\n").filter(l => l && !l.startsWith("#"));
    const map = new Map(lines.map(l => {
        const [address, type, key, ...rest] = l.split(" ");
        assert.equal(rest.length, 1, `one comment (the alias): ${l}`);
        return [address, `${type} ${key}`];
    }));
    assert.equal(map.size, lines.length, "one line per address");
    return map;
}

test("SSH outputs: the config and known_hosts hold every node, in files named after the stack; no key inlined", async () => {
    for (const monitoring of [false, true]) {
        const run = await runProgram({ stack: "staging", set: { appNodeCount: "3", monitoringNode: String(monitoring) } });
        const o = run.outputs as Record<string, any>;
        const instances = run.byType(INSTANCE).map(i => i.name);
        assert.equal(instances.length, monitoring ? 5 : 4);
        const hosts = [...(o.sshConfig as string).matchAll(/^Host (\S+)$/gm)].map(m => m[1]);
        assert.deepEqual(hosts.sort(), [...instances].sort(), "a Host block per instance, aliased by its name");
        assert.equal((o.sshConfig.match(/^    ProxyJump pycluster-staging-lb$/gm) ?? []).length, instances.length - 1, "every node but the LB through it");
        assert.match(o.sshConfig, new RegExp(`^Host pycluster-staging-lb\n    HostName ${o.lbPublicIp.replace(/\./g, "\\.")}\n`, "m"));
        assert.deepEqual(new Set(o.sshConfig.match(/^    IdentityFile .*$/gm)), new Set(["    IdentityFile ~/.ssh/pycluster-staging"]));
        assert.deepEqual(new Set(o.sshConfig.match(/^    UserKnownHostsFile .*$/gm)), new Set(["    UserKnownHostsFile ~/.ssh/pycluster-staging.known_hosts"]));
        assert.deepEqual([...knownHosts(o.sshKnownHosts).keys()].sort(), [o.lbPublicIp, "10.120.0.3", "10.120.0.4", "10.120.0.5", ...(monitoring ? ["10.120.0.127"] : [])].sort());
        // Every alias a command names has its block.
        const commands = [o.sshLb, ...o.sshApps, ...(monitoring ? [o.monitoring.prometheus.ssh, o.monitoring.prometheus.tunnel] : [])];
        for (const c of commands) assert.ok(hosts.includes(c.split(" ").pop()), c);
        assert.equal(o.sshApps.length, 3);
        for (const text of [o.sshConfig, o.sshKnownHosts, o.sshKeySetup, ...commands]) assert.doesNotMatch(text, /PRIVATE KEY|FAKE-/, "no key material but public keys");
        assert.deepEqual(run.secretOutputs, ["sshPrivateKey"], "the config and known hosts are plain outputs");
    }
});

test("the known hosts are exactly the host keys the program's own connections pin", async () => {
    const run = await runProgram({ stack: "staging", set: { monitoringNode: "true" } });
    const pinned = new Map<string, string>();
    const pin = (host: string, key: string) => {
        assert.ok(!pinned.has(host) || pinned.get(host) === key, `${host} pinned with two keys`);
        pinned.set(host, key);
    };
    for (const c of [...run.byType(COMMAND), ...run.byType(COPY)]) {
        const conn = c.inputs.connection;
        pin(conn.host, conn.hostKey);
        if (conn.proxy) pin(conn.proxy.host, conn.proxy.hostKey);
    }
    assert.equal(pinned.size, 4, "the LB, 2 app nodes, the monitoring node");
    assert.deepEqual(knownHosts((run.outputs as any).sshKnownHosts), pinned);
});

test("a replaced VM is provisioned again: every step on it is triggered by its instance id", async () => {
    const run = await stack("staging");
    for (const c of [...run.byType(COMMAND), ...run.byType(COPY)]) {
        const host = c.name.replace(/-(bootstrap|packages|kernel|monitoring|nginx|release|releases|check|app|upload|lb-drain|lb-admit)$/, "");
        const triggers: string[] = c.inputs.triggers;
        if (c.name.endsWith("-lb-drain") || c.name.endsWith("-lb-admit")) {
            // On the LB, for one node: either VM being replaced re-runs it.
            assert.deepEqual(triggers, ["pycluster-staging-lb-id", `${host}-id`], c.name);
        } else {
            assert.deepEqual(triggers, [`${host}-id`], c.name);
        }
    }
});

test("static files: packed from staticDir, uploaded to the LB and switched before nginx serves them", async () => {
    const run = await runProgram({ stack: "staging", set: { staticUrlPath: "/static/", staticDir: "static" } });
    const upload = find(run, COPY, "pycluster-staging-lb-static-upload");
    assert.match(upload.inputs.remotePath, /^\/var\/tmp\/pycluster-static-webapp-[0-9a-f]{12}\.tar\.gz$/);
    const step = find(run, COMMAND, "pycluster-staging-lb-static");
    assert.match(step.inputs.create, /hostctl\.pyz static --app webapp --release [0-9a-f]{12}$/);
    assert.ok(step.options.dependsOn.includes(upload.urn));
    const nginx = find(run, COMMAND, "pycluster-staging-lb-nginx");
    assert.ok(nginx.options.dependsOn.includes(step.urn));
    assert.match(nginx.inputs.stdin, /location \/static\/ \{\n\s+alias \/var\/www\/webapp\/static\/;/);
});

const ZONE_RECORD = "ovh:Domain/zoneRecord:ZoneRecord";

test("letsencrypt: certbot runs on the LB once nginx serves the domain's ACME path, after checking the domain resolves to the LB", async () => {
    const run = await stack("prod");
    const le = find(run, COMMAND, "pycluster-prod-lb-letsencrypt");
    const ip = run.outputs.lbPublicIp as string;
    assert.equal(
        le.inputs.create,
        "sudo python3 /usr/local/lib/pycluster/hostctl.pyz letsencrypt --domain www.example.com --email ops@example.com --webroot /var/www/acme " +
            `--server https://acme-v02.api.letsencrypt.org/directory --expect-address ${ip}`,
        "Let's Encrypt production; no managed record: one check, no wait",
    );
    // prod is a pair: the first LB runs the change once its finishing step is done.
    assert.ok(le.options.dependsOn.includes(find(run, COMMAND, "pycluster-prod-lb-nginx-finish").urn));
    assert.ok(le.options.dependsOn.includes(find(run, COMMAND, "pycluster-prod-lb-2-nginx").urn));
    assert.equal(run.byType(ZONE_RECORD).length, 0, "no dnsZone: the program touches no DNS");
    const nginx = find(run, COMMAND, "pycluster-prod-lb-nginx");
    assert.match(nginx.inputs.stdin, /server_name www\.example\.com;/);
    assert.match(nginx.inputs.stdin, /ssl_reject_handshake on;/);
    assert.match(nginx.inputs.stdin, /^file tls\/fullchain\.pem 0644/m, "a placeholder certificate until certbot has one");
});

test("dnsZone: the domain's A record in the zone points at the floating IP, and the letsencrypt step waits for it", async () => {
    const staging = "https://acme-staging-v02.api.letsencrypt.org/directory";
    const run = await runProgram({ stack: "prod", set: { dnsZone: "example.com", dnsRecordTtl: "120", letsencryptServer: staging } });
    const [record] = run.byType(ZONE_RECORD);
    assert.equal(run.byType(ZONE_RECORD).length, 1);
    const fip = find(run, FIP, "pycluster-prod-lb-fip");
    assert.equal(record.inputs.target, run.outputs.lbPublicIp, "the target is the floating IP's address");
    assert.ok(record.options.dependsOn.includes(fip.urn), "known only once the floating IP exists");
    assert.deepEqual({ zone: record.inputs.zone, subdomain: record.inputs.subdomain, fieldtype: record.inputs.fieldtype, ttl: record.inputs.ttl }, { zone: "example.com", subdomain: "www", fieldtype: "A", ttl: 120 });
    assert.equal(record.options.parent, find(run, "pycluster:lb:LoadBalancer", "pycluster-prod-lb").urn);
    const [ovhProvider] = run.byType("pulumi:providers:ovh");
    assert.ok(record.options.provider.startsWith(`${ovhProvider.urn}::`), `the program's ovh provider, inherited from the cluster (${record.options.provider})`);
    const le = find(run, COMMAND, "pycluster-prod-lb-letsencrypt");
    assert.ok(le.options.dependsOn.includes(record.urn), "certbot runs after the record exists");
    assert.match(le.inputs.create, new RegExp(`--server ${staging.replace(/[./]/g, "\\$&")} --expect-address ${run.outputs.lbPublicIp} --wait 300 --managed-record$`));
    // Without letsencrypt the record is still managed: the site's name points at the LB.
    const selfSigned = await runProgram({ stack: "staging", set: { domain: "www.example.com", dnsZone: "example.com" } });
    assert.equal(selfSigned.byType(ZONE_RECORD).length, 1);
    assert.equal(selfSigned.resources.filter(r => r.type === COMMAND && r.name.endsWith("-letsencrypt")).length, 0);
});

test("the floating IP: a changed description never touches it; production stacks protect it", async () => {
    for (const [name, protect] of [["dev", false], ["staging", false], ["prod", true]] as const) {
        const fip = find(await stack(name), FIP, `pycluster-${name}-lb-fip`);
        assert.deepEqual(fip.options.ignoreChanges, ["description"], name);
        assert.equal(fip.options.protect, protect, name);
    }
    const forced = await runProgram({ stack: "staging", set: { production: "true", tlsMode: "letsencrypt", domain: "www.example.com", letsencryptEmail: "ops@example.com", rolloutBatchSize: "1" } });
    assert.equal(find(forced, FIP, "pycluster-staging-lb-fip").options.protect, true, "production: true protects it too");
    const others = (await stack("prod")).resources.filter(r => r.type !== FIP && r.options?.protect);
    assert.deepEqual(others.map(r => r.name), [], "nothing else is protected (a replaced VM must stay replaceable)");
});

test("each node is admitted on the LB after its gate; drains on the LB are leases (new nodes)", async () => {
    const run = await stack("staging");
    const admit = find(run, COMMAND, "pycluster-staging-app-1-lb-admit");
    assert.match(admit.inputs.create, /upstream --server 10\.120\.0\.4:8000 undrain && .* gate --url http:\/\/10\.120\.0\.4:8000\/healthz .* gate --url https:\/\/127\.0\.0\.1\/healthz .* --insecure && .* upstream --server 10\.120\.0\.4:8000 --fail-timeout 10 settle # change [0-9a-f]{16}$/);
    const kernel = find(run, COMMAND, "pycluster-staging-lb-kernel");
    assert.match(kernel.inputs.stdin, /^file pycluster-drain-expiry\.timer 0644/m);
    assert.match(kernel.inputs.stdin, /ExecStart=\/usr\/bin\/python3 \/usr\/local\/lib\/pycluster\/hostctl\.pyz upstream expire/);
    assert.match(find(run, INSTANCE, "pycluster-staging-app-0").inputs.userData, /- nftables/, "app nodes can drain themselves");
});

test("the admit step moves with anything its node receives, and only then", async () => {
    const fp = async (set: Record<string, string>, secret: Record<string, string> = {}) => {
        const run = await runProgram({ stack: "staging", set, setSecret: secret });
        return find(run, COMMAND, "pycluster-staging-app-0-lb-admit").inputs.create.split("# change ")[1];
    };
    const base = await fp({});
    assert.equal(await fp({}), base, "stable across runs");
    assert.notEqual(await fp({ gunicornTimeout: "31" }), base, "a gunicorn setting");
    assert.notEqual(await fp({}, { appEnv: '{"A":"1"}' }), base, "the app's environment");
    assert.equal(await fp({ lbMethod: "round_robin" }), base, "an LB-only setting does not touch the nodes");
});

test("no setting of the app or the TLS mode changes user data (OpenStack would rebuild the VMs)", async () => {
    const userData = async (set: Record<string, string>) => {
        const { tlsPrivateKey, ...plain } = set;
        const run = await runProgram({ stack: "prod", set: plain, setSecret: tlsPrivateKey ? { tlsPrivateKey } : {} });
        return run.byType(INSTANCE).map(i => [i.name, i.inputs.userData]);
    };
    const base = await userData({});
    assert.deepEqual(await userData({ appKind: "asgi" }), base);
    const pem = (kind: string) => `-----BEGIN ${kind}-----\nx\n-----END ${kind}-----`;
    assert.deepEqual(await userData({ tlsMode: "provided", tlsCertificate: pem("CERTIFICATE"), tlsPrivateKey: pem("PRIVATE KEY") }), base);
    assert.deepEqual(await userData({ gunicornWorkers: "9", targetConcurrency: "60000", appFlavor: "b3-32" }), base);
    // What a configuration adds is installed over SSH instead.
    const run = await stack("prod");
    assert.equal(
        find(run, COMMAND, "pycluster-prod-lb-packages").inputs.create,
        "sudo python3 /usr/local/lib/pycluster/hostctl.pyz packages nginx keepalived certbot prometheus-node-exporter prometheus-nginx-exporter",
    );
});

test("the README's path: credentials only exported in the environment, and `preview` and `up` of every stack file work", async () => {
    for (const stackName of ["dev", "staging", "prod"]) {
        for (const preview of [true, false]) {
            const run = await runProgram({ stack: stackName, preview, env: TEST_ENV });
            const ovhProvider = run.byType("pulumi:providers:ovh")[0];
            assert.equal(ovhProvider.inputs.applicationKey, TEST_ENV.OVH_APPLICATION_KEY);
            assert.equal(ovhProvider.inputs.consumerKey, TEST_ENV.OVH_CONSUMER_KEY);
            assert.equal(ovhProvider.inputs.endpoint, "ovh-eu");
            assert.ok(isWrappedSecret(ovhProvider.rawInputs.applicationSecret));
            const os = run.byType("pulumi:providers:openstack")[0];
            assert.equal(os.inputs.userName, TEST_ENV.OS_USERNAME);
            assert.equal(os.inputs.tenantId, TEST_ENV.OVH_CLOUD_PROJECT_SERVICE);
            assert.equal(os.inputs.authUrl, "https://auth.cloud.ovh.net/v3/");
        }
    }
});

test("what reaches the cloud is the normalised, validated text: no whitespace, no leading zeros, no duplicate rule", async () => {
    // The fake cloud answers 400/409 as Neutron does (local/neutron.ts): these would fail mid-`up` if sent raw.
    const run = await runProgram({ stack: "staging", set: { adminCidrs: '[" 203.0.113.10/32", "11.0.0.0/08"]', deployerCidrs: '["203.0.113.10/32", "192.0.2.7/32"]', dnsNameservers: '[" 213.186.33.99"]' } });
    const ssh = run.byType(RULE).filter(r => r.inputs.portRangeMin === 22 && r.name.includes("-lb-"));
    assert.deepEqual(ssh.map(r => r.inputs.remoteIpPrefix).sort(), ["11.0.0.0/8", "192.0.2.7/32", "203.0.113.10/32"]);
    assert.deepEqual(ssh.map(r => r.name).sort(), ["pycluster-staging-lb-ssh-11-0-0-0-8", "pycluster-staging-lb-ssh-203-0-113-10-32", "pycluster-staging-lb-ssh-deployer-192-0-2-7-32"]);
    assert.deepEqual(run.byType("ovh:CloudProject/networkPrivateSubnetV2:NetworkPrivateSubnetV2")[0].inputs.dnsNameservers, ["213.186.33.99"]);
    // A rule's description never replaces it (Neutron would refuse the replacement as a duplicate of the old rule).
    for (const r of run.byType(RULE)) assert.deepEqual(r.options.ignoreChanges, ["description"], r.name);
});

test("nothing leaves the private network before the gateway: every instance, the floating IP and its association wait for it", async () => {
    const run = await stack("staging");
    const gateway = run.byType("ovh:CloudProject/gateway:Gateway")[0];
    for (const r of [...run.byType(INSTANCE), ...run.byType(FIP), ...run.byType(FIP_ASSOC)]) {
        assert.ok(r.options.dependsOn.includes(gateway.urn), `${r.name} waits for the gateway`);
    }
});

test("every port enforces its security groups explicitly (a network without port security fails loudly)", async () => {
    for (const name of ["dev", "prod"]) {
        for (const port of (await stack(name)).byType(PORT)) assert.equal(port.inputs.portSecurityEnabled, true, port.name);
    }
});

test("appPackages are installed over SSH on the app nodes only; adding one never changes user data", async () => {
    const plain = await stack("staging");
    const withPackages = await runProgram({ stack: "staging", set: { appPackages: '["python3-flask", "libpq5"]' } });
    const userData = (run: ProgramRun) => run.byType(INSTANCE).map(i => [i.name, i.inputs.userData]);
    assert.deepEqual(userData(withPackages), userData(plain));
    for (const node of ["app-0", "app-1"]) {
        assert.match(find(withPackages, COMMAND, `pycluster-staging-${node}-packages`).inputs.create, / python3-flask libpq5$/);
    }
    assert.doesNotMatch(find(withPackages, COMMAND, "pycluster-staging-lb-packages").inputs.create, /python3-flask/);
});

test("the releases kept on each app node are an output, read once the node's change is in rotation", async () => {
    const run = await stack("staging");
    // The mocks run no command: no release listed yet, one entry per node.
    assert.deepEqual(run.outputs.releases, { "pycluster-staging-app-0": [], "pycluster-staging-app-1": [] });
    const step = find(run, COMMAND, "pycluster-staging-app-1-releases");
    assert.match(step.inputs.create, /^sudo python3 \/usr\/local\/lib\/pycluster\/hostctl\.pyz releases --app \S+ # change [0-9a-f]+$/);
    assert.ok(step.options.dependsOn?.some((d: string) => d.endsWith("pycluster-staging-app-1-lb-admit")), JSON.stringify(step.options.dependsOn));
});

test("hostctl's releases listing parses; empty output is no release", () => {
    const listed = '[{"id": "r2", "completed": "2026-12-02T10:00:00Z", "current": true}, {"id": "r1", "completed": "2026-12-01T10:00:00Z", "current": false}]\n';
    assert.deepEqual(parseReleases(listed).map(r => [r.id, r.current]), [["r2", true], ["r1", false]]);
    assert.deepEqual(parseReleases(""), []);
});

test("an app change never changes nginx (a reload under load costs requests); nginx changes only after every app node checked the change", async () => {
    const lbFiles = async (set: Record<string, string>) => find(await runProgram({ stack: "staging", set }), COMMAND, "pycluster-staging-lb-nginx").inputs.stdin;
    const sample = await lbFiles({});
    assert.equal(await lbFiles({ appDir: "provisioning/app/sample", appModule: "app:application" }), sample, "another app whose cost is unknown");
    assert.equal(await lbFiles({ appRequestsPerCore: "50" }), sample, "a measured app cost");
    const run = await stack("staging");
    const nginx = find(run, COMMAND, "pycluster-staging-lb-nginx");
    for (const node of ["app-0", "app-1"]) {
        const check = find(run, COMMAND, `pycluster-staging-${node}-check`);
        assert.ok(nginx.options.dependsOn.includes(check.urn), `nginx waits for ${node}'s check`);
    }
});

/** The recording's sections (test/support/pushRecording.ts) by resource name, without the dependency lines: dependsOn is no input of a command and re-runs nothing. */
async function pushedCommands(run: ProgramRun): Promise<Map<string, string>> {
    const sections = (await recordPushes(run)).split(/^(?==== )/m).filter(Boolean);
    return new Map(sections.map(s => [s.split("\n")[0].split(" ")[2], s.replace(/^after: .*\n/m, "")] as const));
}

test("scaling the app tier out or in re-runs nothing on the nodes that stay: only the new nodes and the load balancers change", async () => {
    // One program at a time: the mocks are the process's.
    const before = await pushedCommands(await runProgram({ stack: "pair" }));
    const after = await pushedCommands(await runProgram({ stack: "pair", set: { appNodeCount: "3" } }));
    const staying = [...before.keys()].filter(n => /-app-[01]-/.test(n));
    assert.ok(staying.length >= 8, `the two nodes' steps: ${staying.join(", ")}`);
    for (const name of staying) assert.equal(after.get(name), before.get(name), `${name} would re-run on a scale from 2 to 3 nodes`);
    assert.ok([...after.keys()].some(n => /-app-2-app$/.test(n)), "the new node is rolled out");
    const changed = [...after.keys()].filter(n => before.has(n) && after.get(n) !== before.get(n));
    assert.deepEqual(changed.sort(), ["pycluster-pair-lb-2-nginx", "pycluster-pair-lb-nginx", "pycluster-pair-lb-nginx-finish", "pycluster-pair-mon-monitoring"], "the LBs' upstreams and the scrape targets");
});
