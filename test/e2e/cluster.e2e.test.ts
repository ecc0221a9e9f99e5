/**
 * End to end: the real program stands the e2e stack up on local Debian hosts
 * (1 load balancer + 3 app nodes) over real SSH, then changes, scales and
 * destroys it. The tests run in order and share the cluster.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { appNodeFiles } from "../../provisioning/appFiles";
import { knownMetricNames } from "../../provisioning/render/prometheus";
import { metricNames } from "../support/promql";
import { localDown, localStackConfig, localUp, LocalStackOptions, UpResult } from "../../local/stack";
import { leftoversOf } from "../../local/cloud";
import { runCommand } from "../../local/ssh";
import { connectionTo, curl, e2eSkipReason, onHost, runPasted, seconds, startPasted, tcpOpens, tcpOpensAsync } from "./support";
import { pathWithoutPulumi, pulumiOutputStub } from "../support/pulumiOutputStub";
import { shellQuote } from "../../lib/shell";

const STACK = "e2e";
const keep = process.env.PYCLUSTER_E2E_KEEP === "1";
const log = process.env.PYCLUSTER_E2E_VERBOSE ? (l: string) => console.log(`  ${l}`) : () => undefined;
/** A secret in the app's environment: the security test looks for it everywhere it must not be. */
const SECRET_TOKEN = `e2e-secret-${Math.random().toString(36).slice(2, 12)}`;
const base: LocalStackOptions = { stack: STACK, log, setSecret: { appEnv: JSON.stringify({ E2E_TOKEN: SECRET_TOKEN }) } };
/** Everything the runs recorded: step outputs and non-secret outputs. */
const recorded: string[] = [];
const remember = (r: UpResult) => {
    for (const s of r.steps) recorded.push(`${s.name} ${s.output ?? ""}`);
    for (const [k, v] of Object.entries(r.outputs)) if (!r.secretOutputs.includes(k)) recorded.push(`${k} ${JSON.stringify(v)}`);
    return r;
};

let skip: string | undefined;
let up: UpResult;
let appIps: string[] = [];
let monIp = "";

async function teardown() {
    if (keep || skip) return;
    await localDown({ stack: STACK, log }).catch(e => console.error(`teardown: ${e}`));
}

before(async () => {
    skip = await e2eSkipReason();
    if (skip) return;
    // A leftover cluster from an interrupted run would make "from scratch" untrue.
    await localDown({ stack: STACK, log });
    process.once("SIGINT", () => void teardown().then(() => process.exit(130)));
    process.once("SIGTERM", () => void teardown().then(() => process.exit(143)));
});
after(teardown);

const e2e = (name: string, fn: () => Promise<void>) => test(name, async t => (skip ? t.skip(skip) : fn()));

const HOSTS = ["pycluster-e2e-app-0", "pycluster-e2e-app-1", "pycluster-e2e-app-2", "pycluster-e2e-lb", "pycluster-e2e-mon"];

e2e("1. up from scratch on 1 load balancer + 3 app hosts + the monitoring host", async () => {
    up = remember(await localUp(base));
    appIps = up.outputs.appPrivateIps;
    monIp = /http:\/\/([\d.]+):9090\//.exec(up.outputs.monitoring.prometheus.url)![1];
    console.log(`up from scratch: ${seconds(up.wallMs)}, ${up.remoteExecutions.length} remote steps`);
    assert.equal(appIps.length, 3);
    assert.deepEqual(up.cloud.hosts().map(h => h.name).sort(), HOSTS);
    assert.ok(up.cloud.hosts().every(h => h.running));
    if (keep) {
        fs.writeFileSync(
            "/run/pycluster-e2e.json",
            JSON.stringify({ lb: up.outputs.lbPublicIp, publicNetns: up.cloud.publicNetns, apps: appIps, sshUser: "debian", sshKey: up.sshKeyFile, sshConfig: up.sshConfigFile }),
        );
    }
});

e2e("2. HTTPS answers 200 from the sample app on every node; HTTP redirects to HTTPS", async () => {
    const url = up.outputs.url as string;
    const ns = up.cloud.publicNetns;
    const ok = curl(ns, ["-k", "-o", "/dev/null", "-w", "%{http_code} %{http_version}", url]);
    assert.equal(ok.out, "200 2", ok.out);
    const answers = curl(ns, ["-k", ...Array.from({ length: 60 }, () => url)]);
    assert.equal(answers.code, 0, answers.out);
    const nodes = answers.out.trim().split("\n").map(l => JSON.parse(l).node as string);
    assert.equal(nodes.length, 60);
    const counts: Record<string, number> = {};
    for (const n of nodes) counts[n] = (counts[n] ?? 0) + 1;
    console.log(`60 requests: ${JSON.stringify(counts)}`);
    assert.deepEqual(Object.keys(counts).sort(), ["pycluster-e2e-app-0", "pycluster-e2e-app-1", "pycluster-e2e-app-2"]);
    const redirect = curl(ns, ["-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", `http://${up.outputs.lbPublicIp}/some/path?q=1`]);
    assert.equal(redirect.out, `301 https://${up.outputs.lbPublicIp}/some/path?q=1`);
    // Static files come from nginx on the LB, with HSTS and caching headers.
    const file = curl(ns, ["-k", "-i", `${url}static/hello.txt`]);
    assert.match(file.out, /^HTTP\/2 200/);
    assert.match(file.out, /strict-transport-security: max-age=63072000/i);
    assert.match(file.out, /cache-control: public/i);
    assert.match(file.out, /Served by nginx from the load balancer/);
    assert.match(curl(ns, ["-k", "-o", "/dev/null", "-w", "%{http_code}", `${url}.env`]).out, /^(403|404)$/, "dotfiles denied");
});

