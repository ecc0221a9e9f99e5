/**
 * Finding and tearing down what a local cloud left on this machine, with or without its state file.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { run } from "./exec";
import { killHostProcesses, mountPoints, unmountOverlay } from "./host";
import { cloudNames } from "./names";
import { deleteLink, deleteNetns, listLinks, listNetns, unblockFromRoot } from "./network";
import { cgroupDirs, cgroupPids, isRunning, killCgroup, removeCgroup, signalRef, waitGone } from "./procs";
import { readState, stateDirOf } from "./cloudState";
import { removeFabric } from "./fabric";

/** Objects of a cloud that exist on this machine (found by name, mount path and cgroup). */
export interface CloudLeftovers {
    netns: string[];
    links: string[];
    mounts: string[];
    pids: number[];
    cgroups: string[];
}

/** Lists what exists of the cloud `prefix` on this machine; all empty after destroyCloud. */
export function leftoversOf(prefix: string, stateRoot?: string): CloudLeftovers {
    const names = cloudNames(prefix);
    const stateDir = stateDirOf(prefix, stateRoot);
    return {
        netns: listNetns().filter((n) => n.startsWith(`${prefix}-`)),
        links: listLinks().filter((l) => l.startsWith(`${prefix}-`)),
        mounts: mountPoints().filter((m) => m === stateDir || m.startsWith(`${stateDir}/`)),
        pids: cgroupPids(names.cgroup),
        cgroups: cgroupDirs(names.cgroup).filter((d) => fs.existsSync(d)),
    };
}

export interface DestroyReport {
    /** What still exists afterwards (all empty on success). */
    leftovers: CloudLeftovers;
    /** Hosts that had to be killed because they did not shut down in time. */
    killed: string[];
}

/**
 * Tears down everything of the cloud `prefix`: shuts hosts down (SIGTERM to their supervisors,
 * SIGKILL after `timeoutMs`), stops the repository server, unmounts overlays, deletes network
 * namespaces, veths, bridges, the route block, cgroups and the state directory. Idempotent: works
 * on a half-built cloud, one whose state file is lost, or one already gone. Throws if something
 * survives.
 */
export async function destroyCloud(prefix: string, options: { stateRoot?: string; timeoutMs?: number } = {}): Promise<DestroyReport> {
    const names = cloudNames(prefix);
    const stateDir = stateDirOf(prefix, options.stateRoot);
    const state = readState(stateDir);
    const killed: string[] = [];

    // 1. hosts: orderly shutdown in parallel, hard kill after the timeout
    const hosts = Object.values(state?.hosts ?? {});
    await Promise.all(
        hosts.map(async (h) => {
            if (!isRunning(h.supervisor) && cgroupPids(h.cgroup).length === 0) return;
            signalRef(h.supervisor, "SIGTERM");
            if (!(await waitGone(h.supervisor, options.timeoutMs ?? 20_000))) killed.push(h.name);
            await killHostProcesses(h);
        }),
    );
    // 2. the repository server and the internet's services, then anything else left in the cloud's
    // cgroup (ours by construction)
    for (const ref of [state?.repoServer, state?.internet?.dns, state?.internet?.acme]) {
        if (signalRef(ref, "SIGTERM")) await waitGone(ref, 3_000);
    }
    await killCgroup(names.cgroup);

    // 3. overlays (also of hosts missing from the state file)
    for (const m of mountPoints().filter((m) => m.startsWith(`${stateDir}/`)).reverse()) {
        await unmountOverlay(path.dirname(m)).catch(() => undefined);
        if (mountPoints().includes(m)) await run(["umount", "--lazy", m], { allowFailure: true });
    }
    // 4. network: namespaces (their veth ends go with them), remaining links, route block
    for (const ns of listNetns().filter((n) => n.startsWith(`${prefix}-`))) await deleteNetns(ns);
    for (const link of listLinks().filter((l) => l.startsWith(`${prefix}-`))) await deleteLink(link);
    if (state?.privateBlocked) await unblockFromRoot(state.privateCidr);
    await removeFabric(prefix);

    // 5. cgroups, deepest first, and the state directory
    removeCgroup(names.cgroup);
    const leftovers = leftoversOf(prefix, options.stateRoot);
    if (leftovers.mounts.length === 0) fs.rmSync(stateDir, { recursive: true, force: true });
    const remaining = Object.entries(leftovers).filter(([, v]) => (v as unknown[]).length > 0);
    if (remaining.length > 0) {
        throw new Error(`destroyCloud(${prefix}) left: ${remaining.map(([k, v]) => `${k} ${JSON.stringify(v)}`).join("; ")}`);
    }
    return { leftovers, killed };
}
