/**
 * Names and addresses of a local cloud, as pure functions of its options.
 *
 * Every Linux object a cloud creates is named `<prefix>-...`, and a prefix is letters and digits
 * only, so `<prefix>-` identifies one cloud unambiguously (clouds "pyc" and "pyctest" never
 * match each other's objects) and teardown can find leftovers by name. Interface names are
 * limited to 15 characters by Linux: with a prefix of at most 8 characters and host indexes up to
 * 999, the longest one, `<prefix>-h999p`, has 14.
 */

import { addressAt, blockSize, Cidr, parseCidr } from "../lib/ipv4";

export const MAX_PREFIX_LENGTH = 8;
export const MAX_HOSTS = 999;
export const MAX_CLIENTS = 50;

/** Throws unless `prefix` is 1–8 lowercase letters/digits starting with a letter. */
export function validatePrefix(prefix: string): void {
    if (!/^[a-z][a-z0-9]*$/.test(prefix) || prefix.length > MAX_PREFIX_LENGTH) {
        throw new Error(
            `invalid cloud prefix ${JSON.stringify(prefix)}: use 1-${MAX_PREFIX_LENGTH} lowercase letters or digits, ` +
                `starting with a letter (it goes into 15-character interface names)`,
        );
    }
}

/** Throws unless `name` is a valid hostname label that does not collide with the cloud's own namespaces. */
export function validateHostName(name: string): void {
    if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(name)) {
        throw new Error(`invalid host name ${JSON.stringify(name)}: use a DNS label (a-z, 0-9, '-', at most 63 characters)`);
    }
    if (name === "gw" || name === "inet" || /^c\d+$/.test(name)) {
        throw new Error(`host name ${JSON.stringify(name)} is reserved (the gateway, internet services and client namespaces use it)`);
    }
}

export interface CloudNames {
    privateBridge: string;
    publicBridge: string;
    gatewayNetns: string;
    gatewayVeth: string;
    /** Network namespace of the i-th (1-based) internet client. */
    clientNetns(i: number): string;
    clientVeth(i: number): string;
    hostNetns(name: string): string;
    /** Root-side end of the host's private veth (its eth0). */
    hostPrivateVeth(index: number): string;
    /** Root-side end of the host's public veth (its eth1). */
    hostPublicVeth(index: number): string;
    /** cgroup directory (relative to a hierarchy root) that holds all processes of the cloud. */
    cgroup: string;
    hostCgroup(name: string): string;
    gatewayCgroup: string;
    /** Root-side end of the router's leg on the public network (the gateway namespace's eth1). */
    gatewayPublicVeth: string;
    /** nftables table (bridge family, root namespace) of the private network's port security. */
    fabricTable: string;
    /** The local internet's services (DNS, ACME CA): their namespace, veth and cgroup. */
    internetNetns: string;
    internetVeth: string;
    internetCgroup: string;
}

export function cloudNames(prefix: string): CloudNames {
    validatePrefix(prefix);
    return {
        privateBridge: `${prefix}-prv`,
        publicBridge: `${prefix}-pub`,
        gatewayNetns: `${prefix}-gw`,
        gatewayVeth: `${prefix}-gw`,
        clientNetns: (i) => `${prefix}-c${i}`,
        clientVeth: (i) => `${prefix}-c${i}`,
        hostNetns: (name) => `${prefix}-${name}`,
        hostPrivateVeth: (index) => `${prefix}-h${index}p`,
        hostPublicVeth: (index) => `${prefix}-h${index}u`,
        cgroup: `pycluster-${prefix}`,
        hostCgroup: (name) => `pycluster-${prefix}/host-${name}`,
        gatewayCgroup: `pycluster-${prefix}/gateway`,
        gatewayPublicVeth: `${prefix}-gwu`,
        fabricTable: `pycluster_fabric_${prefix}`,
        internetNetns: `${prefix}-inet`,
        internetVeth: `${prefix}-inet`,
        internetCgroup: `pycluster-${prefix}/internet`,
    };
}

/**
 * A local cloud's network (its private subnet or its "internet"), parsed with lib/ipv4 and held to
 * what a cloud of namespaces can use: a prefix length of 8 to 30. Throws with the reason.
 */
export function cloudCidr(text: string): Cidr {
    const cidr = parseCidr(text, { hostBits: "clear" });
    if (!cidr || cidr.prefixLength < 8 || cidr.prefixLength > 30) {
        throw new Error(`invalid IPv4 CIDR ${JSON.stringify(text)} for a local cloud: expected e.g. 10.77.0.0/24 (prefix length 8-30)`);
    }
    return cidr;
}

/** The `n`-th host address of a network (1 = the first after the network address); throws past the last one. */
export function hostAddress(cidr: Cidr, n: number): string {
    if (n < 1 || n > blockSize(cidr) - 2) throw new Error(`host address #${n} is outside ${cidr.text}`);
    return addressAt(cidr, n);
}

/**
 * Public network plan: the root namespace (the deployer, "the internet") takes the first address,
 * clients the next `clients` ones; floating IPs are handed out from the 10th address up (or after
 * the clients, whichever is later), up to the one before the last: the last usable address is the
 * internet's services (DNS and the ACME CA, local/internet.ts), so a stack file can name it.
 */
export function publicPlan(publicCidr: string, clients: number) {
    const cidr = cloudCidr(publicCidr);
    if (clients < 1 || clients > MAX_CLIENTS) throw new Error(`clients must be 1-${MAX_CLIENTS}, got ${clients}`);
    const lastUsable = blockSize(cidr) - 2;
    return {
        cidr,
        rootIp: hostAddress(cidr, 1),
        clientIps: Array.from({ length: clients }, (_, i) => hostAddress(cidr, 2 + i)),
        firstFloatingIndex: Math.max(10, clients + 2),
        lastFloatingIndex: lastUsable - 1,
        servicesIp: hostAddress(cidr, lastUsable),
    };
}

/** The gateway takes the first address of the private subnet, as on OVH. */
export function privatePlan(privateCidr: string) {
    const cidr = cloudCidr(privateCidr);
    return { cidr, gatewayIp: hostAddress(cidr, 1) };
}

/** A stable UUID for a host (its machine-id), derived from the cloud prefix and host name. */
export function hostUuid(prefix: string, name: string, hash: (s: string) => string): string {
    const h = hash(`${prefix}/${name}`);
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}