e2e("3. app nodes: app port and SSH unreachable from the internet; SSH works only through the LB", async () => {
    for (const ip of appIps) {
        for (const port of [8000, 22]) {
            assert.equal(tcpOpens(up.cloud.publicNetns, ip, port), false, `${ip}:${port} from the internet`);
            assert.equal(tcpOpens(undefined, ip, port), false, `${ip}:${port} from the deployer`);
        }
        const direct = await runCommand(connectionTo(up, ip, false), "true").catch(e => e as Error);
        assert.ok(direct instanceof Error, `direct SSH to ${ip} must fail`);
        assert.equal((await onHost(up, ip, "hostname")).trim(), `pycluster-e2e-app-${appIps.indexOf(ip)}`);
    }
    // The LB is reachable on 22 from the admin network, and its app-facing ports are private.
    assert.equal(tcpOpens(up.cloud.publicNetns, up.outputs.lbPublicIp, 22), true);
    assert.equal(tcpOpens(up.cloud.publicNetns, up.outputs.lbPublicIp, 8080), false, "stub_status listens on the private address only");
});

e2e("4. gunicorn runs as the app user under the rendered unit, with the stack's settings; nginx upstream = the 3 app IPs", async () => {
    const cfg = localStackConfig(base);
    for (const [i, ip] of appIps.entries()) {
        const files = appNodeFiles(cfg, { nodeIp: ip });
        const unit = files.find(f => f.name === "webapp.service")!.content;
        assert.equal(await onHost(up, ip, "cat /etc/systemd/system/webapp.service"), unit, `node ${i}: unit as rendered`);
        const show = await onHost(up, ip, "systemctl show webapp -p ActiveState -p MainPID -p User");
        assert.match(show, /ActiveState=active/);
        const pid = /MainPID=(\d+)/.exec(show)![1];
        assert.equal((await onHost(up, ip, `ps -o user= -p ${pid}`)).trim(), "webapp", "master runs as the app user");
        const workers = (await onHost(up, ip, `ps -o user= --ppid ${pid}`)).trim().split("\n");
        assert.deepEqual(workers, Array(cfg.gunicorn.workers).fill("webapp"), "the configured number of workers, as the app user");
        // Each worker's heartbeat file (unlinked once open) is on tmpfs, inside the unit's sandbox.
        const heartbeats = await onHost(up, ip, `for w in $(pgrep -P ${pid}); do sudo ls -l /proc/$w/fd | grep -o '/[^ ]*wgunicorn-[^ ]*' || echo "worker $w: none"; done`);
        assert.deepEqual(heartbeats.trim().split("\n").map(l => l.replace(/wgunicorn-\w+/, "wgunicorn-*")), Array(cfg.gunicorn.workers).fill("/dev/shm/wgunicorn-*"), heartbeats);
        const limits = await onHost(up, ip, `cat /proc/${pid}/limits`);
        assert.match(limits, new RegExp(`Max open files\\s+${cfg.gunicorn.openFiles}\\s`));
        const effective = await onHost(up, ip, "sudo -u webapp sh -c 'cd /srv/webapp/current && .venv/bin/python -m gunicorn --print-config -c /etc/webapp/gunicorn.conf.py app:application'");
        const setting = (k: string) => new RegExp(`^${k}\\s+= (.*)$`, "m").exec(effective)?.[1];
        assert.equal(setting("bind"), `['${ip}:8000']`);
        assert.equal(setting("workers"), String(cfg.gunicorn.workers));
        assert.equal(setting("worker_class"), "gevent");
        assert.equal(setting("worker_connections"), String(cfg.gunicorn.workerConnections));
        assert.equal(setting("keepalive"), String(cfg.gunicorn.keepalive));
        assert.equal(setting("backlog"), String(cfg.gunicorn.backlog));
        assert.equal(setting("forwarded_allow_ips"), `['${cfg.network.lbIp}']`);
        const somaxconn = (await onHost(up, ip, "cat /proc/sys/net/core/somaxconn")).trim();
        assert.equal(somaxconn, String(cfg.kernel.somaxconn), "kernel settings applied");
    }
    const nginx = await onHost(up, "lb", "sudo nginx -T 2>/dev/null");
    const servers = [...nginx.matchAll(/^\s+server (\d+\.\d+\.\d+\.\d+:\d+)[^;]*;/gm)].map(m => m[1]);
    assert.deepEqual(servers, appIps.map(ip => `${ip}:8000`));
    assert.match(nginx, new RegExp(`worker_processes ${cfg.lb.workerProcesses};`));
    const nginxWorkers = (await onHost(up, "lb", "ps -o user= -C nginx")).trim().split("\n").filter(u => u === "www-data");
    assert.equal(nginxWorkers.length, cfg.lb.workerProcesses);
});

