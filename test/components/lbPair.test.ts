/** lbCount 2 under mocks: the pair's resources, how the program reaches it, and the order of its steps. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { COMMAND, ProgramRun, RecordedResource, runProgram } from "../support/programHarness";

const INSTANCE = "openstack:compute/instance:Instance";
const PORT = "openstack:networking/port:Port";
const RULE = "openstack:networking/secGroupRule:SecGroupRule";
const FIP_ASSOC = "openstack:networking/floatingIpAssociate:FloatingIpAssociate";
const SERVER_GROUP = "openstack:compute/serverGroup:ServerGroup";

let cached: Promise<ProgramRun> | undefined;
const pair = () => (cached ??= runProgram({ stack: "staging", set: { lbCount: "2", monitoringNode: "true" } }));
const named = (run: ProgramRun, type: string, name: string): RecordedResource => {
    const r = run.resources.find(x => x.type === type && x.name === name);
    assert.ok(r, `no ${type} ${name}; have ${run.byType(type).map(x => x.name).join(", ")}`);
    return r;
};
const deps = (run: ProgramRun, r: RecordedResource) => r.options.dependsOn.map(urn => run.resources.find(x => x.urn === urn)?.name);

test("two LBs in one anti-affinity server group", async () => {
    const run = await pair();
    const groups = run.byType(SERVER_GROUP);
    assert.equal(groups.length, 1);
    assert.deepEqual(groups[0].inputs.policies, ["anti-affinity"]);
    for (const name of ["pycluster-staging-lb", "pycluster-staging-lb-2"]) {
        assert.deepEqual(named(run, INSTANCE, name).inputs.schedulerHints, [{ group: "os-servergroup-uuid-pycluster-staging-lb-anti-affinity" }], name);
    }
});

test("the VIP port holds the shared address; both LB ports may answer for it; the one floating IP is on the VIP port", async () => {
    const run = await pair();
    const vip = named(run, PORT, "pycluster-staging-lb-vip-port");
    assert.deepEqual(vip.inputs.fixedIps.map((f: { ipAddress: string }) => f.ipAddress), ["10.120.0.126"]);
    assert.deepEqual(vip.inputs.securityGroupIds, ["sg-uuid-pycluster-staging-lb"]);
    for (const [name, ip] of [["pycluster-staging-lb-port", "10.120.0.2"], ["pycluster-staging-lb-2-port", "10.120.0.125"]]) {
        const port = named(run, PORT, name);
        assert.deepEqual(port.inputs.allowedAddressPairs, [{ ipAddress: "10.120.0.126" }], name);
        assert.equal(port.inputs.fixedIps[0].ipAddress, ip);
    }
    const assoc = run.byType(FIP_ASSOC);
    assert.equal(assoc.length, 1);
    assert.equal(assoc[0].inputs.portId, "os-port-uuid-pycluster-staging-lb-vip-port");
    assert.equal(run.resources.filter(r => r.type === PORT && r.inputs.allowedAddressPairs).length, 2, "only the LBs' ports");
});

test("VRRP is admitted between the LBs only, and SSH between them for the relay", async () => {
    const run = await pair();
    const vrrp = run.byType(RULE).filter(r => r.inputs.protocol === "vrrp");
    assert.equal(vrrp.length, 1);
    assert.equal(vrrp[0].inputs.remoteGroupId, "sg-uuid-pycluster-staging-lb");
    assert.equal(vrrp[0].inputs.securityGroupId, "sg-uuid-pycluster-staging-lb");
    assert.equal(vrrp[0].inputs.remoteIpPrefix, undefined);
    const ssh = named(run, RULE, "pycluster-staging-lb-ssh-pair");
    assert.equal(ssh.inputs.remoteGroupId, "sg-uuid-pycluster-staging-lb");
    for (const name of ["pycluster-staging-app-app", "pycluster-staging-app-ssh"]) assert.equal(named(run, RULE, name).inputs.remoteGroupId, "sg-uuid-pycluster-staging-lb", name);
});

test("one host key for the pair; every step reaches its host at its private address through the public one", async () => {
    const run = await pair();
    const publicIp = run.outputs.lbPublicIp as string;
    for (const c of run.byType(COMMAND)) {
        const conn = c.inputs.connection;
        assert.equal(conn.proxy?.host, publicIp, `${c.name} goes through the public address`);
        assert.equal(conn.proxy.hostKey, "ssh-ed25519 AAAAFAKEpyclusterstaginglbpairhostkey", c.name);
        if (/-lb-2-/.test(c.name) && !/-app-/.test(c.name)) assert.equal(conn.host, "10.120.0.125", c.name);
        if (/^pycluster-staging-lb-(nginx|keepalived)$/.test(c.name)) assert.equal(conn.host, "10.120.0.2", c.name);
        if (/^pycluster-staging-lb(-2)?-/.test(c.name)) assert.equal(conn.hostKey, conn.proxy.hostKey, c.name);
    }
});

test("cloud-init installs keepalived and starts it with the addresses only (the chicken and the egg)", async () => {
    const run = await pair();
    for (const [name, own, peer] of [["pycluster-staging-lb", "10.120.0.2", "10.120.0.125"], ["pycluster-staging-lb-2", "10.120.0.125", "10.120.0.2"]]) {
        const userData: string = named(run, INSTANCE, name).inputs.userData;
        assert.match(userData, /- keepalived/, name);
        assert.match(userData, new RegExp(`unicast_src_ip ${own.replace(/\./g, "\\.")}`), name);
        assert.match(userData, new RegExp(`unicast_peer \\{\\n\\s+${peer.replace(/\./g, "\\.")}`), name);
        assert.match(userData, /10\.120\.0\.126\/24 dev @PYCLUSTER_INTERFACE@/, name);
        assert.doesNotMatch(userData, /vrrp_script|notify/, `${name}: nothing that changes with settings`);
        assert.match(userData, /systemctl restart keepalived/, name);
    }
});

test("nginx rolls one LB at a time, the holder of the address last; each app node is admitted by both LBs in turn", async () => {
    const run = await pair();
    const first = named(run, COMMAND, "pycluster-staging-lb-nginx");
    const second = named(run, COMMAND, "pycluster-staging-lb-2-nginx");
    const finish = named(run, COMMAND, "pycluster-staging-lb-nginx-finish");
    assert.ok(deps(run, second).includes("pycluster-staging-lb-nginx"));
    assert.ok(deps(run, finish).includes("pycluster-staging-lb-2-nginx"));
    assert.ok(!deps(run, first).some(n => /-nginx/.test(n ?? "")), "the first pass waits for no other nginx step");
    // The first pass stops after nginx -t while its LB holds the address; every pass checks nginx answers
    // after a switch, and the site through it (by the name users reach it by) if it did before.
    const site = ` --site-url https://127\\.0\\.0\\.1/healthz --site-host ${(run.outputs.lbPublicIp as string).replace(/\./g, "\\.")}$`;
    assert.match(first.inputs.create, new RegExp(` nginx --health-path /healthz --lease \\d+ --defer-if-holder --check-url http://10\\.120\\.0\\.2:8080/stub_status${site}`));
    assert.match(second.inputs.create, new RegExp(` nginx --health-path /healthz --lease \\d+ --check-url http://10\\.120\\.0\\.125:8080/stub_status${site}`));
    assert.match(finish.inputs.create, new RegExp(` nginx --health-path /healthz --lease \\d+ --check-url http://10\\.120\\.0\\.2:8080/stub_status${site}`));
    // The finishing step is the same push again (nothing to do if the first pass switched).
    assert.equal(finish.inputs.stdin, first.inputs.stdin);
    // What comes after nginx on the first LB waits for its finishing step.
    assert.ok(deps(run, named(run, COMMAND, "pycluster-staging-lb-monitoring")).includes("pycluster-staging-lb-nginx-finish"));
    assert.ok(deps(run, named(run, COMMAND, "pycluster-staging-app-0-lb-admit")).includes("pycluster-staging-lb-nginx-finish"));
    const secondAdmit = named(run, COMMAND, "pycluster-staging-app-0-lb-2-admit");
    assert.ok(deps(run, secondAdmit).includes("pycluster-staging-app-0-lb-admit"));
    assert.ok(deps(run, named(run, COMMAND, "pycluster-staging-app-1-app")).includes("pycluster-staging-app-0-lb-2-admit"), "the next batch waits for both LBs");
    for (const lb of ["pycluster-staging-lb", "pycluster-staging-lb-2"]) {
        const k = named(run, COMMAND, `${lb}-keepalived`);
        assert.match(k.inputs.create, /hostctl\.pyz keepalived --address 10\.120\.0\.(2|125)$/);
        assert.match(k.inputs.stdin, /vrrp_script pycluster_lb_health/);
    }
});

test("outputs name both LBs, the shared address, and an ssh_config/known_hosts entry per LB behind the public address", async () => {
    const run = await pair();
    const o = run.outputs as Record<string, any>;
    assert.deepEqual(o.lbs, [
        { name: "pycluster-staging-lb", privateIp: "10.120.0.2" },
        { name: "pycluster-staging-lb-2", privateIp: "10.120.0.125" },
    ]);
    assert.equal(o.lbVip, "10.120.0.126");
    assert.equal(o.lbHolderCommand, "ssh -F ~/.ssh/pycluster-staging.config pycluster-staging-lb-active hostname");
    assert.match(o.sshConfig, /Host pycluster-staging-lb-2\n\s+HostName 10\.120\.0\.125\n\s+ProxyJump pycluster-staging-lb-active/);
    const known = (o.sshKnownHosts as string).split("\n").filter(l => /lbpairhostkey/.test(l)).map(l => l.split(" ")[0]);
    assert.deepEqual(known, [o.lbPublicIp, "10.120.0.2", "10.120.0.125"]);
    assert.equal(o.capacity.activeLoadBalancers, 1);
    assert.ok(o.monitoring.exporters.nginx.includes("http://10.120.0.125:9113/metrics"));
});

test("lbCount 1 registers none of the pair's resources", async () => {
    const run = await runProgram({ stack: "staging" });
    assert.equal(run.byType(SERVER_GROUP).length, 0);
    assert.equal(run.resources.filter(r => r.type === PORT && (r.inputs.allowedAddressPairs || /vip/.test(r.name))).length, 0);
    assert.equal(run.byType(RULE).filter(r => r.inputs.protocol === "vrrp").length, 0);
    assert.equal(run.byType(INSTANCE).filter(r => /-lb/.test(r.name)).length, 1);
    assert.equal((run.outputs as Record<string, unknown>).lbs, undefined);
});

test("monitoring: each LB's node exporter reads keepalived's textfile; Prometheus scrapes both and has the pair's alerts", async () => {
    const run = await pair();
    for (const lb of ["pycluster-staging-lb", "pycluster-staging-lb-2"]) {
        assert.match(named(run, COMMAND, `${lb}-monitoring`).inputs.stdin, /--collector\.textfile\.directory=\/var\/lib\/prometheus\/node-exporter/, lb);
    }
    const prometheus: string = named(run, COMMAND, "pycluster-staging-mon-monitoring").inputs.stdin;
    assert.match(prometheus, /alert: LbAddressUnheld/);
    assert.match(prometheus, /alert: LbSplitBrain/);
    assert.match(prometheus, /10\.120\.0\.125:9100/);
});
