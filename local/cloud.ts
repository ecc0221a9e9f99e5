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
 *
 * The parts: the state file and its view (cloudState.ts), creation (cloudCreate.ts), hosts
 * (cloudHosts.ts), the gateway's filter and repository server (cloudGateway.ts), teardown and
 * leftovers (cloudTeardown.ts); LocalCloud puts them together.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { run } from "./exec";
import { cloudNames, privatePlan, publicPlan } from "./names";
import { listNetns } from "./network";
import { isRunning } from "./procs";
import { ensureRootfs } from "./rootfs";
import { DnsRecord, InternetState, readRecords, writeRecords, zoneOf } from "./internet";
import { readState, stateDirOf, stateFile, writeState } from "./cloudState";
import { CloudPair } from "./cloudPair";
import { closeGateway, GATEWAY_TABLE } from "./cloudGateway";
import { buildNetworks, clearTheWay, CloudOptions, DEFAULT_PUBLIC_CIDR, initialState, serveRepository, startCloudInternet } from "./cloudCreate";
import { destroyCloud, DestroyReport } from "./cloudTeardown";

export { DEFAULT_STATE_ROOT, stateDirOf } from "./cloudState";
export type { CloudState, HostInfo } from "./cloudState";
export type { BootHostOptions } from "./cloudHosts";
export { DEFAULT_PUBLIC_CIDR } from "./cloudCreate";
export type { CloudOptions } from "./cloudCreate";
export { destroyCloud, leftoversOf } from "./cloudTeardown";
export type { CloudLeftovers, DestroyReport } from "./cloudTeardown";

export class LocalCloud extends CloudPair {
    /** Creates the networks, gateway (with the apt repository server) and clients of a new cloud. */
    static async create(options: CloudOptions): Promise<LocalCloud> {
        const log = options.log ?? (() => undefined);
        const names = cloudNames(options.prefix);
        const priv = privatePlan(options.privateCidr);
        const pub = publicPlan(options.publicCidr ?? DEFAULT_PUBLIC_CIDR, options.clients ?? 1);
        const stateDir = stateDirOf(options.prefix, options.stateRoot);
        await clearTheWay(options, priv, pub, stateDir);
        const rootfs = options.rootfs ?? (await ensureRootfs({ log }));
        fs.mkdirSync(stateDir, { recursive: true });
        const state = initialState(options, stateDir, priv, pub, rootfs);
        writeState(state); // first, so that destroyCloud can clean up whatever follows
        const cloud = new LocalCloud(options.prefix, stateDir);
        try {
            log(`creating local cloud ${options.prefix}: private ${state.privateCidr}, public ${state.publicCidr}`);
            await buildNetworks(names, state, priv, pub, (change) => cloud.update(change));
            await serveRepository(names, state, (change) => cloud.update(change));
            if (options.internet) {
                await startCloudInternet(options.prefix, options.internet.zones, names, stateDir, pub, (change) => cloud.update(change), log);
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

    /**
     * The private network's gateway comes into existence (OVH's Gateway resource): from now on the
     * subnet's hosts reach the outside (here: the apt repository behind the gateway address).
     */
    async openGateway(): Promise<void> {
        await run(["ip", "netns", "exec", this.names.gatewayNetns, "nft", "delete", "table", "inet", GATEWAY_TABLE], { allowFailure: true });
        this.update((s) => void (s.gatewayOpen = true));
        // OVH's Gateway has its external address from its creation on (the router's SNAT address),
        // whatever floating IPs the subnet has or will have.
        await this.ensureRouterLeg();
        await this.applyRouter();
    }

    /** The gateway is gone: the subnet is cut off from the outside again. */
    async closeGateway(): Promise<void> {
        await closeGateway(this.names.gatewayNetns);
        this.update((s) => void (s.gatewayOpen = false));
        await this.applyRouter();
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
}

/** Creates a cloud (see LocalCloud.create). */
export function createCloud(options: CloudOptions): Promise<LocalCloud> {
    return LocalCloud.create(options);
}
