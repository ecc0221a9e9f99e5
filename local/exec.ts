/**
 * Running programs on the outer machine (the "deployer"), with their output captured.
 *
 * Everything the local cloud does to the outer machine (ip, mount, mmdebstrap, ...) goes
 * through `run`, so a failure always names the command line and what it printed.
 */
import { spawn } from "node:child_process";
import { shellLine, shellQuote } from "../lib/shell";

export interface RunOptions {
    /** Written to the child's stdin, which is then closed. */
    input?: string;
    /** Extra environment variables (merged over process.env). */
    env?: Record<string, string>;
    /** Do not throw on a non-zero exit; the caller inspects `code`. */
    allowFailure?: boolean;
    /** Kill the child (SIGKILL) after this many milliseconds. */
    timeoutMs?: number;
    cwd?: string;
}

export interface RunResult {
    code: number;
    stdout: string;
    stderr: string;
}

/** Thrown when a command exits non-zero (unless `allowFailure`), naming the command and its stderr. */
export class CommandFailedError extends Error {
    constructor(
        public readonly argv: readonly string[],
        public readonly result: RunResult,
    ) {
        const out = (result.stderr.trim() || result.stdout.trim()).slice(-2000);
        super(`command failed (exit ${result.code}): ${shellLine(argv)}${out ? `\n${out}` : ""}`);
        this.name = "CommandFailedError";
    }
}


/** Runs `argv[0]` with the remaining words as arguments (no shell) and collects its output. */
export function run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return new Promise((resolve, reject) => {
        const child = spawn(argv[0], argv.slice(1), {
            cwd: options.cwd,
            env: options.env ? { ...process.env, ...options.env } : process.env,
            stdio: ["pipe", "pipe", "pipe"],
        });
        const stdout: Buffer[] = [];
        const stderr: Buffer[] = [];
        let timer: NodeJS.Timeout | undefined;
        if (options.timeoutMs !== undefined) {
            timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs);
        }
        child.stdout.on("data", (d: Buffer) => stdout.push(d));
        child.stderr.on("data", (d: Buffer) => stderr.push(d));
        child.on("error", (err) => {
            if (timer) clearTimeout(timer);
            reject(new Error(`cannot run ${shellLine(argv)}: ${err.message}`));
        });
        child.on("close", (code, signal) => {
            if (timer) clearTimeout(timer);
            const result: RunResult = {
                code: code ?? (signal ? 128 + (signalNumber(signal) ?? 0) : -1),
                stdout: Buffer.concat(stdout).toString("utf8"),
                stderr: Buffer.concat(stderr).toString("utf8"),
            };
            if (result.code !== 0 && !options.allowFailure) reject(new CommandFailedError(argv, result));
            else resolve(result);
        });
        child.stdin.on("error", () => undefined); // child may exit before reading stdin
        child.stdin.end(options.input ?? "");
    });
}

/** Runs argv inside the named network namespace. */
export function runInNetns(netns: string, argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return run(["ip", "netns", "exec", netns, ...argv], options);
}

function signalNumber(signal: NodeJS.Signals): number | undefined {
    const table: Partial<Record<NodeJS.Signals, number>> = { SIGKILL: 9, SIGTERM: 15, SIGINT: 2, SIGHUP: 1 };
    return table[signal];
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Whether a command exists on PATH. */
export async function haveCommand(name: string): Promise<boolean> {
    const r = await run(["bash", "-c", `command -v ${shellQuote(name)}`], { allowFailure: true });
    return r.code === 0;
}
