/**
 * Services of the local cloud's "internet" (its public network), for stacks that use Let's
 * Encrypt or manage DNS: one address (the public network's last usable one, `publicPlan`) in its
 * own namespace `<prefix>-inet`, serving
 *
 * - DNS (local/internetDns.py, python3-dnslib): authoritative for the cloud's zones, whose records
 *   the local engine manages (the program's ovh.domain.ZoneRecord) and tests may set directly (a
 *   user editing DNS elsewhere). It is also the resolver the hosts are handed: the stack file sets
 *   the subnet's `dnsNameservers` to this address and the cloud writes them into each host's
 *   resolv.conf, as DHCP does on OVH (Neutron hands a subnet's dns_nameservers to its ports).
 *   Models: the record set of an OVH zone (OVH API /domain/zone/{zone}/record, what
 *   terraform-provider-ovh's ovh_domain_zone_record writes and refreshes) and a resolver that sees
 *   it. Gentler than the real one: no caching, so a record is visible at once (real resolvers keep
 *   answers up to their TTL and "no such name" up to the SOA minimum, RFC 2308).
 *
 * - An ACME CA: Debian's `pebble`, Let's Encrypt's own test server (RFC 8555, as Boulder speaks
 *   it), at https://<address>:14000/dir. Like Let's Encrypt it resolves the domain (through this
 *   DNS, `-dnsserver`) and fetches the HTTP-01 challenge from port 80 of the address it resolves to
 *   (config `httpPort: 80`; Let's Encrypt docs, "Challenge Types": HTTP-01 is only on port 80), so
 *   a domain that does not point at the load balancer fails here as it fails there. Its random
 *   sleeps before validating (PEBBLE_VA_NOSLEEP=1) and its rejection of 5% of good nonces
 *   (PEBBLE_WFE_NONCEREJECT=0) are off: Let's Encrypt does neither on purpose (pebble README,
 *   "Testing at full speed", "Invalid Anti-Replay Nonce Errors"). Its reuse of a valid
 *   authorization in half of new orders is off too (PEBBLE_AUTHZREUSE=0, README "Valid
 *   Authorization Reuse"): Let's Encrypt reuses a validated authorization only for a limited
 *   time (30 days for its 90-day certificates; shorter with the shorter lifetimes it announced)
 *   and certbot renews when a third of the lifetime is left, after that time, so a real renewal
 *   validates again; the local CA would otherwise skip, at random, the very validation a
 *   renewal through the pair needs.
 *
 * Trust: pebble's API certificate is issued by a CA the cloud creates (its key stays in the
 * cloud's state directory, root only), and the cloud puts that CA into every host's trust store,
 * as the real web PKI's roots are in a stock image's ca-certificates. certbot itself is not
 * changed in any way (no --no-verify-ssl). Pebble's README warns against trusting its published
 * test CA anywhere, because its key is public; this CA's key never leaves the state directory and
 * the hosts are this cloud's throwaway VMs.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { shellLine, shellQuote } from "../lib/shell";
import { run } from "./exec";
import { canConnect } from "./network";
import { ensureCgroup, isRunning, ProcessRef, refOf } from "./procs";

export const ACME_PORT = 14000;
export const ACME_MANAGEMENT_PORT = 15000;

export interface InternetState {
    ip: string;
    /** Zones the DNS serves (a ZoneRecord in another zone is refused, as OVH refuses a zone not in the account). */
    zones: string[];
    recordsFile: string;
    caCertFile: string;
    dnsLog: string;
    acmeLog: string;
    dns?: ProcessRef;
    acme?: ProcessRef;
}

export interface DnsRecord {
    /** Set for records the local engine manages (a ZoneRecord's id). */
    id?: string;
    name: string;
    type: "A";
    value: string;
    ttl: number;
}

/** The ACME directory URL of the local internet's CA at `ip` (what a test stack's letsencryptServer names). */
export const acmeDirectoryUrl = (ip: string) => `https://${ip}:${ACME_PORT}/dir`;

/** pebble's configuration (pure): the API and validation ports as Let's Encrypt has them. */
export function renderPebbleConfig(o: { ip: string; certFile: string; keyFile: string }): string {
    return JSON.stringify(
        {
            pebble: {
                listenAddress: `${o.ip}:${ACME_PORT}`,
                managementListenAddress: `${o.ip}:${ACME_MANAGEMENT_PORT}`,
                certificate: o.certFile,
                privateKey: o.keyFile,
                httpPort: 80,
                tlsPort: 443,
                ocspResponderURL: "",
                externalAccountBindingRequired: false,
            },
        },
        null,
        2,
    );
}

/** The records file the DNS server reads (pure). */
export function renderRecords(zones: string[], records: DnsRecord[]): string {
    return JSON.stringify({ zones, records }, null, 2) + "\n";
}

export function readRecords(file: string): DnsRecord[] {
    try {
        return (JSON.parse(fs.readFileSync(file, "utf8")) as { records: DnsRecord[] }).records;
    } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return [];
        throw e;
    }
}

/** Writes the records file atomically (the server reads it on its next query). */
export function writeRecords(internet: InternetState, records: DnsRecord[]): void {
    fs.writeFileSync(`${internet.recordsFile}.tmp`, renderRecords(internet.zones, records));
    fs.renameSync(`${internet.recordsFile}.tmp`, internet.recordsFile);
}

/** The zone of the internet that holds `name`, if any. */
export function zoneOf(zones: string[], name: string): string | undefined {
    const n = name.toLowerCase().replace(/\.$/, "");
    return zones.filter(z => n === z || n.endsWith(`.${z}`)).sort((a, b) => b.length - a.length)[0];
}

