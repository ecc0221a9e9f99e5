/**
 * One local host: a Debian 12 system booted by systemd-nspawn on an overlay of the shared root
 * filesystem, in its own network namespace, supervised by a small detached shell script that
 * boots it again after a guest reboot (nspawn exits 133), as a VM's hypervisor would.
 *
 * The renderers (files written into the host, the supervisor script) are pure functions; the
 * operations below them act on the outer machine.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { shellQuote } from "../lib/shell";
import { run, sleep } from "./exec";
import { canConnect } from "./network";
import { cgroupDirs, cgroupPids, childPids, ensureCgroup, isRunning, killCgroup, ProcessRef, refOf, signalRef, waitGone } from "./procs";

/** Everything known about a host, as kept in the cloud's state file. */
export interface HostState {
    name: string;
    /** 1-based index within the cloud (used in interface names). */
    index: number;
    netns: string;
    privateIp: string;
    privateVeth: string;
    publicIp?: string;
    publicVeth?: string;
    /** Directory with the overlay layers, seed copy, supervisor script and console log. */
    dir: string;
    /** Cgroup (relative to each hierarchy) holding the supervisor, nspawn and the container. */
    cgroup: string;
    uuid: string;
    supervisor?: ProcessRef;
    /**
     * Neutron's allowed_address_pairs of the host's port: addresses (or CIDRs) besides privateIp that
     * its port lets through (local/fabric.ts). Absent: the fixed address only.
     */
    allowedAddressPairs?: string[];
}

export interface HostPaths {
    upper: string;
    work: string;
    merged: string;
    supervisorScript: string;
    nspawnPidFile: string;
    consoleLog: string;
}

export function hostPaths(dir: string): HostPaths {
    return {
        upper: path.join(dir, "upper"),
        work: path.join(dir, "work"),
        merged: path.join(dir, "root"),
        supervisorScript: path.join(dir, "supervise.sh"),
        nspawnPidFile: path.join(dir, "nspawn.pid"),
        consoleLog: path.join(dir, "console.log"),
    };
}

/** What identifies a host to cloud-init and the network. */
export interface HostIdentity {
    name: string;
    /** The subnet gateway, which serves the local apt repository. */
    gatewayIp: string;
    userData: string;
    /** NoCloud meta-data: extra keys merged over instance-id/local-hostname, or the whole document. */
    metaData?: string | Record<string, string>;
    /** NoCloud vendor-data (cloud-init merges it under the user-data): fault injection in tests. */
    vendorData?: string;
    instanceId: string;
    machineId: string;
}

/** Files written into the host's overlay before its first boot (path inside the host → content). */
export function renderHostFiles(h: HostIdentity): Record<string, string> {
    let metaData: string;
    if (typeof h.metaData === "string") {
        metaData = h.metaData;
    } else {
        const meta: Record<string, string> = { "instance-id": h.instanceId, "local-hostname": h.name, ...h.metaData };
        metaData = Object.entries(meta)
            .map(([k, v]) => `${k}: ${JSON.stringify(v)}\n`)
            .join("");
    }
    return {
        "/etc/hostname": `${h.name}\n`,
        // without the 127.0.1.1 line every sudo waits ~20 s for a DNS answer that never comes
        "/etc/hosts":
            `127.0.0.1\tlocalhost\n127.0.1.1\t${h.name}\n` +
            `::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n`,
        "/etc/machine-id": `${h.machineId}\n`,
        "/etc/apt/sources.list": `# local apt repository served by the subnet gateway (no internet here)\ndeb [trusted=yes] http://${h.gatewayIp}/ ./\n`,
        // The local image has the cluster's packages pre-installed (boot speed); OVH's stock image does
        // not, so there cloud-init's package install fails when nothing can be fetched. An update that
        // cannot reach its source fails here too, so a first boot without the outside fails alike.
        "/etc/apt/apt.conf.d/90pycluster-local-stock-image": `APT::Update::Error-Mode "any";\n`,
        "/var/lib/cloud/seed/nocloud/meta-data": metaData,
        "/var/lib/cloud/seed/nocloud/user-data": h.userData,
        ...(h.vendorData ? { "/var/lib/cloud/seed/nocloud/vendor-data": h.vendorData } : {}),
    };
}

