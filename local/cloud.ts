/**
 * A local "cloud" on this machine: a private network with a gateway (serving an apt
 * repository), a public network where the root namespace plays the internet, internet clients,
 * and hosts booted from the cached Debian root filesystem.
 *
 *   root namespace (deployer) 198.51.100.1 ── <prefix>-pub ── <prefix>-c1..cN (clients)
 *                                                  └──────── eth1 of hosts with a public IP
 *   <prefix>-gw 10.77.0.1 (apt repo on :80) ── <prefix>-prv ── eth0 of every host
 *   (with `internet`) <prefix>-inet 198.51.100.254 (DNS, ACME CA: local/internet.ts) on <prefix>-pub
 *
 * The private bridge has no address in the root namespace and the private subnet is made
 * unreachable there, so nothing on the deployer side reaches a private address; no namespace
 * forwards IP packets, so nothing routes between the two networks.
 *
 * All state (PIDs, names, addresses, paths) is kept in `<stateRoot>/<prefix>/state.json`, so hosts
 * outlive the Node process that created them and any process can `destroyCloud(prefix)` later.
 */
import { createHash } from "node:crypto";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { run, sleep } from "./exec";
import {
    HostState,
    hostPaths,
    initPid,
    killHostProcesses,
    mountOverlay,
    mountPoints,
    nspawnPid,
    renderHostFiles,
    shutdownHost,
    startSupervisor,
    unmountOverlay,
    waitForSsh,
    writeHostFiles,
} from "./host";
import { isUsableAddress, overlaps } from "../lib/ipv4";
import { cloudCidr, cloudNames, CloudNames, hostAddress, hostUuid, MAX_HOSTS, privatePlan, publicPlan, validateHostName } from "./names";
import {
    addVeth,
    blockFromRoot,
    canConnect,
    deleteLink,
    deleteNetns,
    ensureBridge,
    ensureNetns,
    linkExists,
    listLinks,
    listNetns,
    netnsExists,
    overlappingRoutes,
    unblockFromRoot,
} from "./network";
import { cgroupDirs, cgroupPids, ensureCgroup, isRunning, killCgroup, ProcessRef, refOf, removeCgroup, signalRef, waitGone } from "./procs";
import { ensureRootfs, Rootfs } from "./rootfs";
import { DnsRecord, InternetState, readRecords, renderResolvConf, startInternet, trustStoreFiles, writeRecords, zoneOf } from "./internet";

export const DEFAULT_STATE_ROOT = "/var/lib/pycluster-local";
export const DEFAULT_PUBLIC_CIDR = "198.51.100.0/24";

export interface CloudOptions {
    /** Short name (1-8 lowercase letters/digits) that prefixes every object of the cloud. */
    prefix: string;
    /** Private subnet, e.g. 10.77.0.0/24; its first address is the gateway. */
    privateCidr: string;
    /** Public network ("the internet"), default 198.51.100.0/24; the root namespace takes its first address. */
    publicCidr?: string;
    /** Number of internet client namespaces (default 1); the first is `publicNetns`. */
    clients?: number;
    /** Root filesystem to boot (from ensureRootfs); built/fetched from the default cache if omitted. */
    rootfs?: Rootfs;
    /** Parent of the cloud's state directory (default /var/lib/pycluster-local). */
    stateRoot?: string;
    /** Destroy an existing cloud of the same prefix first, instead of failing. */
    replaceExisting?: boolean;
    /** Run the internet's DNS (authoritative for these zones) and ACME CA (local/internet.ts). */
    internet?: { zones: string[] };
    log?: (line: string) => void;
}

export interface CloudState {
    version: 1;
    prefix: string;
    stateDir: string;
    privateCidr: string;
    gatewayIp: string;
    publicCidr: string;
    rootPublicIp: string;
    clients: { netns: string; ip: string; veth: string }[];
    rootDir: string;
    repoDir: string;
    privateBlocked: boolean;
    /**
     * Whether the private network's gateway exists yet (the program's Gateway resource): until
     * then nothing on the subnet reaches past it, not even the apt repository it serves.
     */
    gatewayOpen?: boolean;
    repoServer?: ProcessRef;
    reservedPublicIps: string[];
    /** DNS and ACME services on the public network (CloudOptions.internet). */
    internet?: InternetState;
    hosts: Record<string, HostState>;
    createdAt: string;
}