/** The cloud's CA and pebble's API certificate (for its address), with OpenSSL. */
async function createCa(dir: string, ip: string, prefix: string): Promise<{ caCertFile: string; certFile: string; keyFile: string }> {
    const f = (n: string) => path.join(dir, n);
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    await run(["openssl", "req", "-x509", ...ec, "-days", "30", "-subj", `/O=pycluster local internet/CN=${prefix} web PKI root`,
        "-keyout", f("ca.key"), "-out", f("ca.pem"),
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    await run(["openssl", "req", "-x509", ...ec, "-days", "30", "-subj", `/CN=${ip}`, "-CA", f("ca.pem"), "-CAkey", f("ca.key"),
        "-keyout", f("acme.key"), "-out", f("acme.pem"),
        "-addext", `subjectAltName=IP:${ip}`, "-addext", "extendedKeyUsage=serverAuth", "-addext", "basicConstraints=critical,CA:FALSE"]);
    fs.chmodSync(f("ca.key"), 0o600);
    fs.chmodSync(f("acme.key"), 0o600);
    return { caCertFile: f("ca.pem"), certFile: f("acme.pem"), keyFile: f("acme.key") };
}

/** Starts a service in the internet namespace and the cloud's cgroup, detached, its output to `log`. */
function startService(o: { cgroup: string; netns: string; argv: string[]; env?: Record<string, string>; log: string }): ProcessRef {
    const dirs = ensureCgroup(o.cgroup);
    const script =
        `for cg in ${shellLine(dirs)}; do echo $$ > "$cg/cgroup.procs"; done\n` +
        `exec ip netns exec ${shellQuote(o.netns)} ${shellLine(o.argv)}\n`;
    const log = fs.openSync(o.log, "a");
    try {
        const child = spawn("bash", ["-c", script], { detached: true, stdio: ["ignore", log, log], env: { ...process.env, ...o.env } });
        child.unref();
        if (child.pid === undefined) throw new Error(`cannot start ${o.argv[0]}`);
        return refOf(child.pid);
    } finally {
        fs.closeSync(log);
    }
}

async function waitListening(ref: ProcessRef, netns: string, ip: string, port: number, what: string, log: string): Promise<void> {
    const deadline = Date.now() + 15_000;
    while (!(await canConnect({ netns, host: ip, port, timeoutMs: 1000 }))) {
        if (!isRunning(ref) || Date.now() > deadline) throw new Error(`the local internet's ${what} did not start; see ${log}`);
        await new Promise(r => setTimeout(r, 100));
    }
}

/**
 * Creates the CA, then starts DNS and pebble at `ip` (already configured in `netns`). Returns
 * the state to keep; `onStarted` records each process as soon as it runs, so teardown finds it.
 */
export async function startInternet(o: {
    prefix: string;
    stateDir: string;
    netns: string;
    cgroup: string;
    ip: string;
    zones: string[];
    onStarted: (s: InternetState) => void;
}): Promise<InternetState> {
    const dir = path.join(o.stateDir, "internet");
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const ca = await createCa(dir, o.ip, o.prefix);
    const s: InternetState = {
        ip: o.ip,
        zones: o.zones.map(z => z.toLowerCase().replace(/\.$/, "")),
        recordsFile: path.join(dir, "dns-records.json"),
        caCertFile: ca.caCertFile,
        dnsLog: path.join(o.stateDir, "internet-dns.log"),
        acmeLog: path.join(o.stateDir, "pebble.log"),
    };
    writeRecords(s, []);
    const pebbleConfig = path.join(dir, "pebble-config.json");
    fs.writeFileSync(pebbleConfig, renderPebbleConfig({ ip: o.ip, certFile: ca.certFile, keyFile: ca.keyFile }));
    const python = fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
    s.dns = startService({ cgroup: o.cgroup, netns: o.netns, argv: [python, path.join(__dirname, "internetDns.py"), o.ip, s.recordsFile], log: s.dnsLog });
    o.onStarted(s);
    s.acme = startService({
        cgroup: o.cgroup,
        netns: o.netns,
        argv: ["pebble", "-config", pebbleConfig, "-dnsserver", `${o.ip}:53`],
        env: { PEBBLE_VA_NOSLEEP: "1", PEBBLE_WFE_NONCEREJECT: "0", PEBBLE_AUTHZREUSE: "0" },
        log: s.acmeLog,
    });
    o.onStarted(s);
    await waitListening(s.dns, o.netns, o.ip, 53, "DNS server", s.dnsLog);
    await waitListening(s.acme, o.netns, o.ip, ACME_PORT, "ACME CA (pebble)", s.acmeLog);
    return s;
}

/** What a host of a cloud with these services gets in its disk: the CA in its trust store (pure). */
export function trustStoreFiles(caPem: string, stockBundle: string): Record<string, string> {
    return {
        // Where update-ca-certificates picks local CAs up, so a later run (a ca-certificates upgrade) keeps it...
        "/usr/local/share/ca-certificates/pycluster-local-internet.crt": caPem,
        // ...and the bundle that run would produce (certbot's requests, curl and openssl read this file).
        "/etc/ssl/certs/ca-certificates.crt": stockBundle.endsWith("\n") || stockBundle === "" ? stockBundle + caPem : `${stockBundle}\n${caPem}`,
    };
}

/** The resolv.conf DHCP would give a host of a subnet with these resolvers (pure). */
export function renderResolvConf(nameservers: string[]): string {
    return `# From the subnet's dnsNameservers, as DHCP hands them out (local cloud)\n${nameservers.map(n => `nameserver ${n}\n`).join("")}`;
}
