/**
 * SSH to the hosts of a cluster that localUp stood up, as the program reaches
 * them: the load balancer directly, the private nodes through it. For the
 * tests and the benchmark, which act on the hosts beside the program.
 */
import * as fs from "fs";
import { runCommand, SshConnection } from "./ssh";

export interface ClusterAccess {
    lbPublicIp: string;
    sshKeyFile: string;
    user: string;
    /** Dials before giving up, and seconds per dial. */
    dialErrorLimit: number;
    perDialTimeout: number;
}

/** "lb" for the load balancer, else a private address reached through it (or directly, viaLb false). */
export function hostConnection(a: ClusterAccess, host: "lb" | string, viaLb = true): SshConnection {
    const privateKey = fs.readFileSync(a.sshKeyFile, "utf8");
    const dial = { user: a.user, privateKey, dialErrorLimit: a.dialErrorLimit, perDialTimeout: a.perDialTimeout };
    const lb: SshConnection = { host: a.lbPublicIp, ...dial };
    if (host === "lb") return lb;
    return { host, ...dial, ...(viaLb ? { proxy: lb } : {}) };
}

/** Runs a command on a host; throws with its output when it fails. */
export async function onClusterHost(a: ClusterAccess, host: "lb" | string, command: string, stdin?: string): Promise<string> {
    const r = await runCommand(hostConnection(a, host), command, stdin);
    if (r.exitCode !== 0) throw new Error(`on ${host}: ${command} exited ${r.exitCode}:\n${r.stdout}${r.stderr}`);
    return r.stdout;
}
