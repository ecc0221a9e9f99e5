/**
 * The router's floating IPs (OVH's Gateway is an OpenStack router): a floating IP associated with
 * a port that no instance uses (a VIP port) is 1:1 NAT in the router, as Neutron's L3 agent does
 * it for every floating IP (Neutron docs, "Networking Option 2: Self-service networks" / L3 agent:
 * the floating IP is an address on the router's gateway interface, DNAT to the fixed address on
 * the way in, SNAT on the way out). The public address lives on the router's leg on the public
 * bridge (the gateway namespace's eth1), DNAT sends it to the VIP's private address, and replies
 * come back through the router (the VIP holder's default route) and are un-NATed by conntrack.
 * Whichever host answers ARP for the VIP on the private bridge gets the traffic.
 *
 * The local model differs for a floating IP on an instance's port: that one becomes eth1 of the
 * host itself (cloudHosts.ts attachPublicIp), so the VM sees its public address, which a real
 * OpenStack VM never does. The single-LB stacks, bench and e2e rely on that; changing it is
 * left for later.
 *
 * Outbound: OVH's Gateway gives the subnet's instances their way out (OpenStack router, SNAT on by
 * default: Neutron's `enable_snat`; OVH docs, "create a private network gateway": private instances
 * reach the internet through it). Here the router gets its leg on the public network, with an
 * address of its own, when the gateway is created, and masquerades the subnet behind that address
 * while the gateway exists: the app nodes and a pair's LBs reach the local internet (its DNS, ACME
 * CA) that way, and a connection from a private node to a public address arrives from the
 * router's address, as on OVH.
 * Nothing else is forwarded: DNATed connections (floating IPs) and SNATed ones, with their replies.
 */
import * as fs from "node:fs";
import { run, runInNetns } from "./exec";

export const ROUTER_NAT_TABLE = "pycluster_fip";

export interface FloatingNat {
    publicIp: string;
    privateIp: string;
}

/**
 * The router's NAT and forward filter for these floating IPs, and the subnet's SNAT while the
 * gateway exists (`snatFrom`: the subnet's CIDR); replaced atomically by `nft -f`.
 */
export function renderRouterNat(nats: FloatingNat[], snatFrom?: string): string {
    return [
        `add table ip ${ROUTER_NAT_TABLE}`,
        `delete table ip ${ROUTER_NAT_TABLE}`,
        `table ip ${ROUTER_NAT_TABLE} {`,
        `  chain prerouting {`,
        `    type nat hook prerouting priority dstnat; policy accept;`,
        ...nats.map(n => `    iifname "eth1" ip daddr ${n.publicIp} dnat to ${n.privateIp}`),
        `  }`,
        ...(snatFrom
            ? [
                  `  chain postrouting {`,
                  `    type nat hook postrouting priority srcnat; policy accept;`,
                  `    oifname "eth1" ip saddr ${snatFrom} masquerade`,
                  `  }`,
              ]
            : []),
        `  chain forward {`,
        `    type filter hook forward priority 0; policy drop;`,
        // a floating IP's connections, both ways
        `    ct status dnat accept`,
        // the subnet's own connections out (SNAT), and their replies; nothing else is routed
        ...(snatFrom ? [`    iifname "eth0" oifname "eth1" ip saddr ${snatFrom} accept`, `    ct status snat accept`] : []),
        `  }`,
        `}`,
        ``,
    ].join("\n");
}

/**
 * Brings the router's NAT up to date: the floating IPs as /32 addresses on eth1 (so the router
 * answers ARP for them on the public bridge), the NAT table, and forwarding on only while there
 * is something to NAT.
 */
export async function applyRouterNat(netns: string, nats: FloatingNat[], snatFrom?: string): Promise<void> {
    const want = new Set(nats.map(n => n.publicIp));
    const have = await hostAddresses(netns, "eth1");
    for (const ip of have.filter(a => a.prefixlen === 32 && !want.has(a.local))) {
        await run(["ip", "-n", netns, "addr", "del", `${ip.local}/32`, "dev", "eth1"]);
    }
    for (const ip of [...want].filter(a => !have.some(h => h.local === a))) {
        await run(["ip", "-n", netns, "addr", "add", `${ip}/32`, "dev", "eth1"]);
    }
    if (nats.length > 0 || snatFrom) {
        await runInNetns(netns, ["nft", "-f", "-"], { input: renderRouterNat(nats, snatFrom) });
        await runInNetns(netns, ["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
    } else {
        await runInNetns(netns, ["sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"]);
        await runInNetns(netns, ["nft", "delete", "table", "ip", ROUTER_NAT_TABLE], { allowFailure: true });
    }
}

/** IPv4 addresses of an interface in a namespace (none if the interface does not exist). */
export async function hostAddresses(netns: string, dev: string): Promise<{ local: string; prefixlen: number }[]> {
    const r = await run(["ip", "-n", netns, "-j", "-4", "addr", "show", "dev", dev], { allowFailure: true });
    if (r.code !== 0) return [];
    const links = JSON.parse(r.stdout || "[]") as { addr_info?: { local: string; prefixlen: number }[] }[];
    return links.flatMap(l => l.addr_info ?? []);
}

/**
 * Connections the NAT can track: conntrack entries are counted per namespace against the
 * machine-wide `net.netfilter.nf_conntrack_max` (writable only in the root namespace). 100,000
 * client connections through the router, plus those in TIME_WAIT (120 s) while new ones keep
 * coming, need far more than the 65,536 some machines default to: raise it to `min` in the root
 * namespace if it is lower. Returns the value before and after.
 */
export function ensureConntrackCapacity(min = 1_048_576, file = "/proc/sys/net/netfilter/nf_conntrack_max"): { before: number; after: number } {
    const before = Number(fs.readFileSync(file, "utf8").trim());
    if (before >= min) return { before, after: before };
    fs.writeFileSync(file, String(min));
    return { before, after: Number(fs.readFileSync(file, "utf8").trim()) };
}
