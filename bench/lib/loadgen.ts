/**
 * Load-generator processes: h2load (steps, calibration) and wrk (throughput)
 * in the cloud's client network namespaces (one source IP each), every process
 * in the bench's own cgroup (so its CPU and memory are measured) and recorded
 * by PID, so that an abort, a failure or Ctrl-C ends exactly the processes
 * this run started, and nothing else.
 */
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { cgroupDirs, cgroupPids, ensureCgroup, removeCgroup } from "../../local/procs";
import { H2loadInvocation, h2loadArgs, H2loadResult, parseH2loadOutput } from "./h2load";
import { parseWrkOutput, WrkInvocation, wrkArgs, WrkResult } from "./wrk";
import { shellQuote as sq } from "../../lib/shell";

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
    return startLoadgen(label, netns, ["wrk", ...wrkArgs(inv)]);
}

export function startH2load(label: string, netns: string, inv: H2loadInvocation): WrkProcess {
    return startLoadgen(label, netns, ["h2load", ...h2loadArgs(inv)]);
}

function startLoadgen(label: string, netns: string, command: string[]): WrkProcess {
    const joins = cgroupDirs(LOADGEN_CGROUP)
        .map(d => `echo $$ > ${sq(path.join(d, "cgroup.procs"))}`)
        .join(" && ");
    const argv = ["ip", "netns", "exec", netns, ...command].map(sq).join(" ");
    const child = spawn("bash", ["-c", `${joins || "true"} && exec ${argv}`], { stdio: ["ignore", "pipe", "pipe"] });
    if (child.pid === undefined) throw new Error(`cannot start ${command[0]} (${label})`);
    let out = "";
    child.stdout!.on("data", d => (out += d));
    child.stderr!.on("data", d => (out += d));
    const proc: WrkProcess = {
        label,
        netns,
        child,
        pid: child.pid,
        output: () => out,
        // "close", not "exit": at exit the output pipes may still hold the tail of the output (h2load's
        // summary), and a run once lost one process's summary that way (9,375 slots "no result").
        done: new Promise(resolve =>
            child.on("close", (code, signal) => {
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

export interface FinishedH2load {
    label: string;
    netns: string;
    result?: H2loadResult;
    /** Why there is no result (h2load failed to start, or was ended before its summary: it prints none when interrupted). */
    failure?: string;
}

export async function finishH2load(p: WrkProcess): Promise<FinishedH2load> {
    const { code, signal } = await p.done;
    try {
        return { label: p.label, netns: p.netns, result: parseH2loadOutput(p.output()) };
    } catch {
        return { label: p.label, netns: p.netns, failure: `h2load exited ${code ?? signal}: ${p.output().trim().slice(-400)}` };
    }
}

/** Writes the Lua script next to the results (wrk reads it by path). */
export function writeScript(dir: string, content: string): string {
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, `pycbench-${process.pid}.lua`);
    fs.writeFileSync(file, content);
    return file;
}

export interface ProcessPlan {
    connections: number;
    /** New connections per second this process opens. */
    rate: number;
    netns: string;
}

/**
 * Splits a step over load-generator processes, all started together: at least one per client
 * namespace (source IP), more when a process would hold over `maxPerProcess` connections
 * (each stays under the open-file cap); each opens its share of `rate` connections per
 * second, so the step ramps at `rate` in all and lasts `concurrency / rate` s. Pure.
 */
export function planProcesses(concurrency: number, maxPerProcess: number, rate: number, clients: string[]): ProcessPlan[] {
    if (!(rate > 0)) throw new RangeError(`the ramp rate must be > 0, got ${rate}`);
    const n = Math.min(concurrency, Math.max(clients.length, Math.ceil(concurrency / maxPerProcess)));
    const base = Math.floor(concurrency / n);
    const extra = concurrency - base * n;
    return Array.from({ length: n }, (_, i) => {
        const connections = base + (i < extra ? 1 : 0);
        return { connections, rate: (rate * connections) / concurrency, netns: clients[i % clients.length] };
    });
}
