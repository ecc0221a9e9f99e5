/**
 * End to end: a local cloud with two Debian 12 hosts booted from real cloud-init user-data,
 * reached over real SSH. Needs root on Linux with systemd-nspawn, mmdebstrap and apt-ftparchive;
 * skipped elsewhere unless PYCLUSTER_REQUIRE_E2E=1, which turns a missing prerequisite into a
 * failure.
 *
 * Run: node --import tsx --test test/local/*.test.ts
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parsableKeyPair } from "../support/sshKeys";
import { test } from "node:test";
import {
    canConnect,
    copyToRemote,
    createCloud,
    destroyCloud,
    ensureRootfs,
    leftoversOf,
    localCloudPrerequisites,
    LocalCloud,
    runCommand,
    SshConnection,
} from "../../local";
import { run } from "../../local/exec";

const PREFIX = "pyctest";
const PRIVATE_CIDR = "10.79.0.0/24";
// not the default 198.51.100.0/24, so that this test can run beside a cloud that uses it
const PUBLIC_CIDR = "203.0.113.0/24";
const HOST1_IP = "10.79.0.11";
const HOST2_IP = "10.79.0.12";

/** Keys the test generates: the debian user's login key and the hosts' ed25519 host key. */
function makeKeys() {
    const user = parsableKeyPair("pyctest-user");
    const host = parsableKeyPair("pyctest-host");
    const other = parsableKeyPair("not-the-host");
    return { user, host, wrongHostKey: other.public };
}

function userData(keys: ReturnType<typeof makeKeys>): string {
    const indent = (text: string) =>
        text
            .trim()
            .split("\n")
            .map((l) => `    ${l}`)
            .join("\n");
    return `#cloud-config
users:
  - default
ssh_authorized_keys:
  - ${keys.user.public}
ssh_keys:
  ed25519_private: |
${indent(keys.host.private)}
  ed25519_public: ${keys.host.public}
`;
}

function note(line: string) {
    console.log(line);
}

/** Runs TypeScript in a separate Node process (with tsx), as another program using the library would. */
async function inAnotherProcess(code: string): Promise<string> {
    const r = await run([process.execPath, "--import", "tsx", "-e", code], { cwd: path.resolve(__dirname, "../..") });
    return r.stdout;
}

const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

