/**
 * What the end-to-end tests need around the local rehearsal: the
 * prerequisite check, SSH to the hosts as the program does, and curl from
 * the local internet.
 */
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as os from "os";
import { localCloudPrerequisites } from "../../local/prerequisites";
import { ClusterAccess, hostConnection, onClusterHost } from "../../local/clusterSsh";
import type { SshConnection } from "../../local/ssh";
import type { UpResult } from "../../local/stack";

/** Why the e2e cannot run here (undefined when it can); with PYCLUSTER_REQUIRE_E2E=1 a missing prerequisite fails. */
export async function e2eSkipReason(): Promise<string | undefined> {
    const missing = await localCloudPrerequisites();
    if (missing.length === 0) return undefined;
    const reason = `the end-to-end tests need local hosts: ${missing.join("; ")}`;
    if (process.env.PYCLUSTER_REQUIRE_E2E === "1") throw new Error(`PYCLUSTER_REQUIRE_E2E=1 but ${reason}`);
    console.log(`SKIPPED: ${reason}`);
    return reason;
}

const access = (up: UpResult): ClusterAccess => ({
    lbPublicIp: up.outputs.lbPublicIp as string,
    sshKeyFile: up.sshKeyFile,
    user: "debian",
    dialErrorLimit: 2,
    perDialTimeout: 5,
});

export function connectionTo(up: UpResult, host: "lb" | string, viaLb = true): SshConnection {
    return hostConnection(access(up), host, viaLb);
}

/** Runs a command on a host as the program would reach it; throws with the output when it fails. */
export function onHost(up: UpResult, host: "lb" | string, command: string, stdin?: string): Promise<string> {
    return onClusterHost(access(up), host, command, stdin);
}

/** curl from a network namespace (the local internet), returning stdout. */
export function curl(netns: string, args: string[]): { code: number; out: string } {
    const p = spawnSync("ip", ["netns", "exec", netns, "curl", "-sS", "--max-time", "10", ...args], { encoding: "utf8" });
    return { code: p.status ?? -1, out: `${p.stdout}${p.stderr}` };
}

/** Whether a TCP connection to host:port opens from a namespace (or the root namespace). */
export function tcpOpens(netns: string | undefined, host: string, port: number): boolean {
    const probe = ["timeout", "3", "bash", "-c", `exec 3<>/dev/tcp/${host}/${port}`];
    const p = netns ? spawnSync("ip", ["netns", "exec", netns, ...probe]) : spawnSync(probe[0], probe.slice(1));
    return p.status === 0;
}

export const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** tcpOpens without blocking: probes that time out (dropped by a firewall) run side by side. */
export function tcpOpensAsync(netns: string | undefined, host: string, port: number): Promise<boolean> {
    const probe = ["timeout", "3", "bash", "-c", `exec 3<>/dev/tcp/${host}/${port}`];
    const argv = netns ? ["ip", "netns", "exec", netns, ...probe] : probe;
    return new Promise(resolve => spawn(argv[0], argv.slice(1), { stdio: "ignore" }).once("exit", code => resolve(code === 0)));
}

/**
 * A command line as a user pastes it into a shell whose home is `home`: bash -c, in a private
 * mount namespace where `home` is mounted over this user's home directory, in the root network
 * namespace (the deployer's side). Setting HOME alone would not do: OpenSSH expands ~ in ssh_config
 * from the passwd entry, not from $HOME (OpenSSH 9.2: with HOME elsewhere, `ssh -G` still names
 * the passwd home's .ssh). No agent (SSH_AUTH_SOCK empty) and no terminal (its own session), so nothing
 * but the files the command names can authenticate or answer a prompt.
 */
export function startPasted(home: string, command: string, env: NodeJS.ProcessEnv = {}): ChildProcess {
    const realHome = os.userInfo().homedir;
    const argv = ["unshare", "--mount", "--propagation", "private", "bash", "-c", 'mount --bind "$1" "$2" && exec bash -c "$3"', "pasted", home, realHome, command];
    return spawn(argv[0], argv.slice(1), {
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
        env: { PATH: process.env.PATH, HOME: realHome, SSH_AUTH_SOCK: "", ...env },
    });
}

/** startPasted to its end: exit code and output (killed after timeoutMs). */
export function runPasted(home: string, command: string, env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
    const p = startPasted(home, command, env);
    let stdout = "";
    let stderr = "";
    p.stdout!.on("data", d => (stdout += d));
    p.stderr!.on("data", d => (stderr += d));
    const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    return new Promise(resolve =>
        p.once("close", code => {
            clearTimeout(timer);
            resolve({ code, stdout, stderr });
        }),
    );
}