export interface BootHostOptions {
    name: string;
    privateIp: string;
    /** cloud-init user-data, written verbatim to the NoCloud seed. */
    userData: string;
    /** NoCloud meta-data: extra keys (merged over instance-id and local-hostname) or the whole document. */
    metaData?: string | Record<string, string>;
    /** NoCloud vendor-data, e.g. to slow cloud-init down in a test. */
    vendorData?: string;
    /** How long to wait for sshd (default 120 s). */
    timeoutMs?: number;
    /** The subnet's DNS servers, which DHCP hands to the instance (its resolv.conf). */
    dnsNameservers?: string[];
}

/** What callers see of a host. */
export interface HostInfo {
    name: string;
    privateIp: string;
    publicIp?: string;
    netns: string;
    running: boolean;
    /** The host's console output (all boots). */
    consoleLog: string;
    /** The host's writable layer (its "disk"). */
    diskDir: string;
}

export function stateDirOf(prefix: string, stateRoot = DEFAULT_STATE_ROOT): string {
    return path.join(stateRoot, prefix);
}

function stateFile(stateDir: string): string {
    return path.join(stateDir, "state.json");
}

function readState(stateDir: string): CloudState | undefined {
    try {
        return JSON.parse(fs.readFileSync(stateFile(stateDir), "utf8")) as CloudState;
    } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw err;
    }
}

function writeState(state: CloudState): void {
    const file = stateFile(state.stateDir);
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2));
    fs.renameSync(`${file}.tmp`, file);
}

export class LocalCloud {
    readonly names: CloudNames;

    private constructor(
        readonly prefix: string,
        readonly stateDir: string,
    ) {
        this.names = cloudNames(prefix);
    }