e2e("4b. TLS: 1.0 and 1.1 refused, 1.2 and 1.3 served, HSTS sent; an unknown Host gets no app response", async () => {
    const ns = up.cloud.publicNetns;
    const lb = up.outputs.lbPublicIp;
    const handshake = (version: string) =>
        spawnSync("ip", ["netns", "exec", ns, "openssl", "s_client", "-connect", `${lb}:443`, `-${version}`, "-cipher", "DEFAULT:@SECLEVEL=0", "-brief"], {
            input: "",
            encoding: "utf8",
            timeout: 10_000,
        });
    for (const old of ["tls1", "tls1_1"]) {
        const r = handshake(old);
        assert.notEqual(r.status, 0, `${old} accepted`);
        assert.match(`${r.stdout}${r.stderr}`, /alert protocol version|unsupported protocol|no protocols available/i, `${old}: ${r.stderr}`);
    }
    assert.match(handshake("tls1_2").stderr, /Protocol version: TLSv1\.2/);
    assert.match(handshake("tls1_3").stderr, /Protocol version: TLSv1\.3/);
    assert.match(curl(ns, ["-skI", up.outputs.url]).out, /strict-transport-security: max-age=63072000/i);
    const stranger = curl(ns, ["-sk", "-H", "Host: attacker.example", "-o", "/dev/null", "-w", "%{http_code}", up.outputs.url]);
    assert.equal(stranger.out.replace(/curl: .*\n?/g, "").trim(), "000", "connection closed without an answer (444)");
});

e2e("4c. security groups, as enforced on the hosts: app nodes take the app port and SSH from the LB only", async () => {
    const opens = async (from: "lb" | string, host: string, port: number) =>
        (await onHost(up, from, `timeout 3 bash -c 'exec 3<>/dev/tcp/${host}/${port}' 2>/dev/null && echo open || echo closed`)).trim();
    const [a, b] = appIps;
    assert.equal(await opens("lb", b, 8000), "open", "LB -> app port");
    assert.equal(await opens("lb", b, 22), "open", "LB -> app SSH");
    assert.equal(await opens(a, b, 8000), "closed", "app node -> another app node's port");
    assert.equal(await opens(a, b, 22), "closed", "app node -> another app node's SSH");
    assert.equal(await opens(a, "10.78.0.2", 22), "closed", "app node -> LB SSH (the private network is not an admin network)");
    // Out through the gateway's SNAT, as on OVH: a connection from an app node to the LB's public
    // address arrives from the router's public address (which this cloud's admin network, the
    // whole local internet, happens to include; on OVH the operator's network does not).
    assert.equal(
        (await onHost(up, a, `curl -s -o /dev/null -w '%{http_code}' -m 5 http://${up.outputs.lbPublicIp}/`)).trim(),
        "301",
        "app node -> the LB's public address, through the gateway: HTTP redirects to HTTPS",
    );
    assert.equal(await opens(a, "10.78.0.2", 8080), "open", "the LB's status listener from the private network");
    assert.match(await onHost(up, a, "curl -s http://10.78.0.2:8080/stub_status"), /Active connections:/);
    // The gateway (any other machine on the private network) reaches no app node either.
    assert.equal(tcpOpens(up.cloud.names.gatewayNetns, b, 8000), false);
});

e2e("4d. every host offers exactly the host key the program generated and pinned", async () => {
    const keys = JSON.parse(fs.readFileSync(`${up.cloud.stateDir}/keys-${STACK}.json`, "utf8")) as Record<string, { publicKeyOpenssh?: string }>;
    const pinned = (host: string) => keys[`tls:index/privateKey:PrivateKey::${host}-hostkey`].publicKeyOpenssh!.trim().split(" ").slice(0, 2).join(" ");
    const offered = (scan: string) => scan.trim().split("\n").filter(l => l && !l.startsWith("#")).map(l => l.split(" ").slice(1, 3).join(" "));
    const lbScan = spawnSync("ssh-keyscan", ["-T", "5", up.outputs.lbPublicIp], { encoding: "utf8" }).stdout;
    assert.deepEqual(offered(lbScan), [pinned("pycluster-e2e-lb")]);
    for (const [i, ip] of appIps.entries()) {
        const scan = await onHost(up, "lb", `ssh-keyscan -T 5 ${ip} 2>/dev/null`);
        assert.deepEqual(offered(scan), [pinned(`pycluster-e2e-app-${i}`)], `app ${i}`);
    }
    // A connection that pins another key is refused (what every step of the program does).
    const wrong = await runCommand({ ...connectionTo(up, "lb"), hostKey: pinned("pycluster-e2e-app-0") }, "true").catch(e => e as Error);
    assert.ok(wrong instanceof Error && /host key/i.test(wrong.message), String(wrong));
});

e2e("4e. the app runs unprivileged in a hardened unit (systemd-analyze security <= 5 on the node)", async () => {
    const report = await onHost(up, appIps[0], "systemd-analyze security webapp.service --no-pager");
    const exposure = Number(/Overall exposure level for webapp\.service: (\d+(?:\.\d+)?)/.exec(report)![1]);
    console.log(`systemd-analyze security on ${appIps[0]}: exposure ${exposure}`);
    assert.ok(exposure <= 5, `exposure ${exposure}`);
});

