/**
 * The local cloud's state file (`<stateRoot>/<prefix>/state.json`): what it records, how it is read
 * and written (atomically, under a lock file shared between processes), and the view of it every
 * part of LocalCloud builds on.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { HostState, hostPaths } from "./host";
import { cloudNames, CloudNames } from "./names";
import { isRunning, ProcessRef } from "./procs";
import { InternetState } from "./internet";

export const DEFAULT_STATE_ROOT = "/var/lib/pycluster-local";

export interface CloudState {
    version: 1;
    prefix: string;
    stateDir: string;
    privateCidr: string;
    gatewayIp: string;
    publicCidr: string;
    rootPublicIp: string;
    clients: { netns: string; ip: string; veth: string }[];
    rootDir: string;
    repoDir: string;
    privateBlocked: boolean;
    /**
     * Whether the private network's gateway exists yet (the program's Gateway resource): until
     * then nothing on the subnet reaches past it, not even the apt repository it serves.
     */
    gatewayOpen?: boolean;
    repoServer?: ProcessRef;
    reservedPublicIps: string[];
    /** The router's own address on the public network, once it NATs a floating IP (local/routerNat.ts). */
    routerPublicIp?: string;
    /** Floating IPs of ports without an instance (VIP ports): 1:1 NAT in the router. */
    floatingNats?: { publicIp: string; privateIp: string }[];
    /** Pairs of hosts between which VRRP is cut (split brain in tests: local/fabric.ts). */
    vrrpCuts?: [string, string][];
    /** DNS and ACME services on the public network (CloudOptions.internet). */
    internet?: InternetState;
    hosts: Record<string, HostState>;
    createdAt: string;
}

/** What callers see of a host. */
export interface HostInfo {
    name: string;
    privateIp: string;
    publicIp?: string;
    netns: string;
    running: boolean;
    /** The host's console output (all boots). */
    consoleLog: string;
    /** The host's writable layer (its "disk"). */
    diskDir: string;
}

export function stateDirOf(prefix: string, stateRoot = DEFAULT_STATE_ROOT): string {
    return path.join(stateRoot, prefix);
}

export function stateFile(stateDir: string): string {
    return path.join(stateDir, "state.json");
}

export function readState(stateDir: string): CloudState | undefined {
    try {
        return JSON.parse(fs.readFileSync(stateFile(stateDir), "utf8")) as CloudState;
    } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw err;
    }
}

export function writeState(state: CloudState): void {
    const file = stateFile(state.stateDir);
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2));
    fs.renameSync(`${file}.tmp`, file);
}

/** What LocalCloud knows of itself: its names and its state file, read and changed under the lock. */
export class CloudStore {
    readonly names: CloudNames;

    protected constructor(
        readonly prefix: string,
        readonly stateDir: string,
    ) {
        this.names = cloudNames(prefix);
    }

    /** The current state, as recorded on disk. */
    get state(): CloudState {
        const s = readState(this.stateDir);
        if (!s) throw new Error(`local cloud "${this.prefix}" is gone (no ${stateFile(this.stateDir)})`);
        return s;
    }

    get gatewayIp(): string {
        return this.state.gatewayIp;
    }

    /** Address of the root namespace (the deployer) on the public network. */
    get rootPublicIp(): string {
        return this.state.rootPublicIp;
    }

    /** Network namespace of the first internet client. */
    get publicNetns(): string {
        return this.state.clients[0].netns;
    }

    get clients(): { netns: string; ip: string }[] {
        return this.state.clients.map(({ netns, ip }) => ({ netns, ip }));
    }

    host(name: string): HostInfo {
        const h = this.hostState(name);
        return {
            name: h.name,
            privateIp: h.privateIp,
            publicIp: h.publicIp,
            netns: h.netns,
            running: isRunning(h.supervisor),
            consoleLog: hostPaths(h.dir).consoleLog,
            diskDir: hostPaths(h.dir).upper,
        };
    }

    hosts(): HostInfo[] {
        return Object.keys(this.state.hosts).map((n) => this.host(n));
    }

    protected hostState(name: string): HostState {
        const h = this.state.hosts[name];
        if (!h) throw new Error(`no host ${name} in local cloud ${this.prefix}`);
        return h;
    }

    /**
     * Read-modify-write of the state file: synchronous (atomic within this process) and under a
     * lock file (atomic between processes that share the cloud).
     */
    protected update(change: (s: CloudState) => void): void {
        withLockSync(path.join(this.stateDir, "state.lock"), () => {
            const s = this.state;
            change(s);
            writeState(s);
        });
    }
}

/** Runs `fn` holding an exclusive lock file (which names its owner's PID; a dead owner's lock is taken over). */
function withLockSync<T>(file: string, fn: () => T, timeoutMs = 10_000): T {
    const deadline = Date.now() + timeoutMs;
    const pause = new Int32Array(new SharedArrayBuffer(4));
    for (;;) {
        try {
            fs.writeFileSync(file, String(process.pid), { flag: "wx" });
            break;
        } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
            const owner = Number(fs.readFileSync(file, { encoding: "utf8", flag: "a+" }).trim());
            if (owner > 0 && !fs.existsSync(`/proc/${owner}`)) {
                fs.rmSync(file, { force: true });
                continue;
            }
            if (Date.now() > deadline) throw new Error(`timed out waiting for ${file} (held by PID ${owner || "?"})`);
            Atomics.wait(pause, 0, 0, 10); // a short synchronous sleep
        }
    }
    try {
        return fn();
    } finally {
        fs.rmSync(file, { force: true });
    }
}