    /** Creates the networks, gateway (with the apt repository server) and clients of a new cloud. */
    static async create(options: CloudOptions): Promise<LocalCloud> {
        const log = options.log ?? (() => undefined);
        const names = cloudNames(options.prefix);
        const priv = privatePlan(options.privateCidr);
        const pub = publicPlan(options.publicCidr ?? DEFAULT_PUBLIC_CIDR, options.clients ?? 1);
        if (overlaps(priv.cidr, pub.cidr)) {
            throw new Error(`privateCidr ${priv.cidr.text} and publicCidr ${pub.cidr.text} overlap: use disjoint networks`);
        }
        const stateDir = stateDirOf(options.prefix, options.stateRoot);
        const existing = leftoversOf(options.prefix, options.stateRoot);
        if (fs.existsSync(stateFile(stateDir)) || Object.values(existing).some((v: unknown[]) => v.length > 0)) {
            if (!options.replaceExisting) {
                throw new Error(`a local cloud "${options.prefix}" already exists (${stateDir}): destroyCloud("${options.prefix}") first, or pass replaceExisting`);
            }
            await destroyCloud(options.prefix, { stateRoot: options.stateRoot });
        }
        // another cloud (or this machine's own network) using either range would break routing
        for (const [what, cidr] of [["privateCidr", priv.cidr], ["publicCidr", pub.cidr]] as const) {
            const clash = await overlappingRoutes(cidr);
            if (clash.length > 0) {
                throw new Error(`${what} ${cidr.text} of local cloud "${options.prefix}" overlaps routes already on this machine (${clash.join("; ")}): choose another range`);
            }
        }
        const rootfs = options.rootfs ?? (await ensureRootfs({ log }));
        fs.mkdirSync(stateDir, { recursive: true });
        const state: CloudState = {
            version: 1,
            prefix: options.prefix,
            stateDir,
            privateCidr: priv.cidr.text,
            gatewayIp: priv.gatewayIp,
            publicCidr: pub.cidr.text,
            rootPublicIp: pub.rootIp,
            clients: pub.clientIps.map((ip, i) => ({ netns: names.clientNetns(i + 1), ip, veth: names.clientVeth(i + 1) })),
            rootDir: rootfs.rootDir,
            repoDir: rootfs.repoDir,
            privateBlocked: false,
            gatewayOpen: false,
            reservedPublicIps: [],
            hosts: {},
            createdAt: new Date().toISOString(),
        };
        writeState(state); // first, so that destroyCloud can clean up whatever follows
        const cloud = new LocalCloud(options.prefix, stateDir);
        try {
            log(`creating local cloud ${options.prefix}: private ${state.privateCidr}, public ${state.publicCidr}`);
            await ensureBridge(names.privateBridge);
            await ensureBridge(names.publicBridge, `${pub.rootIp}/${pub.cidr.prefixLength}`);
            await blockFromRoot(state.privateCidr);
            cloud.update((s) => void (s.privateBlocked = true));

            await ensureNetns(names.gatewayNetns);
            await addVeth({
                netns: names.gatewayNetns,
                rootName: names.gatewayVeth,
                bridge: names.privateBridge,
                innerName: "eth0",
                address: `${state.gatewayIp}/${priv.cidr.prefixLength}`,
            });
            for (const c of state.clients) {
                await ensureNetns(c.netns);
                await addVeth({
                    netns: c.netns,
                    rootName: c.veth,
                    bridge: names.publicBridge,
                    innerName: "eth0",
                    address: `${c.ip}/${pub.cidr.prefixLength}`,
                });
            }
            await closeGateway(names.gatewayNetns);
            const server = startRepoServer(names, state);
            cloud.update((s) => void (s.repoServer = server));
            const deadline = Date.now() + 10_000;
            while (!(await canConnect({ netns: names.gatewayNetns, host: state.gatewayIp, port: 80, timeoutMs: 1000 }))) {
                if (!isRunning(server) || Date.now() > deadline) {
                    throw new Error(`the apt repository server did not start; see ${path.join(stateDir, "repo-server.log")}`);
                }
                await sleep(100);
            }
            if (options.internet) {
                await ensureNetns(names.internetNetns);
                await addVeth({ netns: names.internetNetns, rootName: names.internetVeth, bridge: names.publicBridge, innerName: "eth0", address: `${pub.servicesIp}/${pub.cidr.prefixLength}` });
                await startInternet({
                    prefix: options.prefix,
                    stateDir,
                    netns: names.internetNetns,
                    cgroup: names.internetCgroup,
                    ip: pub.servicesIp,
                    zones: options.internet.zones,
                    onStarted: (internet) => cloud.update((s) => void (s.internet = { ...internet })),
                });
                log(`local internet: DNS and ACME CA at ${pub.servicesIp} (zones: ${options.internet.zones.join(", ") || "none"})`);
            }
            return cloud;
        } catch (err) {
            await destroyCloud(options.prefix, { stateRoot: options.stateRoot }).catch(() => undefined);
            throw err;
        }
    }

    /** Opens a cloud created earlier (possibly by another process). */
    static open(prefix: string, stateRoot?: string): LocalCloud {
        const stateDir = stateDirOf(prefix, stateRoot);
        if (!readState(stateDir)) throw new Error(`no local cloud "${prefix}" (no ${stateFile(stateDir)})`);
        return new LocalCloud(prefix, stateDir);
    }

    /** The current state, as recorded on disk. */
    get state(): CloudState {
        const s = readState(this.stateDir);
        if (!s) throw new Error(`local cloud "${this.prefix}" is gone (no ${stateFile(this.stateDir)})`);
        return s;
    }

    get gatewayIp(): string {
        return this.state.gatewayIp;
    }

    /** Address of the root namespace (the deployer) on the public network. */
    get rootPublicIp(): string {
        return this.state.rootPublicIp;
    }

    /** Network namespace of the first internet client. */
    get publicNetns(): string {
        return this.state.clients[0].netns;
    }

    get clients(): { netns: string; ip: string }[] {
        return this.state.clients.map(({ netns, ip }) => ({ netns, ip }));
    }

    /**
     * The private network's gateway comes into existence (OVH's Gateway resource): from now on the
     * subnet's hosts reach the outside (here: the apt repository behind the gateway address).
     */
    async openGateway(): Promise<void> {
        await run(["ip", "netns", "exec", this.names.gatewayNetns, "nft", "delete", "table", "inet", GATEWAY_TABLE], { allowFailure: true });
        this.update((s) => void (s.gatewayOpen = true));
    }

    /** The gateway is gone: the subnet is cut off from the outside again. */
    async closeGateway(): Promise<void> {
        await closeGateway(this.names.gatewayNetns);
        this.update((s) => void (s.gatewayOpen = false));
    }