e2e("4f. secrets never reach a command line, a log, an output or the engine's state", async () => {
    const state = fs.readFileSync(`${up.cloud.stateDir}/engine-${STACK}.json`, "utf8");
    const keys = JSON.parse(fs.readFileSync(`${up.cloud.stateDir}/keys-${STACK}.json`, "utf8")) as Record<string, Record<string, string>>;
    // The key store holds what Pulumi keeps encrypted in its state: every private key, one per line of text.
    const privateKeys = Object.values(keys).flatMap(k => [k.privateKeyOpenssh, k.privateKeyPem].filter(Boolean)).map(k => k.split("\n")[1]);
    const secrets = [SECRET_TOKEN, ...privateKeys];
    const everything = [state, ...recorded, JSON.stringify(up.outputs.sshApps), up.outputs.url];
    for (const node of [...appIps, "lb", monIp]) {
        everything.push(await onHost(up, node, "ps -eo args"));
        everything.push(await onHost(up, node, "sudo journalctl --no-pager -q -o cat"));
    }
    const leaks = secrets.filter(secret => everything.some(text => text.includes(secret)));
    assert.deepEqual(leaks.map(l => l.slice(0, 8) + "..."), [], "a secret leaked");
    // Where the app's secret must be: in its 0600 env file and the app's environment.
    assert.equal((await onHost(up, appIps[0], "sudo stat -c '%a %U' /etc/webapp/env")).trim(), "600 root");
    assert.match(await onHost(up, appIps[0], "sudo cat /etc/webapp/env"), new RegExp(`E2E_TOKEN="${SECRET_TOKEN}"`));
    console.log(`secret scan: ${secrets.length} secret values, ${everything.length} recorded texts (state, step outputs, outputs, process lists, journals): no leak`);
});

e2e("4g. exporters answer on the private network only: bound to each node's private address, scraped from the monitoring node", async () => {
    const lbIp = up.outputs.lbPrivateIp as string;
    const lbPublic = up.outputs.lbPublicIp as string;
    const opens = async (from: string, host: string, port: number) =>
        (await onHost(up, from, `timeout 3 bash -c 'exec 3<>/dev/tcp/${host}/${port}' 2>/dev/null && echo open || echo closed`)).trim();
    // Each listener sits on the node's private address (never 0.0.0.0, never the LB's public one).
    const listeners = async (node: string) =>
        (await onHost(up, node, "ss -ltnH; ss -lunH")).split("\n").map(l => l.trim().split(/\s+/)[3]).filter(a => a && /:(9100|9102|9113|3903|9090|9125)$/.test(a)).sort();
    assert.deepEqual(await listeners("lb"), [`${lbIp}:3903`, `${lbIp}:9100`, `${lbIp}:9113`]);
    for (const ip of appIps) assert.deepEqual(await listeners(ip), ["127.0.0.1:9125", `${ip}:9100`, `${ip}:9102`].sort());
    assert.deepEqual(await listeners(monIp), [`${monIp}:9090`, `${monIp}:9100`]);
    // Probes a firewall drops wait for their timeout: all of them at once.
    const [a, b] = appIps;
    const probes: [string, Promise<boolean>, boolean][] = [
        // Not from the public side: the internet, the deployer, nor the LB's public address on the LB itself.
        ...[9100, 9113, 3903].flatMap((port): [string, Promise<boolean>, boolean][] => [
            [`internet -> LB public :${port}`, tcpOpensAsync(up.cloud.publicNetns, lbPublic, port), false],
            [`deployer -> LB public :${port}`, tcpOpensAsync(undefined, lbPublic, port), false],
            [`LB -> its own public address :${port}`, opens("lb", lbPublic, port).then(r => r === "open"), false],
        ]),
        ...([[a, 9100], [a, 9102], [monIp, 9090]] as const).map(([host, port]): [string, Promise<boolean>, boolean] => [`internet -> ${host}:${port}`, tcpOpensAsync(up.cloud.publicNetns, host, port), false]),
        // The security groups: the LB's exporters from the monitoring node only; app nodes' also from the LB.
        ["app node -> LB node exporter", opens(a, lbIp, 9100).then(r => r === "open"), false],
        ["app node -> another app node's statsd exporter", opens(a, b, 9102).then(r => r === "open"), false],
        ["app node -> Prometheus", opens(a, monIp, 9090).then(r => r === "open"), false],
        ["LB -> Prometheus (the SSH tunnel's path)", opens("lb", monIp, 9090).then(r => r === "open"), true],
        ["LB -> app node exporter (bastion)", opens("lb", b, 9100).then(r => r === "open"), true],
        ["monitoring node -> LB nginx exporter", opens(monIp, lbIp, 9113).then(r => r === "open"), true],
    ];
    const results = await Promise.all(probes.map(async ([what, open, expected]) => [what, await open, expected] as const));
    assert.deepEqual(results.filter(([, open, expected]) => open !== expected).map(([what, open]) => `${what}: ${open ? "open" : "closed"}`), []);
    // From the monitoring node, each exporter answers with its metrics.
    const scrape = (url: string) => onHost(up, monIp, `curl -sf ${url}`);
    assert.match(await scrape(`http://${lbIp}:9100/metrics`), /^node_cpu_seconds_total\{/m);
    assert.match(await scrape(`http://${lbIp}:9113/metrics`), /^nginx_up 1$/m);
    assert.match(await scrape(`http://${lbIp}:3903/metrics`), /^lb_http_responses_total\{status="200"\} \d+/m);
    for (const ip of appIps) assert.match(await scrape(`http://${ip}:9102/metrics`), /^gunicorn_workers\{app="webapp"\} \d+$/m);
});

e2e("4h. Prometheus on the monitoring node: every target up, the alert rules loaded, the dashboard's metrics all present", async () => {
    const cfg = localStackConfig(base);
    const api = async (query: string) => JSON.parse(await onHost(up, monIp, `curl -sf 'http://${monIp}:9090/api/v1/${query}'`)).data;
    // Every exporter the stack outputs: node x5, nginx, lb_log, gunicorn x3, prometheus.
    const expected = Object.values(up.outputs.monitoring.exporters as Record<string, string[]>).flat().length;
    assert.equal(expected, 11);
    const started = Date.now();
    let targets: { labels: Record<string, string>; health: string; lastError: string }[] = [];
    while (Date.now() - started < 90_000) {
        targets = (await api("targets?state=active")).activeTargets;
        if (targets.length === expected && targets.every(t => t.health === "up")) break;
        await new Promise(r => setTimeout(r, 1000));
    }
    const summary = targets.map(t => `${t.labels.job} ${t.labels.instance} ${t.health}${t.lastError ? ` (${t.lastError})` : ""}`).sort();
    console.log(`Prometheus targets after ${seconds(Date.now() - started)}:\n  ${summary.join("\n  ")}`);
    assert.equal(targets.length, expected, summary.join("; "));
    assert.ok(targets.every(t => t.health === "up"), summary.join("; "));
    const rules = (await api("rules")).groups.flatMap((g: any) => g.rules.map((r: any) => r.name));
    assert.deepEqual(rules.sort(), ["AppNodeErrorRate", "GunicornDown", "GunicornWorkersLow", "HighErrorRate", "NginxDown", "NodeDown", "UpstreamLatencyHigh"]);
    // Traffic, so the access log and gunicorn have something to report.
    curl(up.cloud.publicNetns, ["-k", "-o", "/dev/null", ...Array.from({ length: 30 }, () => up.outputs.url)]);
    const dashboard = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "monitoring", "grafana-dashboard.json"), "utf8"));
    const used = new Set<string>(dashboard.panels.flatMap((p: any) => (p.targets ?? []).flatMap((t: any) => metricNames(t.expr))));
    // ALERTS exists only while an alert is pending or firing.
    const wanted = [...used].filter(m => m !== "ALERTS" && knownMetricNames().has(m)).sort();
    let missing: string[] = wanted;
    while (Date.now() - started < 150_000 && missing.length > 0) {
        const present = new Set<string>(await api("label/__name__/values"));
        missing = wanted.filter(m => !present.has(m));
        if (missing.length > 0) await new Promise(r => setTimeout(r, 1000));
    }
    assert.deepEqual(missing, [], "metrics the dashboard reads but Prometheus does not have");
    const workers = (await api("query?query=gunicorn_workers")).result.map((r: any) => [r.metric.node, r.value[1]]).sort();
    assert.deepEqual(workers, [0, 1, 2].map(i => [`pycluster-e2e-app-${i}`, String(cfg.gunicorn.workers)]));
    const masters = (await api("query?query=gunicorn_up")).result.map((r: any) => [r.metric.node, r.value[1]]).sort();
    assert.deepEqual(masters, [0, 1, 2].map(i => [`pycluster-e2e-app-${i}`, "1"]));
    const alerts = (await api("alerts")).alerts.map((a: any) => `${a.labels.alertname} ${a.state} ${a.labels.node ?? ""}`);
    assert.deepEqual(alerts, [], "a healthy cluster has no alert pending or firing");
    console.log(`Prometheus: ${targets.length} targets up, ${rules.length} alert rules, ${wanted.length} dashboard metrics present, gunicorn_workers ${JSON.stringify(workers)}`);
});

