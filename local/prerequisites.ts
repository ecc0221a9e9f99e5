/**
 * What a local cloud needs from the machine. Tests call this to skip (or, with
 * PYCLUSTER_REQUIRE_E2E=1, fail) with a reason instead of failing obscurely.
 */
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