test("local cloud: two hosts from cloud-init user-data, reached over SSH", { timeout: 15 * 60_000 }, async (t) => {
    const missing = await localCloudPrerequisites();
    if (missing.length > 0) {
        const reason = `local cloud prerequisites missing: ${missing.join("; ")}`;
        if (process.env.PYCLUSTER_REQUIRE_E2E === "1") assert.fail(`${reason} (PYCLUSTER_REQUIRE_E2E=1)`);
        console.log(`SKIP ${reason}`);
        t.skip(reason);
        return;
    }

    const keys = makeKeys();
    const ud = userData(keys);
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "pyctest-"));

    try {
        await destroyCloud(PREFIX); // leftovers of an interrupted earlier run

        let started = Date.now();
        const rootfs = await ensureRootfs({ log: note });
        note(`timing: root filesystem ${rootfs.built ? "built" : "from cache"} in ${seconds(started)} (key ${rootfs.key})`);

        // each step is bounded, so that a hang fails the step instead of stalling the run
        const step = (name: string, fn: () => Promise<void>) => t.test(name, { timeout: 180_000 }, fn);
        const c: LocalCloud = await createCloud({ prefix: PREFIX, privateCidr: PRIVATE_CIDR, publicCidr: PUBLIC_CIDR, clients: 2, rootfs });
        const user = { user: "debian", privateKey: keys.user.private, hostKey: keys.host.public, dialErrorLimit: 20, perDialTimeout: 10 };
        let host1Public = "";
        const direct = (): SshConnection => ({ host: host1Public, ...user });
        const viaHost1 = (): SshConnection => ({ host: HOST2_IP, ...user, proxy: direct() });

        let bootStarted = 0;
        await step("boots two hosts in parallel until their sshd answers", async () => {
            started = bootStarted = Date.now();
            const hosts = await Promise.all([
                c.bootHost({ name: "host1", privateIp: HOST1_IP, userData: ud }),
                c.bootHost({ name: "host2", privateIp: HOST2_IP, userData: ud }),
            ]);
            note(`timing: boot of 2 hosts (sshd up) in ${seconds(started)}`);
            assert.deepEqual(hosts.map((h) => h.running), [true, true]);
        });

        await step("a public IP attached after boot makes host1's sshd reachable from the internet", async () => {
            host1Public = c.allocatePublicIp();
            const info = await c.attachPublicIp("host1", host1Public);
            assert.equal(info.publicIp, host1Public);
            assert.ok(await canConnect({ host: host1Public, port: 22, expectBanner: "SSH-" }), "from the root namespace");
            for (const client of c.clients) {
                assert.ok(await canConnect({ netns: client.netns, host: host1Public, port: 22, expectBanner: "SSH-" }), `from client ${client.netns}`);
            }
        });

        await step("SSH as debian works with the host key pinned", async () => {
            const r = await runCommand(direct(), "id -un; hostname; sudo -n true && echo sudo-ok");
            assert.equal(r.exitCode, 0, r.stderr);
            assert.deepEqual(r.stdout.trim().split("\n"), ["debian", "host1", "sudo-ok"]);
        });

        await step("SSH fails when the pinned host key is not the host's", async () => {
            await assert.rejects(runCommand({ ...direct(), hostKey: keys.wrongHostKey }, "true"), /host key .* does not match/);
        });

        await step("cloud-init finishes on both hosts (host2 through host1 as proxy)", async () => {
            const results = await Promise.all([direct(), viaHost1()].map((conn) => runCommand(conn, "cloud-init status --wait >/dev/null; echo $?; hostname")));
            note(`timing: cloud-init done on both hosts ${seconds(bootStarted)} after their boot began`);
            for (const [i, r] of results.entries()) {
                const [code, hostname] = r.stdout.trim().split("\n");
                assert.ok(code === "0" || code === "2", `cloud-init status on host${i + 1} ended ${code}: ${r.stderr}`);
                assert.equal(hostname, `host${i + 1}`);
            }
        });

        await step("stdin reaches the command and exit codes come back", async () => {
            const r = await runCommand(viaHost1(), "cat > /tmp/stdin.txt; wc -c < /tmp/stdin.txt; exit 3", "hello through the bastion\n");
            assert.equal(r.exitCode, 3);
            assert.equal(r.stdout.trim(), "26");
        });

        await step("host1 reaches host2 over the private network", async () => {
            const r = await runCommand(direct(), `timeout 3 bash -c 'exec 3<>/dev/tcp/${HOST2_IP}/22 && head -c 7 <&3'`);
            assert.equal(r.exitCode, 0, r.stderr);
            assert.equal(r.stdout, "SSH-2.0");
        });

        await step("private addresses are reachable neither from the root namespace nor from a client", async () => {
            for (const ip of [HOST2_IP, HOST1_IP, c.gatewayIp]) {
                assert.equal(await canConnect({ host: ip, port: 22, timeoutMs: 1000 }), false, `${ip} from the root namespace`);
                assert.equal(await canConnect({ netns: c.publicNetns, host: ip, port: 22, timeoutMs: 1000 }), false, `${ip} from ${c.publicNetns}`);
            }
        });

        await step("no namespace of the cloud forwards IP packets", async () => {
            for (const ns of [c.names.gatewayNetns, ...c.clients.map((x) => x.netns), `${PREFIX}-host1`, `${PREFIX}-host2`]) {
                const r = await run(["ip", "netns", "exec", ns, "cat", "/proc/sys/net/ipv4/ip_forward"]);
                assert.equal(r.stdout.trim(), "0", ns);
            }
            assert.equal(fs.readFileSync(`/proc/sys/net/ipv4/conf/${c.names.publicBridge}/forwarding`, "utf8").trim(), "0");
            assert.equal(fs.readFileSync(`/proc/sys/net/ipv6/conf/${c.names.privateBridge}/disable_ipv6`, "utf8").trim(), "1", "no IPv6 address either");
        });

        await step("before the gateway exists the subnet reaches nothing outside; then apt works offline from its repository", async () => {
            const apt = "sudo apt-get -o DPkg::Lock::Timeout=120";
            // As on OVH: no gateway, no route out (and an update that cannot fetch fails, as a stock image's install would).
            const closed = await runCommand(viaHost1(), `${apt} update`);
            assert.notEqual(closed.exitCode, 0, "apt-get update must fail while the gateway does not exist");
            assert.match(`${closed.stdout}${closed.stderr}`, /Network is unreachable/);
            await c.openGateway();
            assert.equal(c.gatewayOpen, true);
            started = Date.now();
            const r = await runCommand(
                viaHost1(),
                `${apt} update && ${apt} install -y nginx && ${apt} install -y --reinstall nginx && dpkg-query -W -f='\${Status}' nginx`,
            );
            assert.equal(r.exitCode, 0, `${r.stdout}\n${r.stderr}`);
            assert.match(r.stdout, /Get:\d+ http:\/\/10\.79\.0\.1 \.\/ nginx /, "the .deb came from the local repository");
            assert.match(r.stdout, /install ok installed$/);
            note(`timing: apt-get update + install + reinstall in ${seconds(started)}`);
        });

        await step("copyToRemote copies a file and a directory", async () => {
            const file = path.join(work, "app.conf");
            fs.writeFileSync(file, "workers = 4\n", { mode: 0o640 });
            const dir = path.join(work, "site");
            fs.mkdirSync(path.join(dir, "static"), { recursive: true });
            fs.writeFileSync(path.join(dir, "app.py"), "print('hi')\n");
            fs.writeFileSync(path.join(dir, "run.sh"), "#!/bin/sh\necho run\n", { mode: 0o755 });
            fs.writeFileSync(path.join(dir, "static", "index.html"), "<h1>hi</h1>\n");

            await copyToRemote(viaHost1(), file, "/home/debian/conf/app.conf"); // parent created
            await copyToRemote(viaHost1(), dir, "/home/debian"); // existing dir: copied into it
            const r = await runCommand(viaHost1(), "cd /home/debian && cat conf/app.conf && stat -c '%a %n' conf/app.conf site/run.sh && cat site/static/index.html && site/run.sh");
            assert.equal(r.exitCode, 0, r.stderr);
            assert.equal(r.stdout, "workers = 4\n640 conf/app.conf\n755 site/run.sh\n<h1>hi</h1>\nrun\n");
        });

        await step("`sudo reboot` over SSH brings the host back by itself, with its disk", async () => {
            await runCommand(viaHost1(), "echo kept | sudo tee /var/tmp/disk-marker >/dev/null && echo gone | sudo tee /run/boot-marker >/dev/null");
            const boot = c.hostBootId("host2");
            started = Date.now();
            // the connection may drop before the command reports back (CommandInterruptedError): both are fine
            await runCommand(viaHost1(), "sudo reboot").catch((e: Error) => assert.equal(e.name, "CommandInterruptedError", e.message));
            await c.waitForReboot("host2", boot);
            note(`timing: host2 rebooted (sshd back) in ${seconds(started)}`);
            const r = await runCommand(viaHost1(), "cat /var/tmp/disk-marker; test -e /run/boot-marker && echo still-there || echo fresh-boot");
            assert.equal(r.exitCode, 0, r.stderr);
            assert.equal(r.stdout, "kept\nfresh-boot\n");
        });

        await step("rebootHost, stopHost/startHost and killHost/startHost keep the disk and the public IP", async () => {
            await runCommand(direct(), "echo kept | sudo tee /var/tmp/disk-marker >/dev/null");
            await c.rebootHost("host1");
            assert.equal((await runCommand(direct(), "cat /var/tmp/disk-marker")).stdout, "kept\n");

            await c.stopHost("host1");
            assert.equal(c.host("host1").running, false);
            assert.equal(await canConnect({ host: host1Public, port: 22, timeoutMs: 1000 }), false, "stopped host answers");
            await c.startHost("host1");
            assert.equal((await runCommand(direct(), "cat /var/tmp/disk-marker")).stdout, "kept\n");

            await c.killHost("host1");
            assert.equal(c.host("host1").running, false);
            await c.startHost("host1");
            assert.equal((await runCommand(direct(), "cat /var/tmp/disk-marker")).stdout, "kept\n");
        });

        await step("a host booted by another process outlives it and is reachable", async () => {
            const out = await inAnotherProcess(`
                const { LocalCloud } = require("./local");
                LocalCloud.open(${JSON.stringify(PREFIX)})
                    .bootHost({ name: "host3", privateIp: "10.79.0.13", userData: ${JSON.stringify(ud)} })
                    .then((h) => console.log(h.name, h.running), (e) => { console.error(e); process.exit(1); });`);
            assert.equal(out.trim(), "host3 true");
            assert.equal(c.host("host3").running, true);
            const r = await runCommand({ ...viaHost1(), host: "10.79.0.13" }, "hostname");
            assert.equal(r.stdout, "host3\n");
        });

        await step("removeHost deletes a host with its namespace, interfaces and disk", async () => {
            const disk = c.host("host3").diskDir;
            await c.removeHost("host3");
            assert.equal(c.hosts().some((h) => h.name === "host3"), false);
            assert.equal(fs.existsSync(disk), false);
            const left = leftoversOf(PREFIX);
            assert.equal(left.netns.includes(`${PREFIX}-host3`), false);
            assert.equal(left.links.some((l) => l.startsWith(`${PREFIX}-h3`)), false);
            assert.equal(await canConnect({ netns: `${PREFIX}-gw`, host: "10.79.0.13", port: 22, timeoutMs: 1000 }), false);
        });

        await step("detachPublicIp takes host1 off the internet", async () => {
            await c.detachPublicIp("host1");
            assert.equal(await canConnect({ host: host1Public, port: 22, timeoutMs: 1000 }), false);
            assert.equal(c.host("host1").publicIp, undefined);
        });

        await step("a cloud whose network is gone (as after a reboot) is no longer intact", async () => {
            assert.equal(c.intact, true);
            const server = c.state.repoServer;
            assert.ok(server, "the repository server runs");
            process.kill(server.pid, "SIGTERM"); // ours: started by createCloud above
            const deadline = Date.now() + 5000;
            while (c.intact && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
            assert.equal(c.intact, false);
        });

        await step("destroyCloud from another process leaves no namespace, link, mount, process or cgroup", async () => {
            started = Date.now();
            const out = await inAnotherProcess(`
                require("./local").destroyCloud(${JSON.stringify(PREFIX)})
                    .then((r) => console.log(JSON.stringify(r)), (e) => { console.error(e); process.exit(1); });`);
            const report = JSON.parse(out) as { killed: string[] };
            note(`timing: destroyCloud of 2 hosts in ${seconds(started)}${report.killed.length ? ` (killed: ${report.killed.join(", ")})` : ""}`);
            assert.deepEqual(leftoversOf(PREFIX), { netns: [], links: [], mounts: [], pids: [], cgroups: [] });
            // the same, from the tools an operator would use
            assert.doesNotMatch((await run(["ip", "netns", "list"])).stdout, /pyctest-/);
            assert.doesNotMatch((await run(["ip", "-o", "link"])).stdout, /pyctest-/);
            assert.doesNotMatch(fs.readFileSync("/proc/self/mountinfo", "utf8"), /pycluster-local\/pyctest/);
            assert.doesNotMatch((await run(["ps", "-eo", "args"])).stdout, /pycluster-local\/pyctest/);
            assert.doesNotMatch((await run(["ip", "route"])).stdout, /10\.79\.0\.0/);
            await destroyCloud(PREFIX); // idempotent
        });
    } finally {
        // always (idempotent): also cleans up after a failure before or during createCloud
        await destroyCloud(PREFIX).catch((e: Error) => console.log(`# teardown: ${e.message}`));
        fs.rmSync(work, { recursive: true, force: true });
    }
});