e2e("4i. the SSH commands the stack outputs work as pasted: no agent, no ~/.ssh/config, every host key pinned", async () => {
    const o = up.outputs;
    const home = fs.mkdtempSync(path.join(os.tmpdir(), "pyc-e2e-home-"));
    const stub = pulumiOutputStub(STACK, { sshPrivateKey: o.sshPrivateKey, sshConfig: o.sshConfig, sshKnownHosts: o.sshKnownHosts }, up.secretOutputs);
    try {
        // sshKeySetup as printed, run as the README has it: from the project directory, where `npx pulumi`
        // is the project's launcher (a stand-in answering `stack output`: no Pulumi CLI or backend here),
        // and no `pulumi` on PATH.
        const setup = await runPasted(home, `cd ${shellQuote(stub.projectDir)} && ${o.sshKeySetup}`, { PATH: pathWithoutPulumi() });
        assert.equal(setup.code, 0, setup.stderr);
        const file = (name: string) => path.join(home, ".ssh", `pycluster-e2e${name}`);
        assert.equal((fs.statSync(file("")).mode & 0o777).toString(8), "600");
        assert.equal(fs.readFileSync(file(".known_hosts"), "utf8"), `${o.sshKnownHosts}\n`);

        // Each command verbatim, a remote command appended.
        const onPasted = async (command: string) => {
            const r = await runPasted(home, `${command} hostname`);
            assert.equal(r.code, 0, `${command}: ${r.stderr}`);
            return r.stdout.trim();
        };
        const commands: [string, string][] = [
            [o.sshLb, "pycluster-e2e-lb"],
            ...(o.sshApps as string[]).map((c, i): [string, string] => [c, `pycluster-e2e-app-${i}`]),
            [o.monitoring.prometheus.ssh, "pycluster-e2e-mon"],
        ];
        assert.equal(commands.length, 5);
        for (const [command, host] of commands) assert.equal(await onPasted(command), host, command);

        // The Prometheus tunnel, as printed (-N: it forwards until stopped).
        const ready = () => spawnSync("curl", ["-sS", "--max-time", "3", "http://localhost:9090/-/ready"], { encoding: "utf8" });
        assert.notEqual(ready().status, 0, "something already answers on localhost:9090: the test would prove nothing");
        const tunnel = startPasted(home, o.monitoring.prometheus.tunnel);
        const closed = new Promise(resolve => tunnel.once("close", resolve));
        let answer = ready();
        try {
            for (const started = Date.now(); answer.status !== 0 && Date.now() - started < 20_000; answer = ready()) await new Promise(r => setTimeout(r, 500));
            assert.equal(answer.status, 0, answer.stderr);
            assert.match(answer.stdout, /Prometheus (Server )?is Ready/);
        } finally {
            process.kill(tunnel.pid!, "SIGTERM");
            await closed;
        }
        assert.notEqual(ready().status, 0, "the tunnel ends with its process");

        // Only the pinned keys are accepted: a changed key or an unknown host is refused, never asked about.
        const original = fs.readFileSync(file(".known_hosts"), "utf8");
        const lines = original.split("\n");
        const lineOf = (alias: string) => lines.findIndex(l => l.endsWith(` ${alias}`));
        const swapKeys = (a: string, b: string) => {
            const [la, lb] = [lines[lineOf(a)].split(" "), lines[lineOf(b)].split(" ")];
            const copy = [...lines];
            copy[lineOf(a)] = [la[0], lb[1], lb[2], la[3]].join(" ");
            copy[lineOf(b)] = [lb[0], la[1], la[2], lb[3]].join(" ");
            return copy.join("\n");
        };
        const refused = async (command: string, knownHosts: string, message: RegExp) => {
            fs.writeFileSync(file(".known_hosts"), knownHosts);
            const r = await runPasted(home, `${command} hostname`);
            assert.notEqual(r.code, 0, `${command} ran with known_hosts:\n${knownHosts}`);
            assert.equal(r.stdout, "", "nothing ran on the host");
            assert.match(r.stderr, message, r.stderr);
            assert.match(r.stderr, /Host key verification failed/);
        };
        const changed = /REMOTE HOST IDENTIFICATION HAS CHANGED/;
        await refused(o.sshApps[0], swapKeys("pycluster-e2e-app-0", "pycluster-e2e-app-1"), changed);
        // The LB's key wrong: the jump is refused, so no node behind it is reached either.
        const lbSwapped = swapKeys("pycluster-e2e-lb", "pycluster-e2e-mon");
        await refused(o.sshLb, lbSwapped, changed);
        await refused(o.sshApps[2], lbSwapped, changed);
        const app2 = lines[lineOf("pycluster-e2e-app-2")].split(" ")[0];
        await refused(o.sshApps[2], lines.filter((_, i) => i !== lineOf("pycluster-e2e-app-2")).join("\n"), new RegExp(`No ED25519 host key is known for ${app2.replace(/\./g, "\\.")}`));
        fs.writeFileSync(file(".known_hosts"), original);
        assert.equal(await onPasted(o.sshApps[2]), "pycluster-e2e-app-2", "back with the stack's known_hosts");

        // What `npm run local -- up` prints: the same form, with the rehearsal's copy of the files.
        const local = spawnSync("ssh", ["-F", up.sshConfigFile, "pycluster-e2e-app-1", "hostname"], { encoding: "utf8", env: { ...process.env, SSH_AUTH_SOCK: "" }, timeout: 60_000 });
        assert.equal(local.stdout.trim(), "pycluster-e2e-app-1", local.stderr);
        console.log(`pasted: sshKeySetup, ${commands.length} ssh commands, the Prometheus tunnel (${answer.stdout.trim()}); 4 wrong or missing host keys refused`);
    } finally {
        stub.remove();
        fs.rmSync(home, { recursive: true, force: true });
    }
});