    /** Whether cloud-init has run to its end on the host (its boot-finished marker is on the host's disk). */
    cloudInitFinished(name: string): boolean {
        const instances = path.join(hostPaths(this.hostState(name).dir).upper, "var", "lib", "cloud", "instances");
        try {
            return fs.readdirSync(instances).some((id) => fs.existsSync(path.join(instances, id, "boot-finished")));
        } catch {
            return false;
        }
    }

    /**
     * Whether the cloud's own network still exists. Namespaces, bridges and the repository server do
     * not survive a reboot of this machine while the state file does: such a cloud is left over.
     */
    get intact(): boolean {
        return listNetns().includes(this.names.gatewayNetns) && isRunning(this.state.repoServer);
    }

    /** Clouds made before the gateway was modelled had theirs open from the start. */
    get gatewayOpen(): boolean {
        return this.state.gatewayOpen !== false;
    }

    /** Boots a host and resolves once its sshd accepts connections (cloud-init may still run). */
    async bootHost(o: BootHostOptions): Promise<HostInfo> {
        validateHostName(o.name);
        const priv = cloudCidr(this.state.privateCidr);
        let host!: HostState;
        this.update((s) => {
            if (s.hosts[o.name]) throw new Error(`host ${o.name} already exists in local cloud ${this.prefix}`);
            if (!isUsableAddress(priv, o.privateIp) || o.privateIp === s.gatewayIp) {
                throw new Error(`privateIp ${o.privateIp} of host ${o.name} is not a free address of ${s.privateCidr} (gateway ${s.gatewayIp})`);
            }
            const clash = Object.values(s.hosts).find((h) => h.privateIp === o.privateIp);
            if (clash) throw new Error(`privateIp ${o.privateIp} of host ${o.name} is already used by host ${clash.name}`);
            const used = new Set(Object.values(s.hosts).map((h) => h.index));
            let index = 1;
            while (used.has(index)) index++;
            if (index > MAX_HOSTS) throw new Error(`too many hosts (max ${MAX_HOSTS})`);
            host = {
                name: o.name,
                index,
                netns: this.names.hostNetns(o.name),
                privateIp: o.privateIp,
                privateVeth: this.names.hostPrivateVeth(index),
                dir: path.join(s.stateDir, "hosts", o.name),
                cgroup: this.names.hostCgroup(o.name),
                uuid: hostUuid(this.prefix, o.name, (t) => createHash("sha256").update(t).digest("hex")),
            };
            s.hosts[o.name] = host;
        });
        const s = this.state;
        await this.plugHost(host, s);
        await mountOverlay(host.dir, s.rootDir);
        writeHostFiles(host.dir, {
            ...renderHostFiles({
                name: o.name,
                gatewayIp: s.gatewayIp,
                userData: o.userData,
                metaData: o.metaData,
                vendorData: o.vendorData,
                instanceId: `i-${host.uuid.replace(/-/g, "").slice(0, 16)}`,
                machineId: host.uuid.replace(/-/g, ""),
            }),
            ...(o.dnsNameservers ? { "/etc/resolv.conf": renderResolvConf(o.dnsNameservers) } : {}),
            // The internet's CAs, as a stock image ships the web PKI's roots.
            ...(s.internet
                ? trustStoreFiles(fs.readFileSync(s.internet.caCertFile, "utf8"), fs.readFileSync(path.join(s.rootDir, "etc/ssl/certs/ca-certificates.crt"), "utf8"))
                : {}),
        });
        return this.launch(o.name, o.timeoutMs);
    }

    /** Boots a stopped host again, with the disk it had. No-op if it is running. */
    async startHost(name: string, timeoutMs?: number): Promise<HostInfo> {
        const host = this.hostState(name);
        if (isRunning(host.supervisor)) return this.host(name);
        const s = this.state;
        await this.plugHost(host, s); // recreates the namespace if it was lost (e.g. machine reboot)
        await mountOverlay(host.dir, s.rootDir);
        return this.launch(name, timeoutMs);
    }

    /** Orderly shutdown (like `poweroff`): resolves when every process of the host is gone. */
    async stopHost(name: string, timeoutMs = 30_000): Promise<void> {
        await shutdownHost(this.hostState(name), timeoutMs);
        this.update((s) => void delete s.hosts[name].supervisor);
    }

