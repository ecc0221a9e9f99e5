/**
 * The local cloud's hosts, as an OpenStack project's instances: boot, start, stop, kill, reboot and
 * delete, and public addresses attached and detached like floating IPs.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { sleep } from "./exec";
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
import { isUsableAddress } from "../lib/ipv4";
import { cloudCidr, hostAddress, hostUuid, MAX_HOSTS, publicPlan, validateHostName } from "./names";
import { addVeth, deleteLink, deleteNetns, ensureNetns, linkExists, netnsExists } from "./network";
import { isRunning, removeCgroup } from "./procs";
import { renderResolvConf, trustStoreFiles } from "./internet";
import { applyFabric } from "./fabric";
import { run } from "./exec";
import { CloudState, CloudStore, HostInfo } from "./cloudState";

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

/** The hosts of a local cloud (LocalCloud adds its creation, gateway, DNS and teardown). */
export class CloudHosts extends CloudStore {
    /** Whether cloud-init has run to its end on the host (its boot-finished marker is on the host's disk). */
    cloudInitFinished(name: string): boolean {
        const instances = path.join(hostPaths(this.hostState(name).dir).upper, "var", "lib", "cloud", "instances");
        try {
            return fs.readdirSync(instances).some((id) => fs.existsSync(path.join(instances, id, "boot-finished")));
        } catch {
            return false;
        }
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
        // powered off (CloudPair.powerOff): its NIC carries frames again
        for (const veth of [host.privateVeth, host.publicVeth]) if (veth && linkExists(veth)) await run(["ip", "link", "set", veth, "up"]);
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
        await applyFabric(this.state);
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
     * IP; works while the host runs. Replaces an earlier public address. Real OpenStack NATs every
     * floating IP in the router and the VM never sees it; this local model for an instance's port
     * differs on purpose (single-LB stacks, bench and e2e rely on it). A port without an instance
     * (a VIP port) is NATed as on OpenStack: CloudPair.natFloatingIp, local/routerNat.ts.
     */
    async attachPublicIp(name: string, ip: string): Promise<HostInfo> {
        const host = this.hostState(name);
        const s = this.state;
        const pub = cloudCidr(s.publicCidr);
        // the router's own address and the floating IPs it NATs are not a host's to take
        const taken = [s.rootPublicIp, ...s.clients.map((c) => c.ip), publicPlan(s.publicCidr, s.clients.length).servicesIp, s.routerPublicIp, ...(s.floatingNats ?? []).map((n) => n.publicIp)];
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
        // Neutron's port security holds from the port's first frame (local/fabric.ts)
        await applyFabric(this.state);
    }

    private async launch(name: string, timeoutMs = 120_000): Promise<HostInfo> {
        const supervisor = startSupervisor(this.hostState(name));
        this.update((s) => void (s.hosts[name].supervisor = supervisor));
        await waitForSsh(this.hostState(name), timeoutMs);
        return this.host(name);
    }
}