/** The systemd-nspawn command line that boots the host (pure). */
export function nspawnArgv(o: { name: string; rootDir: string; netns: string; uuid: string }): string[] {
    return [
        "systemd-nspawn",
        "--quiet",
        "--boot",
        `--directory=${o.rootDir}`,
        `--machine=${o.name}`,
        `--uuid=${o.uuid}`,
        // no system bus on this machine: do not register with machined, stay in our own cgroup
        "--register=no",
        "--keep-unit",
        `--network-namespace-path=/run/netns/${o.netns}`,
        // As root on a VM: the host may manage its own firewall (an app node drains itself with nft).
        // It reaches only the host's own network namespace.
        "--capability=CAP_NET_ADMIN",
        "--link-journal=no",
        // The host's DNS configuration is its own (the subnet's, written as DHCP would), never this machine's.
        "--resolv-conf=off",
        "--console=read-only",
    ];
}

/**
 * The supervisor: joins the host's cgroup, boots the host, boots it again when the guest
 * rebooted (exit 133), and on SIGTERM asks nspawn for an orderly shutdown and exits.
 */
export function renderSupervisor(o: { name: string; cgroupDirs: string[]; nspawn: string[]; nspawnPidFile: string }): string {
    const q = shellQuote;
    return `#!/bin/bash
# Supervisor of local host ${o.name}: boots it with systemd-nspawn, again after a guest reboot.
for cg in ${o.cgroupDirs.map(q).join(" ")}; do echo $$ > "$cg/cgroup.procs"; done
stopping=0
child=
trap 'stopping=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM INT HUP
boot=0
while :; do
  boot=$((boot + 1))
  echo "== pycluster-local: boot $boot of ${o.name} at $(date -Is)"
  SYSTEMD_NSPAWN_API_VFS_WRITABLE=network ${o.nspawn.map(q).join(" ")} </dev/null &
  child=$!
  echo "$child" > ${q(o.nspawnPidFile)}
  [ "$stopping" = 1 ] && kill -TERM "$child" 2>/dev/null
  while :; do
    wait "$child"; rc=$?
    kill -0 "$child" 2>/dev/null || break
  done
  rm -f ${q(o.nspawnPidFile)}
  echo "== pycluster-local: systemd-nspawn exited with $rc at $(date -Is)"
  [ "$stopping" = 1 ] && break
  [ "$rc" = 133 ] || break
done
`;
}

/** Mounts the host's overlay (upper/work in its dir over the shared root) unless already mounted. */
export async function mountOverlay(dir: string, lowerDir: string): Promise<void> {
    const p = hostPaths(dir);
    for (const d of [p.upper, p.work, p.merged]) fs.mkdirSync(d, { recursive: true });
    if (isMountPoint(p.merged)) return;
    await run(["mount", "-t", "overlay", "overlay", "-o", `lowerdir=${lowerDir},upperdir=${p.upper},workdir=${p.work}`, p.merged]);
}

/** Unmounts the host's overlay if mounted (lazily if busy). */
export async function unmountOverlay(dir: string): Promise<void> {
    const merged = hostPaths(dir).merged;
    if (!isMountPoint(merged)) return;
    const r = await run(["umount", merged], { allowFailure: true });
    if (r.code !== 0) await run(["umount", "--lazy", merged]);
}

export function isMountPoint(dir: string): boolean {
    return mountPoints().includes(path.resolve(dir));
}

