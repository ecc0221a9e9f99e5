/**
 * What a pair of hosts sharing a virtual IP needs of the local cloud, and the failures tests
 * inflict on them: allowed address pairs (Neutron port security, local/fabric.ts), a floating
 * IP NATed by the router to a VIP port's address (local/routerNat.ts), hosts powered off and on
 * as by a dying hypervisor, VRRP cut between two hosts, and who answers ARP for an address.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { run, RunResult, runInNetns } from "./exec";
import { cloudCidr } from "./names";
import { addVeth, linkExists } from "./network";
import { addressProblem, NeutronError, subnetProblem } from "./neutron";
import { initPid } from "./host";
import { applyFabric } from "./fabric";
import { applyRouterNat, ensureConntrackCapacity, hostAddresses } from "./routerNat";
import { CloudHosts } from "./cloudHosts";

export class CloudPair extends CloudHosts {
    /**
     * Sets the allowed address pairs of the host's port (Neutron: `allowed_address_pairs`, each an
     * address or a canonical CIDR): from now on its port also lets out IPv4 and ARP from these.
     * `[]` leaves the fixed address only, the default of every port.
     */
    async setAllowedAddressPairs(name: string, pairs: string[]): Promise<void> {
        for (const p of pairs) {
            const bad = p.includes("/") ? subnetProblem(p) : addressProblem(p);
            if (bad) throw new NeutronError(400, `Invalid input for allowed_address_pairs of the port of host ${name}: ${bad}`);
        }
        this.hostState(name);
        this.update((s) => void (s.hosts[name].allowedAddressPairs = [...pairs]));
        await applyFabric(this.state);
    }

    /** The allowed address pairs of the host's port. */
    allowedAddressPairs(name: string): string[] {
        return [...(this.hostState(name).allowedAddressPairs ?? [])];
    }

    /**
     * Associates a floating IP (from allocatePublicIp) with a private address no instance owns (a
     * VIP port's): the router NATs it 1:1 (routerNat.ts). Only once the gateway exists, as Neutron
     * needs a router on the subnet. Raises the machine's conntrack limit if it is too low for
     * 100,000 connections and returns it (before/after) for the caller to print.
     */
    async natFloatingIp(publicIp: string, privateIp: string): Promise<{ conntrackMax: { before: number; after: number } }> {
        const s = this.state;
        if (!this.state.gatewayOpen) throw new Error(`local cloud ${this.prefix}: no router yet (the gateway does not exist), cannot NAT floating IP ${publicIp}`);
        if (Object.values(s.hosts).some((h) => h.publicIp === publicIp)) throw new Error(`floating IP ${publicIp} is a host's public address already`);
        const conntrackMax = ensureConntrackCapacity();
        await this.ensureRouterLeg();
        this.update((st) => {
            st.floatingNats = [...(st.floatingNats ?? []).filter((n) => n.publicIp !== publicIp), { publicIp, privateIp }];
            if (!st.reservedPublicIps.includes(publicIp)) st.reservedPublicIps.push(publicIp);
        });
        await this.applyRouter();
        return { conntrackMax };
    }

    /** Ends the router's NAT of a floating IP (its association is gone); the address stays reserved. */
    async releaseFloatingNat(publicIp: string): Promise<void> {
        if (!this.floatingNats().some((n) => n.publicIp === publicIp)) return;
        this.update((s) => void (s.floatingNats = (s.floatingNats ?? []).filter((n) => n.publicIp !== publicIp)));
        await this.applyRouter();
    }

    /** The floating IPs the router NATs, and to which private address. */
    floatingNats(): { publicIp: string; privateIp: string }[] {
        return [...(this.state.floatingNats ?? [])];
    }

    /** The router's address on the public network (once it NATs a floating IP). */
    get routerPublicIp(): string | undefined {
        return this.state.routerPublicIp;
    }

    /**
     * Powers a host off as a dying hypervisor would: every process killed at once (no shutdown),
     * its NIC silent (the port stays, as a Neutron port of a dead VM does), and what its OS had
     * configured at run time (keepalived's VIP on eth0) gone with it. Unlike killHost, which only
     * kills the processes and leaves the namespace's addresses answering.
     */
    async powerOff(name: string): Promise<void> {
        const host = this.hostState(name);
        // NIC first: once its processes are gone, the namespace's kernel would still answer (ARP, RSTs)
        for (const veth of [host.privateVeth, host.publicVeth]) {
            if (veth && linkExists(veth)) await run(["ip", "link", "set", veth, "down"]);
        }
        await this.killHost(name);
        for (const a of await hostAddresses(host.netns, "eth0")) {
            if (a.local !== host.privateIp) await run(["ip", "-n", host.netns, "addr", "del", `${a.local}/${a.prefixlen}`, "dev", "eth0"]);
        }
    }

    /** Powers a host on again: it boots from its disk with the same addresses (startHost). */
    powerOn(name: string, timeoutMs?: number) {
        return this.startHost(name, timeoutMs);
    }

    /** Cuts VRRP (only IP protocol 112) between two hosts' ports, both ways: a split brain. */
    async cutVrrp(a: string, b: string): Promise<void> {
        this.hostState(a);
        this.hostState(b);
        this.update((s) => void (s.vrrpCuts = [...(s.vrrpCuts ?? []).filter((c) => !samePair(c, a, b)), [a, b]]));
        await applyFabric(this.state);
    }

    /** Restores VRRP between two hosts. */
    async restoreVrrp(a: string, b: string): Promise<void> {
        this.update((s) => void (s.vrrpCuts = (s.vrrpCuts ?? []).filter((c) => !samePair(c, a, b))));
        await applyFabric(this.state);
    }

    /**
     * The hosts that answer ARP for `address` on the private network right now, asked from the
     * router (as `arping` there would): none, one, or two in a split brain. A MAC of no host
     * shows as "unknown <mac>".
     */
    async whoAnswers(address: string, waitMs = 500): Promise<string[]> {
        const s = this.state;
        if (addressProblem(address)) throw new Error(`not an address: ${address}`);
        const python = fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
        const probe = [python, path.join(__dirname, "arpProbe.py"), "eth0", s.gatewayIp, address, String(waitMs)];
        const macs = (await runInNetns(this.names.gatewayNetns, probe)).stdout.split("\n").filter(Boolean);
        const owners = new Map<string, string>();
        for (const h of Object.values(s.hosts)) {
            const r = await run(["ip", "-n", h.netns, "-j", "link", "show", "dev", "eth0"], { allowFailure: true });
            const mac = r.code === 0 ? (JSON.parse(r.stdout)[0]?.address as string | undefined) : undefined;
            if (mac) owners.set(mac, h.name);
        }
        return macs.map((m) => owners.get(m) ?? `unknown ${m}`);
    }

    /**
     * Runs a shell script as root inside a running host, from outside (as a cloud's console
     * would), without SSH: for tests that set hosts up by hand.
     */
    async consoleRun(name: string, script: string, input?: string): Promise<RunResult> {
        const pid = initPid(this.hostState(name));
        if (pid === undefined) throw new Error(`host ${name} is not running`);
        return run(["nsenter", `--target=${pid}`, "--mount", "--uts", "--ipc", "--net", "--pid", "--", "/bin/sh", "-c", script], { allowFailure: true, input });
    }

    /**
     * The router's NAT as the state says: the floating IPs, and the subnet's SNAT while the gateway
     * exists (routerNat.ts). Nothing to do before the router has its public leg (the gateway's
     * creation or a floating IP on a VIP port gives it one).
     */
    protected async applyRouter(): Promise<void> {
        if (!this.state.routerPublicIp) return;
        const snatFrom = this.state.gatewayOpen ? this.state.privateCidr : undefined;
        await applyRouterNat(this.names.gatewayNetns, this.floatingNats(), snatFrom);
    }

    /** The router's leg on the public network (gateway namespace's eth1), with an address of its own. */
    protected async ensureRouterLeg(): Promise<void> {
        if (!this.state.routerPublicIp) {
            const ip = this.allocatePublicIp();
            this.update((s) => void (s.routerPublicIp = ip));
        }
        if (linkExists(this.names.gatewayPublicVeth)) return;
        const s = this.state;
        await addVeth({
            netns: this.names.gatewayNetns,
            rootName: this.names.gatewayPublicVeth,
            bridge: this.names.publicBridge,
            innerName: "eth1",
            address: `${s.routerPublicIp}/${cloudCidr(s.publicCidr).prefixLength}`,
        });
    }
}

const samePair = (c: [string, string], a: string, b: string) => (c[0] === a && c[1] === b) || (c[0] === b && c[1] === a);
