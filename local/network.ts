/**
 * Bridges, network namespaces and veth pairs of a local cloud.
 *
 * Every function here is idempotent where teardown needs it (deleting something already gone
 * succeeds), so destroy can run on a half-built cloud.
 */
import * as fs from "node:fs";
import { run, runInNetns } from "./exec";
import { Cidr, overlaps, parseCidr } from "../lib/ipv4";

/** Creates a bridge (if missing), without IPv6, optionally with an IPv4 address in the root namespace. */
export async function ensureBridge(name: string, address?: string): Promise<void> {
    if (!linkExists(name)) {
        await run(["ip", "link", "add", "name", name, "type", "bridge"]);
    }
    // no link-local IPv6 either: the root namespace must have no address at all on a private bridge
    writeProc(`/proc/sys/net/ipv6/conf/${name}/disable_ipv6`, "1");
    if (address) {
        await run(["ip", "addr", "replace", address, "dev", name]);
        // never route between this network and anything else
        writeProc(`/proc/sys/net/ipv4/conf/${name}/forwarding`, "0");
    }
    await run(["ip", "link", "set", name, "up"]);
}

/** Creates a network namespace (if missing) with lo up and IPv4 forwarding off. */
export async function ensureNetns(netns: string): Promise<void> {
    if (!netnsExists(netns)) await run(["ip", "netns", "add", netns]);
    await run(["ip", "-n", netns, "link", "set", "lo", "up"]);
    await runInNetns(netns, ["sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward"]);
}

export interface VethSpec {
    netns: string;
    /** Name of the root-namespace end (plugged into `bridge`). */
    rootName: string;
    bridge: string;
    /** Name of the end inside the namespace, e.g. eth0. */
    innerName: string;
    /** Address with prefix length, e.g. 10.77.0.11/24. */
    address: string;
    /** Default gateway inside the namespace, if any. */
    defaultVia?: string;
}

/** Plugs a namespace into a bridge with a veth pair and configures the inner end. */
export async function addVeth(spec: VethSpec): Promise<void> {
    if (linkExists(spec.rootName)) await run(["ip", "link", "del", spec.rootName]);
    await run(["ip", "link", "add", spec.rootName, "type", "veth", "peer", "name", spec.innerName, "netns", spec.netns]);
    writeProc(`/proc/sys/net/ipv6/conf/${spec.rootName}/disable_ipv6`, "1");
    await run(["ip", "link", "set", spec.rootName, "master", spec.bridge, "up"]);
    await run(["ip", "-n", spec.netns, "addr", "add", spec.address, "dev", spec.innerName]);
    await run(["ip", "-n", spec.netns, "link", "set", spec.innerName, "up"]);
    if (spec.defaultVia) {
        await run(["ip", "-n", spec.netns, "route", "replace", "default", "via", spec.defaultVia]);
    }
}

/** Deletes a link of the root namespace if it exists (deleting one end of a veth deletes both). */
export async function deleteLink(name: string): Promise<void> {
    if (linkExists(name)) await run(["ip", "link", "del", name], { allowFailure: true });
}

/** Deletes a network namespace if it exists. */
export async function deleteNetns(netns: string): Promise<void> {
    if (netnsExists(netns)) await run(["ip", "netns", "del", netns], { allowFailure: true });
}

export function linkExists(name: string): boolean {
    return fs.existsSync(`/sys/class/net/${name}`);
}

export function netnsExists(netns: string): boolean {
    return fs.existsSync(`/run/netns/${netns}`);
}

/** Names of all network namespaces (from /run/netns). */
export function listNetns(): string[] {
    try {
        return fs.readdirSync("/run/netns");
    } catch {
        return [];
    }
}

/** Names of all links of the root namespace. */
export function listLinks(): string[] {
    return fs.readdirSync("/sys/class/net");
}

/**
 * Makes `cidr` unreachable from the root namespace, so nothing there (the deployer) can reach the
 * private network, and no packet for it leaves through the machine's own default route.
 */
export async function blockFromRoot(cidr: string): Promise<void> {
    await run(["ip", "route", "replace", "unreachable", cidr]);
}

export async function unblockFromRoot(cidr: string): Promise<void> {
    await run(["ip", "route", "del", "unreachable", cidr], { allowFailure: true });
}

function writeProc(file: string, value: string): void {
    fs.writeFileSync(file, value);
}

/**
 * Whether a TCP connection to host:port succeeds (and, if `expectBanner`, the server's first line
 * starts with it) from the given network namespace, or from the root namespace when `netns` is
 * undefined.
 */
export async function canConnect(o: { netns?: string; host: string; port: number; timeoutMs?: number; expectBanner?: string }): Promise<boolean> {
    const seconds = Math.max(1, Math.ceil((o.timeoutMs ?? 3000) / 1000));
    let script = `exec 3<>/dev/tcp/${o.host}/${o.port}`;
    if (o.expectBanner) script += ` && read -t ${seconds} -r line <&3 && [[ $line == ${JSON.stringify(o.expectBanner)}* ]]`;
    const argv = ["timeout", String(seconds), "bash", "-c", script];
    const r = o.netns ? await runInNetns(o.netns, argv, { allowFailure: true }) : await run(argv, { allowFailure: true });
    return r.code === 0;
}

/** Routes of the root namespace's main table whose destination overlaps `cidr` (as "dst dev/type"). */
export async function overlappingRoutes(cidr: Cidr): Promise<string[]> {
    const r = await run(["ip", "-j", "-4", "route", "show"]);
    const routes = JSON.parse(r.stdout || "[]") as { dst: string; dev?: string; type?: string }[];
    return routes
        .filter((route) => route.dst !== "default")
        .filter((route) => {
            const dst = parseCidr(route.dst.includes("/") ? route.dst : `${route.dst}/32`, { hostBits: "clear" });
            return dst !== undefined && overlaps(cidr, dst);
        })
        .map((route) => `${route.dst} ${route.dev ?? route.type ?? ""}`.trim());
}