/** Mount points of the root mount namespace (decoded from /proc/self/mountinfo). */
export function mountPoints(): string[] {
    return fs
        .readFileSync("/proc/self/mountinfo", "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => l.split(" ")[4].replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
}

/** Writes files into the mounted overlay (paths relative to the host's /). */
export function writeHostFiles(dir: string, files: Record<string, string>): void {
    const merged = hostPaths(dir).merged;
    for (const [file, content] of Object.entries(files)) {
        const target = path.join(merged, file);
        fs.mkdirSync(path.dirname(target), { recursive: true });
        fs.rmSync(target, { force: true }); // may be a symlink in the root filesystem
        fs.writeFileSync(target, content, { mode: 0o644 });
    }
}

/** Starts the detached supervisor of a host (its overlay must be mounted); returns its process. */
export function startSupervisor(host: HostState): ProcessRef {
    const p = hostPaths(host.dir);
    const dirs = ensureCgroup(host.cgroup);
    const script = renderSupervisor({
        name: host.name,
        cgroupDirs: dirs,
        nspawn: nspawnArgv({ name: host.name, rootDir: p.merged, netns: host.netns, uuid: host.uuid }),
        nspawnPidFile: p.nspawnPidFile,
    });
    fs.writeFileSync(p.supervisorScript, script, { mode: 0o755 });
    fs.rmSync(p.nspawnPidFile, { force: true });
    const log = fs.openSync(p.consoleLog, "a");
    try {
        // detached: a new session without terminal, which outlives this Node process
        const child = spawn("bash", [p.supervisorScript], { detached: true, stdio: ["ignore", log, log] });
        child.unref();
        if (child.pid === undefined) throw new Error(`cannot start the supervisor of host ${host.name}`);
        return refOf(child.pid);
    } finally {
        fs.closeSync(log);
    }
}

/** PID of the running systemd-nspawn of the host, if any. */
export function nspawnPid(host: HostState): number | undefined {
    try {
        const pid = Number(fs.readFileSync(hostPaths(host.dir).nspawnPidFile, "utf8").trim());
        return pid > 0 && fs.existsSync(`/proc/${pid}`) ? pid : undefined;
    } catch {
        return undefined;
    }
}

/** PID (outer view) of the host's init (systemd, PID 1 inside), if it is running. */
export function initPid(host: HostState): number | undefined {
    const nspawn = nspawnPid(host);
    if (nspawn === undefined) return undefined;
    // nspawn is a child subreaper: the container's PID 1 is its child
    return childPids(nspawn)[0];
}

/**
 * Waits until sshd of the host answers with an SSH banner on port 22, probing from `probeNetns`
 * (a namespace on the host's network: the gateway's).
 */
/**
 * Waits until the host's sshd answers with its banner. The probe runs in the host's own namespace
 * (over loopback), so it works whatever firewall the host's security groups put on its interfaces.
 */
export async function waitForSsh(host: HostState, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        if (!isRunning(host.supervisor)) {
            throw new Error(`host ${host.name} stopped while booting; see ${hostPaths(host.dir).consoleLog}`);
        }
        if (await canConnect({ netns: host.netns, host: host.privateIp, port: 22, timeoutMs: 2000, expectBanner: "SSH-" })) return;
        if (Date.now() > deadline) {
            throw new Error(`sshd of host ${host.name} (${host.privateIp}) not up after ${timeoutMs / 1000} s; see ${hostPaths(host.dir).consoleLog}`);
        }
        await sleep(200);
    }
}

/** Orderly shutdown (SIGTERM to the supervisor, which forwards it to nspawn); hard kill after the timeout. */
export async function shutdownHost(host: HostState, timeoutMs = 30_000): Promise<void> {
    if (signalRef(host.supervisor, "SIGTERM")) {
        if (await waitGone(host.supervisor, timeoutMs)) {
            // nspawn has exited: wait for the container's last processes to leave the cgroup
            if (await waitCgroupEmpty(host, 5_000)) return;
        }
    }
    await killHostProcesses(host);
}

async function waitCgroupEmpty(host: HostState, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (cgroupPids(host.cgroup).length > 0) {
        if (Date.now() > deadline) return false;
        await sleep(100);
    }
    return true;
}

/** Hard stop: SIGKILL the supervisor, nspawn and every process of the container (by cgroup). */
export async function killHostProcesses(host: HostState): Promise<void> {
    signalRef(host.supervisor, "SIGKILL");
    const init = initPid(host);
    if (init !== undefined) {
        try {
            process.kill(init, "SIGKILL"); // ends the whole PID namespace of the container
        } catch {
            /* already gone */
        }
    }
    if (!(await killCgroup(host.cgroup))) {
        throw new Error(`processes of host ${host.name} survive SIGKILL in ${cgroupDirs(host.cgroup).join(", ")}`);
    }
}
