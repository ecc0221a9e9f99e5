/**
 * What Neutron (OpenStack networking, behind OVH's API) accepts, for the two
 * fake clouds (the unit-test harness and the local engine): a value it would
 * answer 400 or 409 to fails here too, in the middle of the run, as it does
 * in a real `up`.
 *
 * Modelled (neutron-lib `api/validators.py`, Neutron's security group db):
 * - a CIDR (subnet, remote_ip_prefix) must parse without whitespace, carry a
 *   prefix length, and for IPv4 print back exactly as written: "172.0.0.0/08"
 *   is refused with "isn't a recognized IP subnet cidr, '172.0.0.0/8' is
 *   recommended"; a leading space with "is not a valid IP subnet";
 * - addresses (fixed IPs, DNS servers, pools) are dotted quads without leading
 *   zeros; DNS servers may not repeat ("Duplicate nameserver");
 * - two security-group rules that differ only in their description are the
 *   same rule: the second is refused with 409 SecurityGroupRuleExists. Pulumi
 *   replaces a changed rule by creating the new one before deleting the old
 *   one unless deleteBeforeReplace is set, so that counts too;
 * - a rule's protocol is a name Neutron knows (IP_PROTOCOL_MAP: "tcp", "vrrp"...)
 *   or a number 0-255; a name and its number are the same rule;
 * - a port's allowed_address_pairs (the allowed-address-pairs extension): each
 *   ip_address an address or a canonical CIDR, no pair twice, and only on a
 *   port with port security (409 AddressPairAndPortSecurityRequired).
 */
import { formatIpv4, parseIpv4 } from "../lib/ipv4";

export class NeutronError extends Error {
    constructor(
        readonly status: 400 | 404 | 409,
        message: string,
    ) {
        super(`Neutron ${status}: ${message}`);
        this.name = "NeutronError";
    }
}

/** neutron-lib's validate_subnet for IPv4: undefined when accepted, else its message. */
export function subnetProblem(data: unknown): string | undefined {
    if (typeof data !== "string") return `'${String(data)}' is not a valid IP subnet`;
    if (/\s/.test(data)) return `'${data}' is not a valid IP subnet`;
    const m = /^([^/]+)(?:\/(\d+))?$/.exec(data);
    const address = m ? parseIpv4(m[1]) : undefined;
    if (!m || address === undefined || (m[2] !== undefined && Number(m[2]) > 32)) return `'${data}' is not a valid IP subnet`;
    const prefix = m[2] === undefined ? 32 : Number(m[2]);
    const canonical = `${formatIpv4(address)}/${prefix}`;
    if (m[2] === undefined || canonical !== data) {
        const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
        return `'${data}' isn't a recognized IP subnet cidr, '${formatIpv4((address & mask) >>> 0)}/${prefix}' is recommended`;
    }
    return undefined;
}

/** neutron-lib's validate_ip_address for IPv4. */
export function addressProblem(data: unknown): string | undefined {
    return typeof data === "string" && !/\s/.test(data) && parseIpv4(data) !== undefined && formatIpv4(parseIpv4(data)!) === data
        ? undefined
        : `'${String(data)}' is not a valid IP address`;
}

/** neutron-lib's IP_PROTOCOL_MAP: the protocol names a security group rule accepts, and their numbers. */
export const IP_PROTOCOLS: Readonly<Record<string, number>> = {
    ah: 51, dccp: 33, egp: 8, esp: 50, gre: 47, hopopt: 0, icmp: 1, igmp: 2, ip: 0, ipip: 4, "ipv6-encap": 41,
    "ipv6-frag": 44, "ipv6-icmp": 58, icmpv6: 58, "ipv6-nonxt": 59, "ipv6-opts": 60, "ipv6-route": 43,
    ospf: 89, pgm: 113, rsvp: 46, sctp: 132, tcp: 6, udp: 17, udplite: 136, vrrp: 112,
};

/** A rule's protocol as its IP protocol number; undefined for "any" or none; throws Neutron's 400 for others. */
export function protocolNumber(protocol: unknown): number | undefined {
    if (protocol === undefined || protocol === null || protocol === "" || protocol === "any") return undefined;
    const p = String(protocol).toLowerCase();
    if (p in IP_PROTOCOLS) return IP_PROTOCOLS[p];
    if (/^\d{1,3}$/.test(p) && Number(p) <= 255) return Number(p);
    throw new NeutronError(
        400,
        `Security group rule protocol ${String(protocol)} not supported. Only protocol values [${Object.keys(IP_PROTOCOLS).join(", ")}] and integer representations [0 to 255] are supported.`,
    );
}

