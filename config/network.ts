/**
 * The stack's private network and who may reach it: the vRack VLAN, the subnet
 * and its address plan (gateway, fixed node addresses, DHCP pool), the DNS
 * resolvers, the gateway's size, and the SSH sources of the load balancer.
 * Every address and CIDR is normalised here once and only the normalised text
 * is used after: Neutron answers 400 to " 203.0.113.10/32" or "172.0.0.0/08"
 * in the middle of an `up`.
 */
import { addressAt, blockSize, Cidr, formatIpv4, isPrivateCidr, overlaps, parseCidr, parseIpv4 } from "../lib/ipv4";
import type { Reader } from "./reader";
import type { NetworkPlan, StackConfig } from "./types";

export interface NetworkShape {
    appNodes: number;
    monitoringNode: boolean;
    /** 2: a pair of load balancers sharing a virtual address (lbCount). */
    lbCount: 1 | 2;
}

/** The network plan, or undefined when the subnet is unusable (the problem is recorded). */
export function readNetwork(r: Reader, shape: NetworkShape): { plan?: NetworkPlan; cidr?: Cidr } {
    const vlanId = r.integer("vlanId", 2, 4000, " (each stack sharing the vRack needs its own)");
    const cidrText = r.string("subnetCidr");
    const cidr = parseCidr(cidrText);
    const dnsNameservers = readResolvers(r);
    const gatewayModel = r.oneOf("gatewayModel", ["s", "m", "l", "xl", "2xl"] as const);
    if (!cidr) {
        r.fail("subnetCidr", cidrText, "must be an IPv4 network in CIDR notation with zero host bits, e.g. 10.10.0.0/24");
        return {};
    }
    if (!isPrivateCidr(cidr)) {
        r.fail("subnetCidr", cidrText, "must be a private (RFC 1918) range: inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16");
        return { cidr };
    }
    // Gateway = .1, fixed node addresses from .2 through the first half, DHCP the second half.
    const size = blockSize(cidr);
    const half = Math.floor(size / 2);
    const fixedRoom = half - 2;
    const pair = shape.lbCount === 2;
    // A pair keeps the top of the fixed range for itself (and the monitoring node's slot, even unused): app nodes grow up to it.
    const needed = shape.lbCount + shape.appNodes + (pair ? 2 : shape.monitoringNode ? 1 : 0);
    if (cidr.prefixLength > 29 || fixedRoom < needed) {
        const parts = pair
            ? `2 load balancers + the pair's virtual address + ${shape.appNodes} app nodes + the monitoring node's address, kept free`
            : `1 load balancer + ${shape.appNodes} app nodes${shape.monitoringNode ? " + 1 monitoring node" : ""}`;
        r.fail(
            "subnetCidr",
            cidrText,
            `has room for ${Math.max(0, fixedRoom)} fixed node addresses (the first half after the gateway) but the stack needs ${needed} ` +
                `(${parts}): use a larger subnet, e.g. /24`,
        );
        return { cidr };
    }
    const plan: NetworkPlan = {
        vlanId,
        cidr: cidr.text,
        prefixLength: cidr.prefixLength,
        gatewayIp: addressAt(cidr, 1),
        gatewayModel,
        dnsNameservers,
        allocationPool: { start: addressAt(cidr, half), end: addressAt(cidr, size - 2) },
        lbIp: addressAt(cidr, 2),
        appIps: Array.from({ length: shape.appNodes }, (_, i) => addressAt(cidr, 3 + i)),
        // The last fixed address, so scaling the app tier never moves it.
        monitoringIp: shape.monitoringNode ? addressAt(cidr, half - 1) : undefined,
        ...(pair ? { pair: lbPairAddresses(cidr, half) } : {}),
    };
    return { plan, cidr };
}

/**
 * The pair's addresses, fixed at the top of the fixed range just below the monitoring node's slot
 * (half - 1): the virtual address at half - 2, the second LB at half - 3. The first LB keeps .2 and
 * the app nodes keep .3 upwards, so turning the pair on moves no existing node, scaling the app
 * tier never moves the pair, and the DHCP pool (the second half) never hands them out.
 */
function lbPairAddresses(cidr: Cidr, half: number): NonNullable<NetworkPlan["pair"]> {
    return { vip: addressAt(cidr, half - 2), secondLbIp: addressAt(cidr, half - 3) };
}

function readResolvers(r: Reader): string[] {
    const resolvers: string[] = [];
    for (const ns of r.stringArray("dnsNameservers")) {
        const address = parseIpv4(ns);
        if (address === undefined) r.fail("dnsNameservers", ns, "each resolver must be an IPv4 address");
        else if (resolvers.includes(formatIpv4(address))) r.fail("dnsNameservers", ns, "is listed twice (Neutron refuses duplicate resolvers): remove one");
        else resolvers.push(formatIpv4(address));
    }
    return resolvers;
}

/** Where SSH to the load balancer may come from: the admin networks, and the machine running this `up`. */
export function readSshSources(r: Reader, subnet: Cidr | undefined): Pick<StackConfig["ssh"], "adminCidrs" | "deployerCidrs"> {
    const allowSshFromAnywhere = r.boolean("allowSshFromAnywhere");
    const sources = (key: "adminCidrs" | "deployerCidrs", entries: string[]): string[] => {
        const out: string[] = [];
        for (const text of entries) {
            const c = parseCidr(text);
            if (!c) {
                r.fail(key, text, "each entry must be an IPv4 CIDR with zero host bits, e.g. 203.0.113.7/32");
            } else if (c.prefixLength === 0 && !allowSshFromAnywhere) {
                r.fail(key, text, "opens SSH to the whole internet: list your own addresses, or set allowSshFromAnywhere to true to accept the risk");
            } else if (subnet && c.prefixLength > 0 && overlaps(c, subnet)) {
                r.fail(key, text, `overlaps subnetCidr ${subnet.text}: admin access comes from outside, through the load balancer's public address`);
            } else if (out.includes(c.text)) {
                r.fail(key, text, `lists ${c.text} twice: each entry becomes a security group rule, and Neutron refuses a duplicate rule; remove one`);
            } else {
                out.push(c.text);
            }
        }
        return out;
    };
    const adminCidrs = sources("adminCidrs", r.stringArray("adminCidrs", "list where SSH to the load balancer may come from, including the machine running `pulumi up` (e.g. [\"203.0.113.7/32\"])"));
    if (adminCidrs.length === 0 && r.problems.every(p => !p.includes(":adminCidrs"))) {
        r.fail("adminCidrs", [], "must list at least one CIDR: the program provisions the hosts over SSH from where `pulumi up` runs");
    }
    // A CI runner's address already admitted needs no rule of its own (a second identical rule would be refused).
    const deployerCidrs = sources("deployerCidrs", r.stringArray("deployerCidrs")).filter(c => !adminCidrs.includes(c));
    return { adminCidrs, deployerCidrs };
}