    /** Hard stop (like pulling the plug): SIGKILL every process of the host. */
    async killHost(name: string): Promise<void> {
        await killHostProcesses(this.hostState(name));
        this.update((s) => void delete s.hosts[name].supervisor);
    }

    /**
     * Deletes the host, like deleting an instance: shuts it down (killed after `timeoutMs`),
     * then removes its disk, network namespace, interfaces (also its public IP) and cgroup.
     * Its name and addresses can be used again afterwards.
     */
    async removeHost(name: string, timeoutMs = 10_000): Promise<void> {
        const host = this.hostState(name);
        await shutdownHost(host, timeoutMs);
        await unmountOverlay(host.dir);
        await deleteNetns(host.netns);
        await deleteLink(host.privateVeth);
        if (host.publicVeth) await deleteLink(host.publicVeth);
        const failed = removeCgroup(host.cgroup);
        if (failed.length > 0) throw new Error(`host ${name}: cannot remove cgroups ${failed.join(", ")}`);
        if (mountPoints().some((m) => m.startsWith(`${host.dir}/`))) throw new Error(`host ${name}: ${host.dir} is still mounted`);
        fs.rmSync(host.dir, { recursive: true, force: true });
        this.update((s) => void delete s.hosts[name]);
    }

    /** Reboots the host (ctrl-alt-del to its init) and resolves when its sshd is back. */
    async rebootHost(name: string, timeoutMs = 120_000): Promise<HostInfo> {
        const host = this.hostState(name);
        const before = nspawnPid(host);
        const init = initPid(host);
        if (!isRunning(host.supervisor) || before === undefined || init === undefined) {
            throw new Error(`host ${name} is not running`);
        }
        process.kill(init, "SIGINT"); // systemd as PID 1: SIGINT starts ctrl-alt-del.target, a reboot
        await this.waitForReboot(name, before, timeoutMs);
        return this.host(name);
    }

    /**
     * Waits until a reboot that is under way (e.g. `sudo reboot` over SSH) has brought the host
     * back: a new systemd-nspawn runs and sshd answers. `nspawnPidBefore` is from hostBootId().
     */
    async waitForReboot(name: string, nspawnPidBefore: number | undefined, timeoutMs = 120_000): Promise<void> {
        const host = this.hostState(name);
        const deadline = Date.now() + timeoutMs;
        for (;;) {
            const now = nspawnPid(host);
            if (now !== undefined && now !== nspawnPidBefore && initPid(host) !== undefined) break;
            if (!isRunning(host.supervisor)) throw new Error(`host ${name} did not come back after its reboot; see ${hostPaths(host.dir).consoleLog}`);
            if (Date.now() > deadline) throw new Error(`host ${name} did not reboot within ${timeoutMs / 1000} s`);
            await sleep(100);
        }
        await waitForSsh(host, Math.max(1000, deadline - Date.now()));
    }

    /** Identifies the current boot of a host (the PID of its systemd-nspawn), for waitForReboot. */
    hostBootId(name: string): number | undefined {
        return nspawnPid(this.hostState(name));
    }

    /**
     * Gives the host a public address (eth1 on the public network), like associating a floating
     * IP; works while the host runs. Replaces an earlier public address.
     */
    async attachPublicIp(name: string, ip: string): Promise<HostInfo> {
        const host = this.hostState(name);
        const s = this.state;
        const pub = cloudCidr(s.publicCidr);
        const taken = [s.rootPublicIp, ...s.clients.map((c) => c.ip), publicPlan(s.publicCidr, s.clients.length).servicesIp];
        const owner = Object.values(s.hosts).find((h) => h.publicIp === ip && h.name !== name);
        if (!isUsableAddress(pub, ip) || taken.includes(ip) || owner) {
            throw new Error(`public IP ${ip} for host ${name} is not free in ${s.publicCidr}` + (owner ? ` (host ${owner.name} has it)` : ""));
        }
        const veth = this.names.hostPublicVeth(host.index);
        await addVeth({ netns: host.netns, rootName: veth, bridge: this.names.publicBridge, innerName: "eth1", address: `${ip}/${pub.prefixLength}` });
        this.update((st) => {
            st.hosts[name].publicIp = ip;
            st.hosts[name].publicVeth = veth;
            st.reservedPublicIps = st.reservedPublicIps.filter((r) => r !== ip);
        });
        return this.host(name);
    }

