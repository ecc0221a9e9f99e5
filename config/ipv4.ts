/**
 * IPv4 and CIDR arithmetic, kept pure so that address planning and validation
 * can be tested without Pulumi.
 */

export interface Cidr {
    /** The network address as a 32-bit unsigned integer. */
    network: number;
    prefixLength: number;
    /** The CIDR as the user wrote it, normalised ("10.0.0.0/24"). */
    text: string;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** Parses dotted-quad IPv4 text; undefined when it is not one. */
export function parseIpv4(text: string): number | undefined {
    const m = IPV4.exec(text.trim());
    if (!m) return undefined;
    const octets = m.slice(1).map(Number);
    if (octets.some((o, i) => o > 255 || (m[i + 1].length > 1 && m[i + 1].startsWith("0")))) return undefined;
    return ((octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]) >>> 0;
}

export function formatIpv4(value: number): string {
    return [24, 16, 8, 0].map(shift => (value >>> shift) & 0xff).join(".");
}

function maskOf(prefixLength: number): number {
    return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
}

/**
 * Parses "a.b.c.d/n". Host bits must be zero: "10.0.0.5/24" is rejected
 * because it usually means the author had a different network in mind.
 */
export function parseCidr(text: string): Cidr | undefined {
    const parts = text.trim().split("/");
    if (parts.length !== 2 || !/^\d{1,2}$/.test(parts[1])) return undefined;
    const address = parseIpv4(parts[0]);
    const prefixLength = Number(parts[1]);
    if (address === undefined || prefixLength > 32) return undefined;
    if ((address & ~maskOf(prefixLength)) >>> 0 !== 0) return undefined;
    return { network: address, prefixLength, text: `${formatIpv4(address)}/${prefixLength}` };
}

/** Number of addresses in the block, network and broadcast included. */
export function blockSize(cidr: Cidr): number {
    return 2 ** (32 - cidr.prefixLength);
}

/** The n-th address of the block (0 = network address). */
export function nthAddress(cidr: Cidr, n: number): string {
    if (n < 0 || n >= blockSize(cidr)) throw new RangeError(`address #${n} is outside ${cidr.text}`);
    return formatIpv4((cidr.network + n) >>> 0);
}

export function containsAddress(cidr: Cidr, address: number): boolean {
    return ((address & maskOf(cidr.prefixLength)) >>> 0) === cidr.network;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
    const shorter = a.prefixLength <= b.prefixLength ? a : b;
    const longer = shorter === a ? b : a;
    return containsAddress(shorter, longer.network);
}

/** RFC 1918 private ranges: the subnet of a vRack network must sit in one of them. */
const PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"].map(c => parseCidr(c)!);

export function isPrivateCidr(cidr: Cidr): boolean {
    return PRIVATE_RANGES.some(range => range.prefixLength <= cidr.prefixLength && containsAddress(range, cidr.network));
}
