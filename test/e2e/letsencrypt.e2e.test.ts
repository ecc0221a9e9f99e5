/**
 * End to end: tlsMode letsencrypt against a real ACME CA (pebble, Let's Encrypt's test server) on
 * the local internet, with its DNS (local/internet.ts), on the small `acme` stack: a pair of load
 * balancers (as prod runs) + 1 app node. Each LB gets its own certificate; the CA reaches whichever
 * LB holds the public address, which asks its peer for a token it does not have. The tests run in
 * order and share the cloud:
 *   a. a first `up` with no DNS record: the cluster serves, with the temporary certificate, and
 *      each LB's letsencrypt step fails saying what to do; the CA validated nothing;
 *   b. the user creates the record and runs `up` again: both LBs get the CA's certificate; the
 *      backup renews its own through the holder (the deploy hook reloads its nginx);
 *   f. the address moves to the other LB: it serves its own certificate, trusted;
 *   d. a later configuration push keeps the certificates;
 *   c. from scratch with dnsZone: the program creates the record and one `up` does it all.
 */
import { after, before } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ACME_PLACEHOLDER_ORGANIZATION } from "../../lib/conventions";
import { leftoversOf, LocalCloud } from "../../local/cloud";
import { pairScenario } from "../support/keepalivedJournal";
import { ACME_MANAGEMENT_PORT } from "../../local/internet";
import { localCloudPrerequisites } from "../../local/prerequisites";
import { cloudPrefix, localDown, localUp, LocalStackOptions, ProgramFailure, UpResult } from "../../local/stack";
import { curl, e2eSkipReason, onHost, seconds } from "./support";

const STACK = "acme";
const DOMAIN = "www.pycluster.test";
const ZONE = "pycluster.test";
const keep = process.env.PYCLUSTER_E2E_KEEP === "1";
const log = process.env.PYCLUSTER_E2E_VERBOSE ? (l: string) => console.log(`  ${l}`) : () => undefined;
const base: LocalStackOptions = { stack: STACK, log };

let skip: string | undefined;
let cloud: LocalCloud;
/** The public address: the pair's floating IP, NATed by the router to the VIP. */
let lbIp = "";
let up: UpResult;
let renewedSerial = "";
const started = Date.now();

async function teardown() {
    if (keep || skip) return;
    await localDown(base).catch(e => console.error(`teardown: ${e}`));
}

before(async () => {
    skip = await e2eSkipReason();
    if (!skip) {
        const missing = await localCloudPrerequisites({ internet: true });
        if (missing.length > 0) {
            skip = `the Let's Encrypt end-to-end test needs the local internet's services: ${missing.join("; ")}`;
            if (process.env.PYCLUSTER_REQUIRE_E2E === "1") throw new Error(`PYCLUSTER_REQUIRE_E2E=1 but ${skip}`);
            console.log(`SKIPPED: ${skip}`);
        }
    }
    if (skip) return;
    await localDown(base);
    process.once("SIGINT", () => void teardown().then(() => process.exit(130)));
    process.once("SIGTERM", () => void teardown().then(() => process.exit(143)));
});
after(async () => {
    await teardown();
    if (!skip) console.log(`letsencrypt e2e: ${seconds(Date.now() - started)} in all`);
});

// A failing scenario prints which LB held the address, and why it moved: the pair's journal says.
const e2e = (name: string, fn: () => Promise<void>) =>
    pairScenario(name, fn, { skip: () => skip, pair: () => (up?.outputs?.lbs ? { cloud: up.cloud, lbNames: lbs().map(lb => lb.name) } : undefined) });

interface Served {
    subject: string;
    issuer: string;
    serial: string;
    /** `openssl s_client`'s verdict against `caFile`. */
    verify: string;
}

/** The certificate the site presents for the domain, seen from the internet (verified against `caFile`, if given). */
function served(caFile?: string): Served {
    const script =
        `out=$(echo | openssl s_client -connect ${lbIp}:443 -servername ${DOMAIN} -verify_hostname ${DOMAIN}${caFile ? ` -CAfile ${caFile}` : ""} 2>&1); ` +
        `printf '%s\n' "$out" | grep -o 'Verify return code: .*'; printf '%s\n' "$out" | openssl x509 -noout -subject -issuer -serial`;
    const out = spawnSync("ip", ["netns", "exec", cloud.publicNetns, "sh", "-c", script], { encoding: "utf8" }).stdout;
    const field = (re: RegExp) => re.exec(out)?.[1]?.trim() ?? "";
    return { subject: field(/^subject=(.*)$/m), issuer: field(/^issuer=(.*)$/m), serial: field(/^serial=(.*)$/m), verify: field(/^Verify return code: (.*)$/m) };
}