    /** Removes the host's public address (eth1). */
    async detachPublicIp(name: string): Promise<HostInfo> {
        const host = this.hostState(name);
        if (host.publicVeth) await deleteLink(host.publicVeth);
        this.update((s) => {
            delete s.hosts[name].publicIp;
            delete s.hosts[name].publicVeth;
        });
        return this.host(name);
    }

    /** Reserves and returns a free public address for a floating IP. */
    allocatePublicIp(): string {
        let ip = "";
        this.update((s) => {
            const pub = publicPlan(s.publicCidr, s.clients.length);
            const used = new Set([...s.reservedPublicIps, ...Object.values(s.hosts).map((h) => h.publicIp)]);
            for (let n = pub.firstFloatingIndex; ; n++) {
                if (n > pub.lastFloatingIndex) throw new Error(`no free public address left in ${s.publicCidr}`);
                const candidate = hostAddress(pub.cidr, n);
                if (!used.has(candidate)) {
                    ip = candidate;
                    break;
                }
            }
            s.reservedPublicIps.push(ip);
        });
        return ip;
    }

    host(name: string): HostInfo {
        const h = this.hostState(name);
        return {
            name: h.name,
            privateIp: h.privateIp,
            publicIp: h.publicIp,
            netns: h.netns,
            running: isRunning(h.supervisor),
            consoleLog: hostPaths(h.dir).consoleLog,
            diskDir: hostPaths(h.dir).upper,
        };
    }

    hosts(): HostInfo[] {
        return Object.keys(this.state.hosts).map((n) => this.host(n));
    }

    /** The internet's services, if this cloud runs them. */
    get internet(): InternetState | undefined {
        return this.state.internet;
    }

    /** The internet's DNS records. */
    dnsRecords(): DnsRecord[] {
        return this.internet ? readRecords(this.internet.recordsFile) : [];
    }

    /**
     * Sets the A record of `name` (replacing the one it had), as the zone's owner would: through the
     * program's ZoneRecord, or by hand elsewhere. Throws for a name outside the internet's zones.
     */
    setDnsRecord(name: string, address: string, ttl = 60): void {
        const internet = this.requireInternet();
        const fqdn = name.toLowerCase().replace(/\.$/, "");
        if (!zoneOf(internet.zones, fqdn)) throw new Error(`${fqdn} is in none of the local internet's zones (${internet.zones.join(", ")})`);
        writeRecords(internet, [...readRecords(internet.recordsFile).filter((r) => r.name !== fqdn), { name: fqdn, type: "A", value: address, ttl }]);
    }

    /** Removes the A records of `name`, if any. */
    removeDnsRecord(name: string): void {
        const internet = this.requireInternet();
        const fqdn = name.toLowerCase().replace(/\.$/, "");
        writeRecords(internet, readRecords(internet.recordsFile).filter((r) => r.name !== fqdn));
    }

    /** A record added beside any other of its name, as the DNS zone API adds one (identified by `id`). */
    putDnsRecord(record: DnsRecord & { id: string }): void {
        const internet = this.requireInternet();
        writeRecords(internet, [...readRecords(internet.recordsFile).filter((r) => r.id !== record.id), record]);
    }

    /** Deletes the record `id`, leaving others of the same name. */
    deleteDnsRecord(id: string): void {
        const internet = this.requireInternet();
        writeRecords(internet, readRecords(internet.recordsFile).filter((r) => r.id !== id));
    }

    private requireInternet(): InternetState {
        const internet = this.internet;
        if (!internet) throw new Error(`local cloud ${this.prefix} has no internet services (create it with \`internet\`)`);
        return internet;
    }

    /** Tears the whole cloud down (see destroyCloud). */
    destroy(): Promise<DestroyReport> {
        return destroyCloud(this.prefix, { stateRoot: path.dirname(this.stateDir) });
    }

    private hostState(name: string): HostState {
        const h = this.state.hosts[name];
        if (!h) throw new Error(`no host ${name} in local cloud ${this.prefix}`);
        return h;
    }

