/**
 * What a local cloud needs from the machine. Tests call this to skip (or, with
 * PYCLUSTER_REQUIRE_E2E=1, fail) with a reason instead of failing obscurely.
 */
import * as fs from "fs";
import { haveCommand } from "./exec";
import { cgroupHierarchies } from "./procs";

/** Returns the missing prerequisites (empty when a local cloud can run here). */
export async function localCloudPrerequisites(): Promise<string[]> {
    const missing: string[] = [];
    if (process.platform !== "linux") return [`Linux is required (this is ${process.platform})`];
    if (typeof process.getuid === "function" && process.getuid() !== 0) missing.push("root is required (network namespaces, mounts, cgroups)");
    for (const [cmd, pkg] of [
        ["systemd-nspawn", "systemd-container"],
        ["mmdebstrap", "mmdebstrap"],
        ["apt-ftparchive", "apt-utils"],
        ["ip", "iproute2"],
        ["nft", "nftables"],
        ["mount", "mount"],
    ]) {
        if (!(await haveCommand(cmd))) missing.push(`${cmd} not found (apt-get install ${pkg})`);
    }
    if (cgroupHierarchies().length === 0) missing.push("no writable cgroup hierarchy under /sys/fs/cgroup");
    return missing;
}

/** What the local internet's DNS and ACME CA need (local/internet.ts), for stacks that use them. */
export async function internetPrerequisites(): Promise<string[]> {
    const missing: string[] = [];
    if (!(await haveCommand("pebble"))) missing.push("pebble not found (apt-get install pebble)");
    if (!fs.existsSync("/usr/lib/python3/dist-packages/dnslib")) missing.push("the Python module dnslib is missing (apt-get install python3-dnslib)");
    return missing;
}
