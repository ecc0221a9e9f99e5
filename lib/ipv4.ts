/**
 * IPv4 addresses and CIDR blocks: the one module the configuration, the local
 * cloud, the Neutron stand-in, the policy pack and the CI scripts share. Pure.
 *
 * Input may carry surrounding white space (parsing trims); output is always the
 * canonical text (formatIpv4, Cidr.text), which is what reaches the cloud.
 */

export interface Cidr {
    /** The network address as a 32-bit unsigned integer. */
    network: number;
    prefixLength: number;
    /** Canonical text: "10.0.0.0/24". */
    text: string;
}

const DOTTED_QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/**
 * Dotted-quad text as a number; undefined when it is not one. Octets with a leading zero are
 * refused: "010.0.0.1" means 8.0.0.1 to some parsers and 10.0.0.1 to others.
 */
export function parseIpv4(text: string): number | undefined {
    const m = DOTTED_QUAD.exec(text.trim());
    if (!m) return undefined;
    const octets = m.slice(1);
    if (octets.some(o => Number(o) > 255 || (o.length > 1 && o.startsWith("0")))) return undefined;
    return octets.reduce((acc, o) => acc * 256 + Number(o), 0);
}

export function formatIpv4(value: number): string {
    return [24, 16, 8, 0].map(shift => Math.floor(value / 2 ** shift) % 256).join(".");
}

function maskOf(prefixLength: number): number {
    return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0;
}

/**
 * "a.b.c.d/n" as a block. Host bits are refused by default ("10.0.0.5/24" usually means the author
 * had another network in mind); `hostBits: "clear"` keeps the network the address belongs to.
 */
export function parseCidr(text: string, o: { hostBits?: "refuse" | "clear" } = {}): Cidr | undefined {
    const parts = text.trim().split("/");
    if (parts.length !== 2 || !/^\d{1,2}$/.test(parts[1])) return undefined;
    const address = parseIpv4(parts[0]);
    const prefixLength = Number(parts[1]);
    if (address === undefined || prefixLength > 32) return undefined;
    const network = (address & maskOf(prefixLength)) >>> 0;
    if (network !== address && o.hostBits !== "clear") return undefined;
    return { network, prefixLength, text: `${formatIpv4(network)}/${prefixLength}` };
}

/** Number of addresses in the block, network and broadcast included. */
export function blockSize(cidr: Cidr): number {
    return 2 ** (32 - cidr.prefixLength);
}

/** The address `offset` addresses into the block (0 = the network address). */
export function addressAt(cidr: Cidr, offset: number): string {
    if (!Number.isInteger(offset) || offset < 0 || offset >= blockSize(cidr)) throw new RangeError(`address #${offset} is outside ${cidr.text}`);
    return formatIpv4(cidr.network + offset);
}

export function containsAddress(cidr: Cidr, address: number): boolean {
    return ((address & maskOf(cidr.prefixLength)) >>> 0) === cidr.network;
}

/** Whether two blocks share any address. */
export function overlaps(a: Cidr, b: Cidr): boolean {
    const shorter = a.prefixLength <= b.prefixLength ? a : b;
    const longer = shorter === a ? b : a;
    return containsAddress(shorter, longer.network);
}

/** A host address of the block: neither its network nor its broadcast address. */
export function isUsableAddress(cidr: Cidr, ip: string): boolean {
    const address = parseIpv4(ip);
    if (address === undefined || !containsAddress(cidr, address)) return false;
    const offset = address - cidr.network;
    return offset >= 1 && offset <= blockSize(cidr) - 2;
}

/** RFC 1918 private ranges: a vRack subnet must sit in one of them. */
const PRIVATE_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"].map(c => parseCidr(c)!);

export function isPrivateCidr(cidr: Cidr): boolean {
    return PRIVATE_RANGES.some(range => range.prefixLength <= cidr.prefixLength && containsAddress(range, cidr.network));
}

/** IPv4 blocks that are never reachable from the internet (private, CGNAT, loopback, link-local, "this network"). */
const NON_PUBLIC = ["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16"].map(c => parseCidr(c)!);

/**
 * True for an address routed on the internet: IPv4 outside the NON_PUBLIC blocks; IPv6 in
 * 2000::/3 (global unicast). Text that is not an address is not public.
 */
export function isPublicAddress(text: string): boolean {
    const v4 = parseIpv4(text);
    if (v4 !== undefined) return !NON_PUBLIC.some(block => containsAddress(block, v4));
    const v6 = text.trim().toLowerCase();
    if (!v6.includes(":") || !/^[0-9a-f:.]+$/.test(v6)) return false;
    const firstGroup = v6.startsWith(":") ? 0 : parseInt(v6.split(":")[0], 16);
    return (firstGroup & 0xe000) === 0x2000;
}

/** A CIDR with prefix length 0 ("0.0.0.0/0", "::/0"): every address. */
export function isEverywhere(cidr: string): boolean {
    const parts = cidr.trim().split("/");
    return parts.length === 2 && parts[1].trim() !== "" && Number(parts[1]) === 0;
}