/** pebble's root for the certificates it issues (new at every start), from its management API, as a file. */
function pebbleRoot(): string {
    const internet = cloud.internet!;
    const r = spawnSync("ip", ["netns", "exec", cloud.publicNetns, "curl", "-sS", "--cacert", internet.caCertFile, `https://${internet.ip}:${ACME_MANAGEMENT_PORT}/roots/0`], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pyc-acme-")), "pebble-root.pem");
    fs.writeFileSync(file, r.stdout);
    return file;
}

/** Challenges pebble validated: it logs "authz <id> set VALID by completed challenge <id>" for each (the local CA never reuses a valid authorization: local/internet.ts). */
const validations = () => (fs.readFileSync(cloud.internet!.acmeLog, "utf8").match(/authz \S+ set VALID by completed challenge/g) ?? []).length;

/** The LBs by name and private address, and the one holding the public address. */
const lbs = () => up.outputs.lbs as { name: string; privateIp: string }[];
async function holderAndBackup(): Promise<{ holder: { name: string; privateIp: string }; backup: { name: string; privateIp: string } }> {
    const names = await up.cloud.whoAnswers(up.outputs.lbVip, 800);
    assert.equal(names.length, 1, `one LB holds the address: ${JSON.stringify(names)}`);
    return { holder: lbs().find(l => l.name === names[0])!, backup: lbs().find(l => l.name !== names[0])! };
}

/** The certificate an LB's own nginx presents for the domain (asked on the LB, at its private address). */
async function ownCertificate(lb: { privateIp: string }): Promise<{ issuer: string; serial: string }> {
    const out = await onHost(up, lb.privateIp, `echo | openssl s_client -connect ${lb.privateIp}:443 -servername ${DOMAIN} 2>/dev/null | openssl x509 -noout -issuer -serial`);
    return { issuer: /^issuer=(.*)$/m.exec(out)?.[1]?.trim() ?? "", serial: /^serial=(.*)$/m.exec(out)?.[1]?.trim() ?? "" };
}

/** The site through the LB as a browser reaches it (by name), accepting any certificate. */
const siteStatus = () => curl(cloud.publicNetns, ["-k", "--resolve", `${DOMAIN}:443:${lbIp}`, "-o", "/dev/null", "-w", "%{http_code}", `https://${DOMAIN}/`]).out;

e2e("a. first up without a DNS record: the site serves the temporary certificate and the letsencrypt step fails, saying what to do", async () => {
    const t0 = Date.now();
    const failure = await localUp(base).then(
        () => undefined,
        (e: unknown) => e,
    );
    console.log(`first up (no record): ${seconds(Date.now() - t0)}`);
    assert.ok(failure instanceof ProgramFailure, `the up must fail, got ${String(failure)}`);
    cloud = LocalCloud.open(cloudPrefix(STACK));
    assert.equal(cloud.floatingNats().length, 1, "the floating IP is associated (with the VIP port)");
    lbIp = cloud.floatingNats()[0].publicIp;
    const message = failure.message;
    assert.match(message, /^pycluster-acme-lb-letsencrypt: create failed/m);
    assert.match(message, /^pycluster-acme-lb-2-letsencrypt: create failed/m);
    assert.equal(message.match(/: create failed/g)?.length, 2, `only the letsencrypt steps failed:\n${message}`);
    assert.ok(
        message.includes(
            `hostctl letsencrypt: ${DOMAIN} does not resolve here, not the load balancer's public address ${lbIp}: Let's Encrypt validates the domain at the address it resolves to. ` +
                `To fix: point an A record for ${DOMAIN} at ${lbIp}, or set dnsZone to the zone of ${DOMAIN} at OVH so that \`pulumi up\` manages the record; ` +
                `the site serves a temporary certificate meanwhile; run \`pulumi up\` again once ${DOMAIN} resolves to ${lbIp}.`,
        ),
        message,
    );
    assert.equal(siteStatus(), "200", "the cluster is up and serves the app");
    const cert = served();
    assert.match(cert.subject, new RegExp(`O ?= ?${ACME_PLACEHOLDER_ORGANIZATION}`), `the temporary certificate: ${cert.subject}`);
    assert.match(cert.issuer, new RegExp(`O ?= ?${ACME_PLACEHOLDER_ORGANIZATION}`), "self-signed");
    assert.match(fs.readFileSync(cloud.internet!.acmeLog, "utf8"), /Listening on: /, "the CA runs");
    assert.equal(validations(), 0, "the CA validated nothing");
    assert.doesNotMatch(fs.readFileSync(cloud.internet!.acmeLog, "utf8"), /Attempting to validate/, "nor tried: the step stopped before certbot");
});

e2e("b. the user points the record at the pair and runs up again: each LB gets the CA's certificate, and the backup renews its own through the holder", async () => {
    cloud.setDnsRecord(DOMAIN, lbIp);
    const t0 = Date.now();
    up = await localUp(base);
    console.log(`second up (record set by the user): ${seconds(Date.now() - t0)}, ${up.remoteExecutions.length} remote steps`);
    for (const name of ["pycluster-acme-lb-letsencrypt", "pycluster-acme-lb-2-letsencrypt"]) {
        const le = up.steps.find(s => s.name === name)!;
        assert.equal(le.action, "create", `${name}: the failed step ran again`);
        assert.match(le.output ?? "", /letsencrypt: www\.pycluster\.test served with its certificate; renewal by certbot\.timer/);
    }
    assert.equal(validations(), 2, "the CA validated one challenge per LB (each has its own account), through the one public address");
    const root = pebbleRoot();
    const cert = served(root);
    assert.match(cert.issuer, /Pebble Intermediate CA/, `issued by the CA: ${cert.issuer}`);
    assert.equal(cert.verify, "0 (ok)", "chains to the CA's root, for the domain");
    const { holder, backup } = await holderAndBackup();
    assert.equal((await ownCertificate(holder)).serial, cert.serial, "the public address serves the holder's certificate");
    const backupCert = await ownCertificate(backup);
    assert.match(backupCert.issuer, /Pebble Intermediate CA/, `the backup serves its own certificate from the CA: ${backupCert.issuer}`);
    assert.notEqual(backupCert.serial, cert.serial);
    for (const lb of lbs()) {
        assert.equal((await onHost(up, lb.privateIp, "sudo readlink /etc/nginx/pycluster/tls/fullchain.pem")).trim(), `/etc/letsencrypt/live/${DOMAIN}/fullchain.pem`, lb.name);
        assert.match(await onHost(up, lb.privateIp, `sudo cat /etc/letsencrypt/renewal/${DOMAIN}.conf`), new RegExp(`^server = https://${cloud.internet!.ip}:14000/dir$`, "m"), `${lb.name}: renewals go to the same CA`);
        assert.match(await onHost(up, lb.privateIp, "sudo cat /etc/letsencrypt/renewal-hooks/deploy/pycluster-reload-nginx"), /nginx -t -q && python3 \/usr\/local\/lib\/pycluster\/hostctl\.pyz nginx-reload/);
        assert.equal((await onHost(up, lb.privateIp, "systemctl is-enabled certbot.timer")).trim(), "enabled", lb.name);
    }
    // What certbot.timer runs, forced, on the LB that does not hold the address: the CA's request can
    // only reach the holder (the public address), which passes it to the backup; the deploy hook
    // makes the backup serve the new certificate.
    const before = validations();
    await onHost(up, backup.privateIp, "sudo certbot renew --force-renewal --no-random-sleep-on-renew -q");
    assert.equal(validations(), before + 1, "the CA validated the backup's new challenge");
    const renewed = await ownCertificate(backup);
    assert.notEqual(renewed.serial, backupCert.serial, "the backup's nginx serves its renewed certificate");
    renewedSerial = renewed.serial;

    // The stand-in CA is as strict as Let's Encrypt: while the name does not resolve (record removed),
    // it validates nothing, whatever the LB would answer. certbot is run directly, past hostctl's own
    // DNS check, with a throwaway configuration directory.
    cloud.removeDnsRecord(DOMAIN);
    try {
        const tries = validations();
        const scratch = "/tmp/pycluster-le-strict";
        const out = await onHost(
            up,
            backup.privateIp,
            `sudo certbot certonly --non-interactive --agree-tos --register-unsafely-without-email --server https://${cloud.internet!.ip}:14000/dir ` +
                `--webroot -w /var/www/acme -d ${DOMAIN} --config-dir ${scratch}/c --work-dir ${scratch}/w --logs-dir ${scratch}/l 2>&1; echo "exit=$?"; sudo rm -rf ${scratch}`,
        );
        console.log(`certbot while ${DOMAIN} does not resolve:\n${out.trim().split("\n").slice(-6).join("\n")}`);
        assert.match(out, /^exit=1$/m, out);
        // pebble: "could not resolve URL"; Let's Encrypt: "DNS problem: NXDOMAIN looking up A for ...".
        assert.match(out, /could not resolve|DNS problem|NXDOMAIN|no such host/i, out);
        assert.equal(validations(), tries, "the CA validated nothing");
    } finally {
        cloud.setDnsRecord(DOMAIN, lbIp);
    }
});

e2e("f. the address moves to the other LB: it serves its own certificate, trusted for the domain", async () => {
    const { holder, backup } = await holderAndBackup();
    // On the console: SSH through the public address goes with the address.
    await up.cloud.consoleRun(holder.name, "systemctl stop keepalived");
    try {
        const t0 = Date.now();
        while ((await up.cloud.whoAnswers(up.outputs.lbVip, 800))[0] !== backup.name) {
            assert.ok(Date.now() - t0 < 15_000, "the backup took the address within 15 s");
            await new Promise(res => setTimeout(res, 500));
        }
        const cert = served(pebbleRoot());
        assert.equal(cert.verify, "0 (ok)", "trusted for the domain after the move");
        assert.equal(cert.serial, renewedSerial, "the former backup's own (renewed) certificate");
    } finally {
        // It rejoins as backup (no preemption): the address stays where it went.
        await up.cloud.consoleRun(holder.name, "systemctl start keepalived");
    }
    await new Promise(res => setTimeout(res, 5000));
    assert.deepEqual(await up.cloud.whoAnswers(up.outputs.lbVip, 800), [backup.name], "the address stayed after the old holder rejoined");
});

e2e("d. a later configuration push keeps certbot's certificate", async () => {
    const before = new Map<string, string>();
    for (const lb of lbs()) before.set(lb.name, (await ownCertificate(lb)).serial);
    const t0 = Date.now();
    const pushed = await localUp({ ...base, set: { upstreamKeepalive: "64" } });
    console.log(`configuration push: ${seconds(Date.now() - t0)}, ${pushed.remoteExecutions.length} remote steps`);
    for (const lb of lbs()) {
        assert.ok(pushed.remoteExecutions.some(s => s.name === `${lb.name}-nginx`), `${lb.name}: nginx's configuration was pushed`);
        assert.match(await onHost(pushed, lb.privateIp, "sudo nginx -T 2>/dev/null"), /keepalive 64;/);
        assert.equal((await onHost(pushed, lb.privateIp, "sudo readlink /etc/nginx/pycluster/tls/fullchain.pem")).trim(), `/etc/letsencrypt/live/${DOMAIN}/fullchain.pem`);
        assert.equal((await ownCertificate(lb)).serial, before.get(lb.name), `${lb.name} serves the certificate it had`);
    }
    const cert = served(pebbleRoot());
    assert.equal(cert.verify, "0 (ok)", "the public address serves a certificate trusted for the domain");
    assert.ok([...before.values()].includes(cert.serial), `one of the LBs' own certificates: ${cert.serial}`);
});

e2e("c. with dnsZone, a first up creates the record, pointing at the floating IP, and gets the certificate in one go", async () => {
    await localDown(base);
    const t0 = Date.now();
    up = await localUp({ ...base, set: { dnsZone: ZONE } });
    console.log(`first up with dnsZone: ${seconds(Date.now() - t0)}, ${up.remoteExecutions.length} remote steps`);
    cloud = up.cloud;
    lbIp = up.outputs.lbPublicIp;
    assert.equal(lbIp, cloud.floatingNats()[0].publicIp);
    const record = up.steps.find(s => s.type === "ovh:Domain/zoneRecord:ZoneRecord")!;
    assert.equal(record.action, "create");
    assert.deepEqual(cloud.dnsRecords().map(r => [r.name, r.type, r.value]), [[DOMAIN, "A", lbIp]], "the zone holds the record, pointing at the floating IP");
    const answer = (await onHost(up, "lb", `getent ahostsv4 ${DOMAIN}`)).trim().split(/\s+/)[0];
    assert.equal(answer, lbIp, "and the LB's resolver sees it");
    for (const name of ["pycluster-acme-lb-letsencrypt", "pycluster-acme-lb-2-letsencrypt"]) {
        const le = up.steps.find(s => s.name === name)!;
        assert.ok(le.startedAt >= record.startedAt + record.ms, `${name}: certbot ran after the record existed`);
    }
    const cert = served(pebbleRoot());
    assert.match(cert.issuer, /Pebble Intermediate CA/);
    assert.equal(cert.verify, "0 (ok)");
    const { backup } = await holderAndBackup();
    assert.match((await ownCertificate(backup)).issuer, /Pebble Intermediate CA/, "the backup has its own");
});

e2e("e. destroy deletes the record and leaves nothing of the cloud", async () => {
    if (keep) return;
    const steps = await localDown(base);
    assert.ok(steps.some(s => s.type === "ovh:Domain/zoneRecord:ZoneRecord" && s.action === "delete"));
    assert.deepEqual(leftoversOf(cloudPrefix(STACK)), { netns: [], links: [], mounts: [], pids: [], cgroups: [] });
});
