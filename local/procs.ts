/**
 * Processes started by a local cloud, and the cgroups that hold them.
 *
 * Every long-running process a cloud starts (host supervisors with their containers, the apt
 * repository server) first moves itself into a cgroup of that cloud, so teardown finds exactly
 * the processes the cloud started, even when the state file is gone, and ends them by PID.
 * A recorded PID is only signalled while its start time still matches (no PID reuse accidents).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { sleep } from "./exec";

const CGROUP_ROOT = "/sys/fs/cgroup";

/**
 * The cgroup hierarchies a process must join to get its own cgroup: on a hybrid layout the
 * named v1 "systemd" one and the v2 "unified" one; on a pure v2 layout the root.
 */
export function cgroupHierarchies(): string[] {
    if (fs.existsSync(path.join(CGROUP_ROOT, "cgroup.controllers"))) return [CGROUP_ROOT];
    return ["systemd", "unified"].map((h) => path.join(CGROUP_ROOT, h)).filter((d) => fs.existsSync(path.join(d, "cgroup.procs")));
}

/** Absolute cgroup directories for a relative cgroup path, one per hierarchy. */
export function cgroupDirs(relative: string): string[] {
    return cgroupHierarchies().map((h) => path.join(h, relative));
}

export function ensureCgroup(relative: string): string[] {
    const dirs = cgroupDirs(relative);
    for (const d of dirs) fs.mkdirSync(d, { recursive: true });
    return dirs;
}

/** PIDs of all processes in the cgroup subtree (all hierarchies). */
export function cgroupPids(relative: string): number[] {
    const pids = new Set<number>();
    const walk = (dir: string) => {
        let entries: fs.Dirent[];
        try {
            entries = fs.readdirSync(dir, { withFileTypes: true });
        } catch {
            return;
        }
        try {
            for (const line of fs.readFileSync(path.join(dir, "cgroup.procs"), "utf8").split("\n")) {
                if (line.trim()) pids.add(Number(line));
            }
        } catch {
            /* removed meanwhile */
        }
        for (const e of entries) if (e.isDirectory()) walk(path.join(dir, e.name));
    };
    for (const d of cgroupDirs(relative)) walk(d);
    return [...pids];
}

/** Removes a cgroup subtree, deepest directories first (only empty cgroups can be removed). */
export function removeCgroup(relative: string): string[] {
    const failed: string[] = [];
    const remove = (dir: string) => {
        let entries: fs.Dirent[];
        try {
            entries = fs.readdirSync(dir, { withFileTypes: true });
        } catch {
            return;
        }
        for (const e of entries) if (e.isDirectory()) remove(path.join(dir, e.name));
        try {
            fs.rmdirSync(dir);
        } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== "ENOENT") failed.push(dir);
        }
    };
    for (const d of cgroupDirs(relative)) remove(d);
    return failed;
}

/** SIGKILLs every process of the cgroup subtree until it is empty (or `timeoutMs` passes). */
export async function killCgroup(relative: string, timeoutMs = 15_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const pids = cgroupPids(relative);
        if (pids.length === 0) return true;
        if (Date.now() > deadline) return false;
        for (const pid of pids) signal(pid, "SIGKILL");
        await sleep(100);
    }
}

/** Start time of a process (clock ticks since boot, field 22 of /proc/PID/stat), or undefined if gone. */
export function processStartTime(pid: number): string | undefined {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        // the command name (field 2) may contain spaces: split after its closing parenthesis
        return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
    } catch {
        return undefined;
    }
}

/** A process the cloud started: its PID and start time. */
export interface ProcessRef {
    pid: number;
    startTime: string;
}

export function refOf(pid: number): ProcessRef {
    const startTime = processStartTime(pid);
    if (startTime === undefined) throw new Error(`process ${pid} exited right after it was started`);
    return { pid, startTime };
}

/** Whether the referenced process is still the one that was started (alive, same start time, not a zombie). */
export function isRunning(ref: ProcessRef | undefined): ref is ProcessRef {
    if (!ref || processStartTime(ref.pid) !== ref.startTime) return false;
    try {
        const stat = fs.readFileSync(`/proc/${ref.pid}/stat`, "utf8");
        return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
    } catch {
        return false;
    }
}

/** Sends a signal to the referenced process if it is still the one that was started. */
export function signalRef(ref: ProcessRef | undefined, sig: NodeJS.Signals): boolean {
    return isRunning(ref) && signal(ref.pid, sig);
}

/** Waits until the referenced process is gone; false on timeout. */
export async function waitGone(ref: ProcessRef | undefined, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (isRunning(ref)) {
        if (Date.now() > deadline) return false;
        await sleep(100);
    }
    return true;
}

function signal(pid: number, sig: NodeJS.Signals): boolean {
    try {
        process.kill(pid, sig);
        return true;
    } catch {
        return false;
    }
}

/** Direct children of a process (from /proc/PID/task/PID/children). */
export function childPids(pid: number): number[] {
    try {
        return fs
            .readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
            .split(/\s+/)
            .filter(Boolean)
            .map(Number);
    } catch {
        return [];
    }
}
