/**
 * What a local cloud needs from the machine, and installing it. On a Debian or Ubuntu machine, as
 * root, `npm run local -- up` installs the missing tools itself (saying what and why); anywhere
 * else it stops with one sentence naming the exact command to run. Tests call
 * localCloudPrerequisites to skip (or, with PYCLUSTER_REQUIRE_E2E=1, fail) with a reason.
 */
import * as fs from "node:fs";
import { haveCommand, run } from "./exec";
import { cgroupHierarchies } from "./procs";

/** A command the rehearsal runs (or a file it needs), the Debian package that has it, and why it is needed. */
export interface Tool {
    command: string;
    /** Present when this file exists (a Python module, say), rather than when `command` is on PATH. */
    file?: string;
    pkg: string;
    why: string;
}

export const LOCAL_TOOLS: readonly Tool[] = [
    { command: "systemd-nspawn", pkg: "systemd-container", why: "runs each local host as a container with its own systemd" },
    { command: "mmdebstrap", pkg: "mmdebstrap", why: "builds the hosts' Debian root filesystem" },
    { command: "apt-ftparchive", pkg: "apt-utils", why: "indexes the local package mirror behind the gateway" },
    { command: "ip", pkg: "iproute2", why: "network namespaces, bridges and routes of the local cloud" },
    { command: "nft", pkg: "nftables", why: "the security groups and the gateway's filter" },
    { command: "mount", pkg: "mount", why: "the hosts' overlay disks" },
    { command: "ssh", pkg: "openssh-client", why: "the SSH commands the stack prints" },
    { command: "openssl", pkg: "openssl", why: "the self-signed certificate of a stack without a domain" },
    { command: "python3", pkg: "python3", why: "serves the local package mirror behind the gateway" },
    {
        command: "debian-archive-keyring",
        file: "/usr/share/keyrings/debian-archive-keyring.gpg",
        pkg: "debian-archive-keyring",
        why: "checks the Debian packages the hosts are built from (Ubuntu has it too)",
    },
];

/** The local internet's DNS and ACME CA (local/internet.ts): only for stacks using Let's Encrypt or dnsZone. */
export const INTERNET_TOOLS: readonly Tool[] = [
    { command: "pebble", pkg: "pebble", why: "Let's Encrypt's test CA, the stand-in for the ACME server" },
    { command: "dnslib", file: "/usr/lib/python3/dist-packages/dnslib", pkg: "python3-dnslib", why: "the local internet's authoritative DNS server" },
];

export interface MachineFacts {
    platform: NodeJS.Platform;
    /** undefined where there are no Unix user ids (Windows). */
    uid: number | undefined;
    missing: readonly Tool[];
    hasAptGet: boolean;
    hasCgroups: boolean;
}

export type PrerequisitePlan = { action: "ready" } | { action: "install"; packages: string[]; reasons: string[] } | { action: "fail"; message: string };

/** What to do about the machine, decided from facts alone (so that every branch is tested). */
export function prerequisitePlan(m: MachineFacts): PrerequisitePlan {
    if (m.platform !== "linux") {
        return {
            action: "fail",
            message:
                `The local rehearsal runs Linux containers and needs a Linux machine (this is ${m.platform}): ` +
                "run it in a Debian 12 VM or on a Debian server, as root: `npm install && npm run local -- up`.",
        };
    }
    if (!m.hasCgroups) return { action: "fail", message: "The local rehearsal needs a writable cgroup hierarchy under /sys/fs/cgroup (a VM or a privileged container, not an unprivileged one)." };
    if (m.missing.length === 0 && m.uid === 0) return { action: "ready" };
    const packages = [...new Set(m.missing.map(t => t.pkg))];
    const install = `apt-get install -y --no-install-recommends ${packages.join(" ")}`;
    if (m.uid !== 0) {
        const first = packages.length > 0 ? `sudo ${install} && ` : "";
        return {
            action: "fail",
            message: `The local rehearsal needs root (network namespaces, mounts, cgroups): run \`${first}sudo npm run local -- up\`.`,
        };
    }
    if (!m.hasAptGet) {
        return {
            action: "fail",
            message: `The local rehearsal needs ${m.missing.map(t => t.command).join(", ")}: install them with this machine's package manager (on Debian: \`${install}\`), then run \`npm run local -- up\` again.`,
        };
    }
    return { action: "install", packages, reasons: m.missing.map(t => `${t.pkg}: ${t.command}, ${t.why}`) };
}

async function present(t: Tool): Promise<boolean> {
    return t.file ? fs.existsSync(t.file) : haveCommand(t.command);
}

async function machineFacts(tools: readonly Tool[]): Promise<MachineFacts> {
    const missing: Tool[] = [];
    if (process.platform === "linux") for (const t of tools) if (!(await present(t))) missing.push(t);
    return {
        platform: process.platform,
        uid: typeof process.getuid === "function" ? process.getuid() : undefined,
        missing,
        hasAptGet: process.platform === "linux" && (await haveCommand("apt-get")),
        hasCgroups: process.platform === "linux" && cgroupHierarchies().length > 0,
    };
}

/** The machine cannot run a local cloud as it is: the message is the one sentence to show (no stack trace). */
export class PrerequisiteError extends Error {
    override name = "PrerequisiteError";
}

const toolsFor = (o: { internet?: boolean }) => (o.internet ? [...LOCAL_TOOLS, ...INTERNET_TOOLS] : LOCAL_TOOLS);

/** Returns the missing prerequisites (empty when a local cloud can run here; `internet`: with DNS and ACME). */
export async function localCloudPrerequisites(o: { internet?: boolean } = {}): Promise<string[]> {
    const plan = prerequisitePlan(await machineFacts(toolsFor(o)));
    if (plan.action === "ready") return [];
    if (plan.action === "fail") return [plan.message];
    return plan.reasons.map(r => `not installed: ${r}`);
}

/**
 * Makes the machine ready for a local cloud: installs what is missing with apt (root, Debian or
 * Ubuntu), or throws the one sentence that says what to run instead.
 */
export async function ensureLocalCloudPrerequisites(o: { internet?: boolean; log?: (line: string) => void } = {}): Promise<void> {
    const log = o.log ?? (() => undefined);
    const tools = toolsFor(o);
    const plan = prerequisitePlan(await machineFacts(tools));
    if (plan.action === "ready") return;
    if (plan.action === "fail") throw new PrerequisiteError(plan.message);
    log(`installing what the local rehearsal needs (apt-get, once):`);
    for (const r of plan.reasons) log(`  ${r}`);
    const env = { DEBIAN_FRONTEND: "noninteractive" };
    await run(["apt-get", "update", "-q"], { env });
    await run(["apt-get", "install", "-y", "-q", "--no-install-recommends", ...plan.packages], { env });
    const after = prerequisitePlan(await machineFacts(tools));
    if (after.action !== "ready") throw new PrerequisiteError(`apt-get installed ${plan.packages.join(" ")} but the local rehearsal still lacks: ${JSON.stringify(after)}`);
}