e2e("5. a second up with no change executes 0 remote commands", async () => {
    const again = remember(await localUp(base));
    console.log(`second up: ${seconds(again.wallMs)}, ${again.remoteExecutions.length} remote steps`);
    assert.deepEqual(again.remoteExecutions.map(s => s.name), []);
});

e2e("6. changing one gunicorn setting re-pushes it to every app node, one node at a time, and ends healthy", async () => {
    const changed = remember(await localUp({ ...base, set: { gunicornMaxRequests: "30000" } }));
    const ran = changed.remoteExecutions.map(s => s.name).sort();
    console.log(`gunicornMaxRequests change: ${seconds(changed.wallMs)}, ran ${ran.join(", ")}`);
    assert.deepEqual(ran, [0, 1, 2].flatMap(i => [`pycluster-e2e-app-${i}-check`, `pycluster-e2e-app-${i}-app`, `pycluster-e2e-app-${i}-lb-admit`, `pycluster-e2e-app-${i}-releases`]).sort());
    // Validated on every node first; then one at a time: a node changes only after the previous one is back.
    const step = (name: string) => changed.remoteExecutions.find(s => s.name === name)!;
    const end = (name: string) => step(name).startedAt + step(name).ms;
    const checksDone = Math.max(...[0, 1, 2].map(i => end(`pycluster-e2e-app-${i}-check`)));
    assert.ok(step("pycluster-e2e-app-0-app").startedAt >= checksDone, "no node changes before every node validated");
    for (const i of [0, 1, 2]) {
        assert.ok(step(`pycluster-e2e-app-${i}-lb-admit`).startedAt >= end(`pycluster-e2e-app-${i}-app`), `node ${i}: changed, then admitted`);
        if (i > 0) assert.ok(step(`pycluster-e2e-app-${i}-app`).startedAt >= end(`pycluster-e2e-app-${i - 1}-lb-admit`), `node ${i} waited for node ${i - 1}`);
    }
    for (const ip of appIps) {
        assert.match(await onHost(up, ip, "sudo cat /etc/webapp/gunicorn.conf.py"), /^pycluster_recycle_after_requests = 30000$/m);
        assert.match(step(`pycluster-e2e-app-${appIps.indexOf(ip)}-app`).output ?? "", /conf changed; reloaded \(HUP\); healthy/);
    }
    const answers = curl(up.cloud.publicNetns, ["-k", ...Array.from({ length: 30 }, () => up.outputs.url)]);
    assert.equal(new Set(answers.out.trim().split("\n").map(l => JSON.parse(l).node)).size, 3);
});

