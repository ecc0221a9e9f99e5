/**
 * Load-generator processes: wrk in the cloud's client network namespaces (one
 * source IP each), every process in the bench's own cgroup (so its CPU is
 * measured) and recorded by PID, so that an abort, a failure or Ctrl-C ends
 * exactly the processes this run started, and nothing else.
 */
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { cgroupDirs, cgroupPids, ensureCgroup, removeCgroup } from "../../local/procs";
import { parseWrkOutput, WrkInvocation, wrkArgs, WrkResult } from "./wrk";
import { sq } from "./configs";

/** The bench's cgroup for its load generators (outside every cloud's cgroup). */
export const LOADGEN_CGROUP = `pycluster-bench-loadgen-${process.pid}`;

export interface WrkProcess {
    label: string;
    netns: string;
    child: ChildProcess;
    pid: number;
    output: () => string;
    done: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Every wrk this process started and that has not exited yet. */
const running = new Set<WrkProcess>();

export function runningLoadGenerators(): number[] {
    return [...running].map(p => p.pid);
}

export function prepareLoadgenCgroup(): void {
    ensureCgroup(LOADGEN_CGROUP);
}

/** Removes the cgroup once its processes are gone (they are ours: ended by PID before). */
export function removeLoadgenCgroup(): void {
    if (cgroupPids(LOADGEN_CGROUP).length === 0) removeCgroup(LOADGEN_CGROUP);
}

/**
 * Starts wrk in a namespace. bash joins the cgroup, then execs `ip netns
 * exec`, which execs wrk: the PID we hold is wrk's own.
 */
export function startWrk(label: string, netns: string, inv: WrkInvocation): WrkProcess {
    const joins = cgroupDirs(LOADGEN_CGROUP)
        .map(d => `echo $$ > ${sq(path.join(d, "cgroup.procs"))}`)
        .join(" && ");
    const argv = ["ip", "netns", "exec", netns, "wrk", ...wrkArgs(inv)].map(sq).join(" ");
    const child = spawn("bash", ["-c", `${joins || "true"} && exec ${argv}`], { stdio: ["ignore", "pipe", "pipe"] });
    if (child.pid === undefined) throw new Error(`cannot start wrk (${label})`);
    let out = "";
    child.stdout!.on("data", d => (out += d));
    child.stderr!.on("data", d => (out += d));
    const proc: WrkProcess = {
        label,
        netns,
        child,
        pid: child.pid,
        output: () => out,
        done: new Promise(resolve =>
            child.on("exit", (code, signal) => {
                running.delete(proc);
                resolve({ code, signal });
            }),
        ),
    };
    running.add(proc);
    return proc;
}

/**
 * Ends this run's load generators by PID: SIGINT first (wrk stops and prints
 * its summary), SIGKILL for any still there after `graceMs`.
 */
export async function stopLoadGenerators(graceMs = 3000): Promise<void> {
    const procs = [...running];
    for (const p of procs) {
        try {
            process.kill(p.pid, "SIGINT");
        } catch {
            /* already gone */
        }
    }
    const deadline = Date.now() + graceMs;
    while (running.size > 0 && Date.now() < deadline) await new Promise(r => setTimeout(r, 100));
    for (const p of [...running]) {
        try {
            process.kill(p.pid, "SIGKILL");
        } catch {
            /* already gone */
        }
    }
    await Promise.all(procs.map(p => p.done));
}

export interface FinishedWrk {
    label: string;
    netns: string;
    result?: WrkResult;
    /** Why there is no result (wrk failed to start, was killed before printing). */
    failure?: string;
}

export async function finish(p: WrkProcess): Promise<FinishedWrk> {
    const { code, signal } = await p.done;
    try {
        return { label: p.label, netns: p.netns, result: parseWrkOutput(p.output()) };
    } catch {
        return { label: p.label, netns: p.netns, failure: `wrk exited ${code ?? signal}: ${p.output().trim().slice(0, 400)}` };
    }
}

/** Writes the Lua script next to the results (wrk reads it by path). */
export function writeScript(dir: string, content: string): string {
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `pycbench-${process.pid}.lua`);
    fs.writeFileSync(file, content);
    return file;
}

export interface ChunkPlan {
    connections: number;
    /** Start offset from the beginning of the step, ms. */
    startMs: number;
    netns: string;
}

/**
 * Splits a step into processes of at most `chunk` connections, spread over
 * the client namespaces round-robin and started `chunk / rampRate` seconds
 * apart, so connections open at about `rampRate` per second. Pure.
 */
export function planChunks(concurrency: number, chunk: number, rampRate: number, clients: string[]): ChunkPlan[] {
    const n = Math.ceil(concurrency / chunk);
    const base = Math.floor(concurrency / n);
    const extra = concurrency - base * n;
    const spacingMs = (Math.min(chunk, concurrency) * 1000) / rampRate;
    return Array.from({ length: n }, (_, i) => ({
        connections: base + (i < extra ? 1 : 0),
        startMs: Math.round(i * spacingMs),
        netns: clients[i % clients.length],
    }));
}
