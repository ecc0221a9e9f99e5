/**
 * Creating a local cloud: the checks before anything exists, its first state, its networks (the two
 * bridges, the gateway's and the clients' namespaces), the apt repository behind the gateway and
 * the internet's services. LocalCloud.create runs them in this order.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { sleep } from "./exec";
import { overlaps } from "../lib/ipv4";
import { CloudNames, cloudNames, privatePlan, publicPlan } from "./names";
import { addVeth, blockFromRoot, canConnect, ensureBridge, ensureNetns, overlappingRoutes } from "./network";
import { isRunning } from "./procs";
import { Rootfs } from "./rootfs";
import { startInternet } from "./internet";
import { CloudState, stateFile } from "./cloudState";
import { closeGateway, startRepoServer } from "./cloudGateway";
import { destroyCloud, leftoversOf } from "./cloudTeardown";

export const DEFAULT_PUBLIC_CIDR = "198.51.100.0/24";

export interface CloudOptions {
    /** Short name (1-8 lowercase letters/digits) that prefixes every object of the cloud. */
    prefix: string;
    /** Private subnet, e.g. 10.77.0.0/24; its first address is the gateway. */
    privateCidr: string;
    /** Public network ("the internet"), default 198.51.100.0/24; the root namespace takes its first address. */
    publicCidr?: string;
    /** Number of internet client namespaces (default 1); the first is `publicNetns`. */
    clients?: number;
    /** Root filesystem to boot (from ensureRootfs); built/fetched from the default cache if omitted. */
    rootfs?: Rootfs;
    /** Parent of the cloud's state directory (default /var/lib/pycluster-local). */
    stateRoot?: string;
    /** Destroy an existing cloud of the same prefix first, instead of failing. */
    replaceExisting?: boolean;
    /** Run the internet's DNS (authoritative for these zones) and ACME CA (local/internet.ts). */
    internet?: { zones: string[] };
    log?: (line: string) => void;
}

type PrivatePlan = ReturnType<typeof privatePlan>;
type PublicPlan = ReturnType<typeof publicPlan>;
/** A change to the state file, made under its lock (LocalCloud's update). */
type Update = (change: (s: CloudState) => void) => void;

/**
 * Refuses ranges that overlap each other or routes already on this machine, and an existing cloud
 * of the same prefix unless `replaceExisting` (then it is destroyed first).
 */
export async function clearTheWay(options: CloudOptions, priv: PrivatePlan, pub: PublicPlan, stateDir: string): Promise<void> {
    if (overlaps(priv.cidr, pub.cidr)) {
        throw new Error(`privateCidr ${priv.cidr.text} and publicCidr ${pub.cidr.text} overlap: use disjoint networks`);
    }
    const existing = leftoversOf(options.prefix, options.stateRoot);
    if (fs.existsSync(stateFile(stateDir)) || Object.values(existing).some((v: unknown[]) => v.length > 0)) {
        if (!options.replaceExisting) {
            throw new Error(`a local cloud "${options.prefix}" already exists (${stateDir}): destroyCloud("${options.prefix}") first, or pass replaceExisting`);
        }
        await destroyCloud(options.prefix, { stateRoot: options.stateRoot });
    }
    // another cloud (or this machine's own network) using either range would break routing
    for (const [what, cidr] of [["privateCidr", priv.cidr], ["publicCidr", pub.cidr]] as const) {
        const clash = await overlappingRoutes(cidr);
        if (clash.length > 0) {
            throw new Error(`${what} ${cidr.text} of local cloud "${options.prefix}" overlaps routes already on this machine (${clash.join("; ")}): choose another range`);
        }
    }
}

/** The state of a new cloud before anything of it exists. */
export function initialState(options: CloudOptions, stateDir: string, priv: PrivatePlan, pub: PublicPlan, rootfs: Rootfs): CloudState {
    const names = cloudNames(options.prefix);
    return {
        version: 1,
        prefix: options.prefix,
        stateDir,
        privateCidr: priv.cidr.text,
        gatewayIp: priv.gatewayIp,
        publicCidr: pub.cidr.text,
        rootPublicIp: pub.rootIp,
        clients: pub.clientIps.map((ip, i) => ({ netns: names.clientNetns(i + 1), ip, veth: names.clientVeth(i + 1) })),
        rootDir: rootfs.rootDir,
        repoDir: rootfs.repoDir,
        privateBlocked: false,
        gatewayOpen: false,
        reservedPublicIps: [],
        hosts: {},
        createdAt: new Date().toISOString(),
    };
}

/** The bridges, the route block, the gateway's namespace (its filter closed) and the clients' namespaces. */
export async function buildNetworks(names: CloudNames, state: CloudState, priv: PrivatePlan, pub: PublicPlan, update: Update): Promise<void> {
    await ensureBridge(names.privateBridge);
    await ensureBridge(names.publicBridge, `${pub.rootIp}/${pub.cidr.prefixLength}`);
    await blockFromRoot(state.privateCidr);
    update((s) => void (s.privateBlocked = true));

    await ensureNetns(names.gatewayNetns);
    await addVeth({ netns: names.gatewayNetns, rootName: names.gatewayVeth, bridge: names.privateBridge, innerName: "eth0", address: `${state.gatewayIp}/${priv.cidr.prefixLength}` });
    for (const c of state.clients) {
        await ensureNetns(c.netns);
        await addVeth({
            netns: c.netns,
            rootName: c.veth,
            bridge: names.publicBridge,
            innerName: "eth0",
            address: `${c.ip}/${pub.cidr.prefixLength}`,
        });
    }
    await closeGateway(names.gatewayNetns);
}

/** Starts the apt repository server behind the gateway address and waits until it answers. */
export async function serveRepository(names: CloudNames, state: CloudState, update: Update): Promise<void> {
    const server = startRepoServer(names, state);
    update((s) => void (s.repoServer = server));
    const deadline = Date.now() + 10_000;
    while (!(await canConnect({ netns: names.gatewayNetns, host: state.gatewayIp, port: 80, timeoutMs: 1000 }))) {
        if (!isRunning(server) || Date.now() > deadline) {
            throw new Error(`the apt repository server did not start; see ${path.join(state.stateDir, "repo-server.log")}`);
        }
        await sleep(100);
    }
}

/** The internet's DNS and ACME CA on the public network (CloudOptions.internet). */
export async function startCloudInternet(prefix: string, zones: string[], names: CloudNames, stateDir: string, pub: PublicPlan, update: Update, log: (line: string) => void): Promise<void> {
    await ensureNetns(names.internetNetns);
    await addVeth({ netns: names.internetNetns, rootName: names.internetVeth, bridge: names.publicBridge, innerName: "eth0", address: `${pub.servicesIp}/${pub.cidr.prefixLength}` });
    await startInternet({
        prefix,
        stateDir,
        netns: names.internetNetns,
        cgroup: names.internetCgroup,
        ip: pub.servicesIp,
        zones,
        onStarted: (internet) => update((s) => void (s.internet = { ...internet })),
    });
    log(`local internet: DNS and ACME CA at ${pub.servicesIp} (zones: ${zones.join(", ") || "none"})`);
}