e2e("7. scaling 3 -> 4 app nodes provisions the new node and adds it to the upstream; back to 3 removes it", async () => {
    const scaled = await localUp({ ...base, set: { gunicornMaxRequests: "30000", appNodeCount: "4" } });
    console.log(`scale to 4: ${seconds(scaled.wallMs)}, ${scaled.remoteExecutions.length} remote steps`);
    const four = scaled.outputs.appPrivateIps as string[];
    assert.equal(four.length, 4);
    assert.ok(scaled.cloud.hosts().some(h => h.name === "pycluster-e2e-app-3" && h.running));
    const upstream = async () => [...(await onHost(scaled, "lb", "sudo nginx -T 2>/dev/null")).matchAll(/^\s+server (\S+:8000)[^;]*;/gm)].map(m => m[1]);
    assert.deepEqual(await upstream(), four.map(ip => `${ip}:8000`));
    const answers = curl(scaled.cloud.publicNetns, ["-k", ...Array.from({ length: 40 }, () => scaled.outputs.url)]);
    assert.ok(answers.out.includes("pycluster-e2e-app-3"), "the new node serves");

    const back = await localUp({ ...base, set: { gunicornMaxRequests: "30000" } });
    console.log(`scale back to 3: ${seconds(back.wallMs)}, ${back.remoteExecutions.length} remote steps`);
    assert.deepEqual(back.cloud.hosts().map(h => h.name).sort(), HOSTS);
    assert.deepEqual(await upstream(), appIps.map(ip => `${ip}:8000`));
    const after = curl(back.cloud.publicNetns, ["-k", ...Array.from({ length: 30 }, () => back.outputs.url)]);
    assert.ok(!after.out.includes("pycluster-e2e-app-3"));
    assert.equal(after.out.trim().split("\n").length, 30);
});

/** `count` JSON answers of the site (one per line whether or not the app ends its body with one). */
function answersOf(netns: string, url: string, count: number): Record<string, unknown>[] {
    const r = curl(netns, ["-k", "-w", "\n", ...Array.from({ length: count }, () => url)]);
    const lines = r.out.split("\n").filter(l => l.trim() !== "");
    assert.equal(lines.length, count, r.out);
    return lines.map(l => JSON.parse(l));
}

/** A pure-Python wheel built here (no network, no build tools): what a wheelhouse in appDir holds. */
function writeWheel(dir: string, name: string, version: string, moduleText: string): string {
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `${name}-${version}-py3-none-any.whl`);
    const script = [
        "import base64, hashlib, sys, zipfile",
        "file, name, version, text = sys.argv[1:5]",
        "info = f'{name}-{version}.dist-info'",
        "files = {f'{name}/__init__.py': text, f'{info}/METADATA': f'Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n',",
        "         f'{info}/WHEEL': 'Wheel-Version: 1.0\\nGenerator: pycluster-e2e\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n'}",
        "digest = lambda b: base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=').decode()",
        "record = ''.join(f'{p},sha256={digest(t.encode())},{len(t.encode())}\\n' for p, t in files.items()) + f'{info}/RECORD,,\\n'",
        "with zipfile.ZipFile(file, 'w') as z:",
        "    for p, t in {**files, f'{info}/RECORD': record}.items(): z.writestr(p, t)",
    ].join("\n");
    const r = spawnSync("python3", ["-c", script, file, name, version, moduleText], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    return file;
}