    /**
     * Read-modify-write of the state file: synchronous (atomic within this process) and under a
     * lock file (atomic between processes that share the cloud).
     */
    private update(change: (s: CloudState) => void): void {
        withLockSync(path.join(this.stateDir, "state.lock"), () => {
            const s = this.state;
            change(s);
            writeState(s);
        });
    }

    private async plugHost(host: HostState, s: CloudState): Promise<void> {
        const priv = cloudCidr(s.privateCidr);
        if (netnsExists(host.netns) && linkExists(host.privateVeth)) return;
        await ensureNetns(host.netns);
        await addVeth({
            netns: host.netns,
            rootName: host.privateVeth,
            bridge: this.names.privateBridge,
            innerName: "eth0",
            address: `${host.privateIp}/${priv.prefixLength}`,
            defaultVia: s.gatewayIp,
        });
        if (host.publicIp && host.publicVeth) {
            const pub = cloudCidr(s.publicCidr);
            await addVeth({ netns: host.netns, rootName: host.publicVeth, bridge: this.names.publicBridge, innerName: "eth1", address: `${host.publicIp}/${pub.prefixLength}` });
        }
    }

    private async launch(name: string, timeoutMs = 120_000): Promise<HostInfo> {
        const supervisor = startSupervisor(this.hostState(name));
        this.update((s) => void (s.hosts[name].supervisor = supervisor));
        await waitForSsh(this.hostState(name), timeoutMs);
        return this.host(name);
    }
}

/** Runs `fn` holding an exclusive lock file (which names its owner's PID; a dead owner's lock is taken over). */
function withLockSync<T>(file: string, fn: () => T, timeoutMs = 10_000): T {
    const deadline = Date.now() + timeoutMs;
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (;;) {
        try {
            fs.writeFileSync(file, String(process.pid), { flag: "wx" });
            break;
        } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
            const owner = Number(fs.readFileSync(file, { encoding: "utf8", flag: "a+" }).trim());
            if (owner > 0 && !fs.existsSync(`/proc/${owner}`)) {
                fs.rmSync(file, { force: true });
                continue;
            }
            if (Date.now() > deadline) throw new Error(`timed out waiting for ${file} (held by PID ${owner || "?"})`);
            Atomics.wait(pause, 0, 0, 10); // a short synchronous sleep
        }
    }
    try {
        return fn();
    } finally {
        fs.rmSync(file, { force: true });
    }
}

/** Creates a cloud (see LocalCloud.create). */
export function createCloud(options: CloudOptions): Promise<LocalCloud> {
    return LocalCloud.create(options);
}

const GATEWAY_TABLE = "pycluster_gateway";

/**
 * Before the gateway exists a private host has no way out: what it sends towards the gateway
 * address (its default route, the apt repository) is answered "network unreachable", as a
 * subnet without a router answers on OVH. Packets the gateway namespace sends itself are unaffected.
 */
async function closeGateway(netns: string): Promise<void> {
    const rules = [
        `add table inet ${GATEWAY_TABLE}`,
        `delete table inet ${GATEWAY_TABLE}`,
        `table inet ${GATEWAY_TABLE} {`,
        `  chain input {`,
        `    type filter hook input priority 0; policy accept;`,
        `    iifname "eth0" reject with icmpx type no-route`,
        `  }`,
        `}`,
        ``,
    ].join("\n");
    await run(["ip", "netns", "exec", netns, "nft", "-f", "-"], { input: rules });
}

/** Starts the HTTP server of the apt repository in the gateway namespace, in the cloud's cgroup. */
function startRepoServer(names: CloudNames, s: CloudState): ProcessRef {
    const dirs = ensureCgroup(names.gatewayCgroup);
    const python = fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
    const script =
        `for cg in ${dirs.map((d) => `'${d}'`).join(" ")}; do echo $$ > "$cg/cgroup.procs"; done\n` +
        `exec ip netns exec '${names.gatewayNetns}' ${python} -m http.server 80 --bind '${s.gatewayIp}' --directory '${s.repoDir}'\n`;
    const log = fs.openSync(path.join(s.stateDir, "repo-server.log"), "a");
    try {
        const child = spawn("bash", ["-c", script], { detached: true, stdio: ["ignore", log, log] });
        child.unref();
        if (child.pid === undefined) throw new Error("cannot start the apt repository server");
        return refOf(child.pid);
    } finally {
        fs.closeSync(log);
    }
}

