/**
 * The private network's switch fabric: what Neutron enforces on a port outside the VM.
 *
 * Port security (Neutron's anti-spoofing, on by default; the `allowed-address-pairs` API
 * extension, docs.openstack.org/neutron "allowed-address-pairs"): a port only lets out IPv4
 * packets whose source is its fixed address or one of its allowed address pairs, and ARP whose
 * sender address is one of those (Neutron does it with iptables/ebtables or OVS flows on the
 * compute node). Here: an nftables `bridge` table in the root namespace, matching each host's
 * root-side veth on the private bridge, so a host can no more spoof an address than a VM can.
 * Without the pair entry, keepalived on a host adds the VIP to eth0 but neither its gratuitous
 * ARP nor its replies leave the port: the VIP does not work, as on OpenStack.
 *
 * Not modelled: MAC anti-spoofing (hosts keep their veth's MAC; keepalived without vmac uses
 * it), IPv6 (the private network is IPv4 only), DHCP's 0.0.0.0 source (no DHCP here).
 *
 * Also here, because it is the fabric too: a VRRP cut between two hosts (tests' split brain),
 * dropping only IP protocol 112 between their ports, unicast and VRRP's multicast group.
 */
import { run } from "./exec";
import { cloudNames } from "./names";
import type { CloudState } from "./cloudState";

export interface FabricPort {
    /** Root-side veth of the host's private interface. */
    veth: string;
    /** The fixed address and the allowed address pairs (addresses or CIDRs). */
    allowed: string[];
}

export interface FabricCut {
    /** The two hosts' root-side veths and fixed addresses. */
    a: { veth: string; ip: string };
    b: { veth: string; ip: string };
}

/** VRRP's IP protocol number (RFC 5798) and multicast group. */
export const VRRP_PROTOCOL = 112;
const VRRP_GROUP = "224.0.0.18";

/** The whole fabric table (replaced atomically by `nft -f`). */
export function renderFabric(table: string, ports: FabricPort[], cuts: FabricCut[]): string {
    const lines: string[] = [];
    for (const p of ports) {
        const set = `{ ${[...new Set(p.allowed)].join(", ")} }`;
        lines.push(`iifname "${p.veth}" ether type arp arp saddr ip != ${set} counter drop`);
        lines.push(`iifname "${p.veth}" ether type ip ip saddr != ${set} counter drop`);
    }
    for (const c of cuts) {
        for (const [from, to] of [[c.a, c.b], [c.b, c.a]]) {
            lines.push(`iifname "${from.veth}" ip protocol ${VRRP_PROTOCOL} ip daddr { ${to.ip}, ${VRRP_GROUP} } counter drop`);
        }
    }
    return [
        `add table bridge ${table}`,
        `delete table bridge ${table}`,
        `table bridge ${table} {`,
        `  chain ports {`,
        `    type filter hook prerouting priority 0; policy accept;`,
        ...lines.map(l => `    ${l}`),
        `  }`,
        `}`,
        ``,
    ].join("\n");
}

/** The fabric of a cloud's state: every host's port, and the VRRP cuts between hosts. */
export function fabricOf(s: CloudState): { table: string; ports: FabricPort[]; cuts: FabricCut[] } {
    const hosts = Object.values(s.hosts);
    const end = (name: string) => {
        const h = s.hosts[name];
        return h && { veth: h.privateVeth, ip: h.privateIp };
    };
    const cuts = (s.vrrpCuts ?? []).map(([a, b]) => ({ a: end(a), b: end(b) })).filter((c): c is FabricCut => !!c.a && !!c.b);
    return {
        table: cloudNames(s.prefix).fabricTable,
        ports: hosts.map(h => ({ veth: h.privateVeth, allowed: [h.privateIp, ...(h.allowedAddressPairs ?? [])] })),
        cuts,
    };
}

/** Applies the cloud's fabric (root namespace). */
export async function applyFabric(s: CloudState): Promise<void> {
    const f = fabricOf(s);
    await run(["nft", "-f", "-"], { input: renderFabric(f.table, f.ports, f.cuts) });
}

/** Removes the cloud's fabric table (teardown; fine if it is gone). */
export async function removeFabric(prefix: string): Promise<void> {
    await run(["nft", "delete", "table", "bridge", cloudNames(prefix).fabricTable], { allowFailure: true });
}