e2e("7b. real apps, not the sample: Flask (WSGI, Debian's python3-flask, a requirement from the app's wheelhouse), then FastAPI (ASGI on uvicorn workers); the releases output lists them", async () => {
    const apps = fs.mkdtempSync(path.join(os.tmpdir(), "pyc-e2e-apps-"));
    try {
        // The e2e stack serves appDir's static/ from the LB (staticDir): each app brings its own.
        const withStatic = (dir: string) => {
            fs.mkdirSync(path.join(dir, "static"), { recursive: true });
            fs.writeFileSync(path.join(dir, "static", "robots.txt"), `User-agent: *\nDisallow: /${path.basename(dir)}\n`);
        };
        const flaskDir = path.join(apps, "flask");
        withStatic(flaskDir);
        fs.writeFileSync(
            path.join(flaskDir, "wsgi.py"),
            [
                "import socket",
                "from flask import Flask, jsonify",
                "import pycgreeting",
                "app = Flask(__name__)",
                "@app.get('/healthz')",
                "def health():",
                "    return 'ok\\n'",
                "@app.get('/')",
                "def index():",
                "    return jsonify(framework='flask', greeting=pycgreeting.hello(), node=socket.gethostname())",
                "",
            ].join("\n"),
        );
        // No package index on the nodes: the requirement comes from the wheelhouse shipped with the app.
        fs.writeFileSync(path.join(flaskDir, "requirements.txt"), "pycgreeting==1.0\n");
        writeWheel(path.join(flaskDir, "wheels"), "pycgreeting", "1.0", "def hello():\n    return 'hello from a wheel'\n");
        const flask = remember(await localUp({ ...base, set: { gunicornMaxRequests: "30000", appDir: flaskDir, appModule: "wsgi:app" }, setObject: { appPackages: ["python3-flask"] } }));
        console.log(`Flask app: ${seconds(flask.wallMs)}, ${flask.remoteExecutions.length} remote steps`);
        const flaskAnswers = answersOf(flask.cloud.publicNetns, flask.outputs.url, 30);
        assert.ok(flaskAnswers.every(a => a.framework === "flask" && a.greeting === "hello from a wheel"), JSON.stringify(flaskAnswers[0]));
        assert.equal(new Set(flaskAnswers.map(a => a.node)).size, 3, "every node serves the Flask app");
        assert.match(await onHost(flask, appIps[0], "dpkg-query -W -f '${Status}' python3-flask"), /install ok installed/);
        const flaskRelease = flask.outputs.release as string;
        for (const [node, kept] of Object.entries(flask.outputs.releases as Record<string, { id: string; current: boolean }[]>)) {
            assert.deepEqual(kept.filter(r => r.current).map(r => r.id), [flaskRelease], `${node}: the Flask release is current`);
            assert.ok(kept.length >= 2, `${node}: the sample's release is kept for a rollback`);
        }

        const fastapiDir = path.join(apps, "fastapi");
        withStatic(fastapiDir);
        fs.writeFileSync(
            path.join(fastapiDir, "asgi.py"),
            [
                "import asyncio, socket",
                "from fastapi import FastAPI",
                "from fastapi.responses import PlainTextResponse",
                "app = FastAPI()",
                "@app.get('/healthz', response_class=PlainTextResponse)",
                "async def health():",
                "    return 'ok\\n'",
                "@app.get('/')",
                "async def index():",
                "    await asyncio.sleep(0.01)",
                "    return {'framework': 'fastapi', 'node': socket.gethostname()}",
                "",
            ].join("\n"),
        );
        const fastapi = remember(await localUp({ ...base, set: { gunicornMaxRequests: "30000", appDir: fastapiDir, appModule: "asgi:app", appKind: "asgi" }, setObject: { appPackages: ["python3-fastapi"] } }));
        console.log(`FastAPI app: ${seconds(fastapi.wallMs)}, ${fastapi.remoteExecutions.length} remote steps`);
        const fastapiAnswers = answersOf(fastapi.cloud.publicNetns, fastapi.outputs.url, 30);
        assert.ok(fastapiAnswers.every(a => a.framework === "fastapi"), JSON.stringify(fastapiAnswers[0]));
        assert.equal(new Set(fastapiAnswers.map(a => a.node)).size, 3, "every node serves the FastAPI app");
        assert.match(await onHost(fastapi, appIps[1], "sudo cat /etc/webapp/gunicorn.conf.py"), /^worker_class = "uvicorn\.workers\.UvicornWorker"$/m);
        for (const kept of Object.values(fastapi.outputs.releases as Record<string, { id: string; current: boolean }[]>)) {
            assert.deepEqual(kept.filter(r => r.current).map(r => r.id), [fastapi.outputs.release]);
            assert.ok(kept.some(r => r.id === flaskRelease && !r.current), "the Flask release is kept, not current");
        }
    } finally {
        fs.rmSync(apps, { recursive: true, force: true });
    }
});

e2e("8. destroy runs the delete steps without error", async () => {
    if (keep) return;
    const steps = await localDown(base);
    const deleted = steps.filter(s => s.action === "delete");
    console.log(`destroy: ${deleted.length} resources deleted`);
    assert.ok(deleted.some(s => s.type === "openstack:compute/instance:Instance"));
    assert.ok(deleted.some(s => s.type === "command:remote:Command"));
    assert.equal(fs.existsSync(`${up.cloud.stateDir}/state.json`), false, "the local cloud is gone");
    const left = leftoversOf(up.cloud.prefix);
    assert.deepEqual(left, { netns: [], links: [], mounts: [], pids: [], cgroups: [] }, "nothing of the cloud is left on the machine");
    const routes = spawnSync("ip", ["route"], { encoding: "utf8" }).stdout;
    assert.doesNotMatch(routes, /10\.78\.0\.0\/24|198\.18\.0\.0\/24/, "no route of the cloud is left");
});
