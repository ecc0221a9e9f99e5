/**
 * What stands behind the private network's gateway address: the nftables filter that keeps a
 * subnet without its gateway cut off, and the apt repository's HTTP server.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { run } from "./exec";
import { CloudNames } from "./names";
import { ensureCgroup, ProcessRef, refOf } from "./procs";
import type { CloudState } from "./cloudState";

export const GATEWAY_TABLE = "pycluster_gateway";

/**
 * Before the gateway exists a private host has no way out: what it sends towards the gateway
 * address (its default route, the apt repository) is answered "network unreachable", as a
 * subnet without a router answers on OVH. Packets the gateway namespace sends itself are unaffected.
 */
export async function closeGateway(netns: string): Promise<void> {
    const rules = [
        `add table inet ${GATEWAY_TABLE}`,
        `delete table inet ${GATEWAY_TABLE}`,
        `table inet ${GATEWAY_TABLE} {`,
        `  chain input {`,
        `    type filter hook input priority 0; policy accept;`,
        `    iifname "eth0" reject with icmpx type no-route`,
        `  }`,
        `}`,
        ``,
    ].join("\n");
    await run(["ip", "netns", "exec", netns, "nft", "-f", "-"], { input: rules });
}

/** Starts the HTTP server of the apt repository in the gateway namespace, in the cloud's cgroup. */
export function startRepoServer(names: CloudNames, s: CloudState): ProcessRef {
    const dirs = ensureCgroup(names.gatewayCgroup);
    const python = fs.existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
    const script =
        `for cg in ${dirs.map((d) => `'${d}'`).join(" ")}; do echo $$ > "$cg/cgroup.procs"; done\n` +
        `exec ip netns exec '${names.gatewayNetns}' ${python} -m http.server 80 --bind '${s.gatewayIp}' --directory '${s.repoDir}'\n`;
    const log = fs.openSync(path.join(s.stateDir, "repo-server.log"), "a");
    try {
        const child = spawn("bash", ["-c", script], { detached: true, stdio: ["ignore", log, log] });
        child.unref();
        if (child.pid === undefined) throw new Error("cannot start the apt repository server");
        return refOf(child.pid);
    } finally {
        fs.closeSync(log);
    }
}