/** allowed_address_pairs of a port, as Neutron's extension checks them. */
function checkAddressPairs(name: string, inputs: Record<string, any>): void {
    const pairs: { ipAddress?: string; macAddress?: string }[] = inputs.allowedAddressPairs ?? [];
    if (pairs.length === 0) return;
    if (inputs.portSecurityEnabled === false) {
        throw new NeutronError(409, `Port Security must be enabled in order to have allowed address pairs on a port. (port ${name})`);
    }
    const seen = new Set<string>();
    for (const p of pairs) {
        const bad = typeof p.ipAddress === "string" && p.ipAddress.includes("/") ? subnetProblem(p.ipAddress) : addressProblem(p.ipAddress);
        if (bad) throw new NeutronError(400, `Invalid input for allowed_address_pairs of port ${name}: ${bad}`);
        const key = `${p.macAddress ?? ""} ${p.ipAddress}`;
        if (seen.has(key)) throw new NeutronError(400, `Request contains duplicate address pair: mac_address ${p.macAddress ?? "None"} ip_address ${p.ipAddress}. (port ${name})`);
        seen.add(key);
    }
}

interface RuleRecord {
    name: string;
    key: string;
}

/** The identity Neutron compares rules by: everything but the id and the description. */
function ruleKey(i: Record<string, any>): string {
    return JSON.stringify([
        i.securityGroupId,
        i.direction,
        i.ethertype ?? "IPv4",
        protocolNumber(i.protocol) ?? null,
        i.portRangeMin ?? null,
        i.portRangeMax ?? null,
        i.remoteIpPrefix ?? null,
        i.remoteGroupId ?? null,
    ]);
}

/** One project's networking API, as strict as Neutron about what it is sent. */
export class FakeNeutron {
    private readonly rules = new Map<string, RuleRecord>();

    /**
     * Checks a resource the program registers; throws NeutronError as the API would answer.
     * `replacing`: the resource exists and is being replaced (create-before-delete unless `deleteBeforeReplace`).
     */
    check(type: string, name: string, inputs: Record<string, any>, o: { replacing?: boolean; deleteBeforeReplace?: boolean } = {}): void {
        switch (type) {
            case "ovh:CloudProject/networkPrivateSubnetV2:NetworkPrivateSubnetV2": {
                const bad =
                    subnetProblem(inputs.cidr) ??
                    [inputs.gatewayIp, ...(inputs.allocationPools ?? []).flatMap((p: any) => [p.start, p.end])].filter(a => a !== undefined).map(addressProblem).find(Boolean) ??
                    (inputs.dnsNameservers ?? []).map((ns: string) => addressProblem(ns)?.replace("IP address", "nameserver")).find(Boolean);
                if (bad) throw new NeutronError(400, `Invalid input for subnet ${name}: ${bad}`);
                const ns: string[] = inputs.dnsNameservers ?? [];
                const dup = ns.find((n, i) => ns.indexOf(n) !== i);
                if (dup) throw new NeutronError(400, `Invalid input for subnet ${name}: Duplicate nameserver '${dup}'`);
                return;
            }
            case "openstack:networking/port:Port": {
                for (const f of inputs.fixedIps ?? []) {
                    const bad = f.ipAddress === undefined ? undefined : addressProblem(f.ipAddress);
                    if (bad) throw new NeutronError(400, `Invalid input for port ${name}: ${bad}`);
                }
                checkAddressPairs(name, inputs);
                return;
            }
            case "openstack:networking/secGroupRule:SecGroupRule": {
                if (inputs.remoteIpPrefix !== undefined) {
                    const bad = subnetProblem(inputs.remoteIpPrefix);
                    if (bad) throw new NeutronError(400, `Invalid input for remote_ip_prefix of rule ${name}: ${bad}`);
                }
                protocolNumber(inputs.protocol);
                const key = ruleKey(inputs);
                const previous = this.rules.get(name);
                // The old rule is still there while its replacement is created, unless deleted first.
                const keepOld = previous && o.replacing && !o.deleteBeforeReplace;
                for (const [other, r] of this.rules) {
                    if (r.key !== key) continue;
                    if (other === name && !keepOld) continue;
                    throw new NeutronError(409, `SecurityGroupRuleExists: Security group rule already exists (as ${r.name}); rule ${name} duplicates it`);
                }
                this.rules.set(name, { name, key });
                return;
            }
        }
    }

    /** The rule `name` was deleted. */
    forget(name: string): void {
        this.rules.delete(name);
    }
}