/** Objects of a cloud that exist on this machine (found by name, mount path and cgroup). */
export interface CloudLeftovers {
    netns: string[];
    links: string[];
    mounts: string[];
    pids: number[];
    cgroups: string[];
}

/** Lists what exists of the cloud `prefix` on this machine; all empty after destroyCloud. */
export function leftoversOf(prefix: string, stateRoot?: string): CloudLeftovers {
    const names = cloudNames(prefix);
    const stateDir = stateDirOf(prefix, stateRoot);
    return {
        netns: listNetns().filter((n) => n.startsWith(`${prefix}-`)),
        links: listLinks().filter((l) => l.startsWith(`${prefix}-`)),
        mounts: mountPoints().filter((m) => m === stateDir || m.startsWith(`${stateDir}/`)),
        pids: cgroupPids(names.cgroup),
        cgroups: cgroupDirs(names.cgroup).filter((d) => fs.existsSync(d)),
    };
}

export interface DestroyReport {
    /** What still exists afterwards (all empty on success). */
    leftovers: CloudLeftovers;
    /** Hosts that had to be killed because they did not shut down in time. */
    killed: string[];
}

/**
 * Tears down everything of the cloud `prefix`: shuts hosts down (SIGTERM to their supervisors,
 * SIGKILL after `timeoutMs`), stops the repository server, unmounts overlays, deletes network
 * namespaces, veths, bridges, the route block, cgroups and the state directory. Idempotent: works
 * on a half-built cloud, one whose state file is lost, or one already gone. Throws if something
 * survives.
 */
export async function destroyCloud(prefix: string, options: { stateRoot?: string; timeoutMs?: number } = {}): Promise<DestroyReport> {
    const names = cloudNames(prefix);
    const stateDir = stateDirOf(prefix, options.stateRoot);
    const state = readState(stateDir);
    const killed: string[] = [];

    // 1. hosts: orderly shutdown in parallel, hard kill after the timeout
    const hosts = Object.values(state?.hosts ?? {});
    await Promise.all(
        hosts.map(async (h) => {
            if (!isRunning(h.supervisor) && cgroupPids(h.cgroup).length === 0) return;
            signalRef(h.supervisor, "SIGTERM");
            if (!(await waitGone(h.supervisor, options.timeoutMs ?? 20_000))) killed.push(h.name);
            await killHostProcesses(h);
        }),
    );
    // 2. the repository server and the internet's services, then anything else left in the cloud's
    // cgroup (ours by construction)
    for (const ref of [state?.repoServer, state?.internet?.dns, state?.internet?.acme]) {
        if (signalRef(ref, "SIGTERM")) await waitGone(ref, 3_000);
    }
    await killCgroup(names.cgroup);

    // 3. overlays (also of hosts missing from the state file)
    for (const m of mountPoints().filter((m) => m.startsWith(`${stateDir}/`)).reverse()) {
        await unmountOverlay(path.dirname(m)).catch(() => undefined);
        if (mountPoints().includes(m)) await run(["umount", "--lazy", m], { allowFailure: true });
    }
    // 4. network: namespaces (their veth ends go with them), remaining links, route block
    for (const ns of listNetns().filter((n) => n.startsWith(`${prefix}-`))) await deleteNetns(ns);
    for (const link of listLinks().filter((l) => l.startsWith(`${prefix}-`))) await deleteLink(link);
    if (state?.privateBlocked) await unblockFromRoot(state.privateCidr);

    // 5. cgroups, deepest first, and the state directory
    removeCgroup(names.cgroup);
    const leftovers = leftoversOf(prefix, options.stateRoot);
    if (leftovers.mounts.length === 0) fs.rmSync(stateDir, { recursive: true, force: true });
    const remaining = Object.entries(leftovers).filter(([, v]) => (v as unknown[]).length > 0);
    if (remaining.length > 0) {
        throw new Error(`destroyCloud(${prefix}) left: ${remaining.map(([k, v]) => `${k} ${JSON.stringify(v)}`).join("; ")}`);
    }
    return { leftovers, killed };
}
