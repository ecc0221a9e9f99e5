/**
 * Security groups, enforced on local hosts: OpenStack applies a port's
 * groups as a stateful firewall; here the same rules become an nftables
 * ruleset in the host's network namespace. Ingress not admitted by a rule is
 * dropped; egress is open (OpenStack's default egress rules).
 *
 * A rule's protocol is a name or a number, as Neutron accepts them (local/neutron.ts): VRRP
 * (keepalived, IP protocol 112) reaches a host only through a rule for "vrrp" or "112". As on
 * OpenStack the groups are stateful: once both hosts of a pair send VRRP to each other (two
 * masters), each one's adverts are the reply of a tracked flow and pass without the rule.
 * Not modelled: Neutron deletes the conntrack entries a removed rule admitted; here they live
 * on until they time out (600 s for VRRP, kept alive by the adverts themselves).
 */
import { protocolNumber } from "./neutron";

export interface SecurityRule {
    direction: string;
    ethertype: string;
    protocol?: string;
    portRangeMin?: number;
    portRangeMax?: number;
    remoteIpPrefix?: string;
    /** Resolved by the caller to the addresses of the group's ports. */
    remoteAddresses?: string[];
}

const TABLE = "pycluster_sg";

/** The nftables ruleset for one host; replaces any earlier one atomically (nft -f). */
export function renderHostFirewall(rules: SecurityRule[]): string {
    const lines: string[] = [];
    for (const r of rules) {
        if (r.direction !== "ingress" || r.ethertype !== "IPv4") continue;
        const sources = r.remoteIpPrefix ? [r.remoteIpPrefix] : r.remoteAddresses ?? [];
        // A group rule whose group has no ports yet admits nobody; a rule with no source at all admits anyone.
        if (!r.remoteIpPrefix && r.remoteAddresses && sources.length === 0) continue;
        const from = sources.length === 0 || sources.includes("0.0.0.0/0") ? "" : ` ip saddr { ${sources.join(", ")} }`;
        const proto = protocolNumber(r.protocol);
        if (proto === 6 || proto === 17) {
            const name = proto === 6 ? "tcp" : "udp";
            const ports = r.portRangeMin === undefined ? "" : ` ${name} dport ${r.portRangeMin === r.portRangeMax || r.portRangeMax === undefined ? r.portRangeMin : `${r.portRangeMin}-${r.portRangeMax}`}`;
            lines.push(`meta l4proto ${name}${from}${ports} accept`);
        } else if (proto === 1) {
            lines.push(`meta l4proto icmp${from} accept`);
        } else if (proto === undefined || proto === 0) {
            lines.push(`meta nfproto ipv4${from} accept`);
        } else {
            lines.push(`meta l4proto ${proto}${from} accept`);
        }
    }
    return [
        `add table inet ${TABLE}`,
        `delete table inet ${TABLE}`,
        `table inet ${TABLE} {`,
        `  chain input {`,
        `    type filter hook input priority 0; policy drop;`,
        `    iif lo accept`,
        `    ct state established,related accept`,
        `    ct state invalid drop`,
        ...lines.map(l => `    ${l}`),
        `  }`,
        `}`,
        ``,
    ].join("\n");
}
