/**
 * What the machine and each host do during a run, sampled from /proc and the
 * hosts' cgroups (read from outside, so sampling costs the hosts nothing):
 *  - CPU per host: its cgroup's cpu.stat usage_usec (cgroup v2, recursive),
 *    or cpuacct.usage where a v1 cpuacct cgroup exists for the host;
 *  - memory per host: memory.usage_in_bytes where a v1 memory cgroup exists
 *    for the host, else the sum of the proportional set size (PSS) of its
 *    processes (shared pages split fairly, so forked workers are not counted
 *    twice; kernel socket buffers are not in it: they show in MemAvailable);
 *  - TCP sockets in use in the host's network namespace (/proc/<pid>/net/sockstat
 *    of one of its processes): on an app node, connections from the load balancer;
 *  - the whole machine: MemAvailable, and busy CPU, so CPU used by anything
 *    outside the bench (other clusters on this machine) is visible;
 *  - the load generators: their CPU and memory (PSS), and their TCP sockets;
 *  - the kernel's memory for sockets: slab (socket, file, epoll structures)
 *    plus TCP buffer pages, machine-wide (the clients' sockets included).
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { cgroupDirs, cgroupPids } from "../../local/procs";
import { parseMeminfo } from "./memoryGuard";

export interface HostRef {
    name: string;
    /** Relative cgroup path of the host (cloud.names.hostCgroup). */
    cgroup: string;
    /** The host's network namespace (a name under /run/netns). */
    netns: string;
}

export interface Sample {
    t: number;
    memAvailable: number;
    /** Busy cores of the whole machine since the previous sample. */
    machineBusyCores: number;
    /** Cores used by the load generators since the previous sample. */
    loadgenCores: number;
    /** Cores used by other local clouds (other sessions' clusters) since the previous sample. */
    otherCloudsCores: number;
    /** The load generators' memory (PSS), on memory samples. */
    loadgenMemBytes?: number;
    /** TCP sockets in use in the load generators' namespaces. */
    loadgenTcpInUse?: number;
    /** Kernel slab + TCP buffer pages, on memory samples. */
    kernelBytes?: number;
    hosts: Record<string, { cpuCores: number; memBytes?: number; tcpInUse?: number; conntrack?: number }>;
}

export interface HostSummary {
    peakCpuCores: number;
    meanCpuCores: number;
    peakMemBytes: number;
    /** Memory at the step's first sample. */
    startMemBytes: number;
    peakTcpInUse: number;
    baselineTcpInUse: number;
    /** Highest netfilter conntrack count (sampled on the load balancer only). */
    peakConntrack?: number;
}

export interface SampleSummary {
    samples: number;
    seconds: number;
    minMemAvailable: number;
    memAvailableAtStart: number;
    meanMachineBusyCores: number;
    meanLoadgenCores: number;
    /** Busy CPU not accounted to the bench's hosts or load generators (other clusters, other tools, unattributed kernel work). */
    meanForeignCores: number;
    /** Of which: other local clouds on this machine. */
    meanOtherCloudsCores: number;
    loadgen: { peakMemBytes: number; peakCpuCores: number };
    /** Share of samples with the machine's CPUs >= 90% busy; the load generators' share of the busy CPU. */
    saturatedShare: number;
    loadgenShareOfBusy: number;
    /** Kernel socket memory (slab + TCP buffers) at the start and at its peak; TCP sockets in use everywhere (hosts and clients) at the start and at their peak. */
    kernel: { startBytes: number; peakBytes: number; startSockets: number; peakSockets: number };
    hosts: Record<string, HostSummary>;
    /** Highest sum of TCP sockets in use over the app nodes, minus its value at the start: requests in flight at the apps. */
    appInFlightPeak: number;
    /** Per sample: seconds since the start, LB TCP sockets, app TCP sockets (sum), LB cores, app cores (sum), load-generator cores, machine busy cores, MemAvailable MiB. */
    timeline: number[][];
    memoryMethod: string;
}

export function readMachineCpu(): { busy: number; total: number } {
    const line = fs.readFileSync("/proc/stat", "utf8").split("\n")[0];
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
}

const CLK_TCK = 100;

/** CPU time of a cgroup in microseconds, from whichever accounting this machine has. */
export function cgroupCpuUsec(relative: string): number | undefined {
    const v1 = path.join("/sys/fs/cgroup/cpuacct", relative, "cpuacct.usage");
    try {
        return Number(fs.readFileSync(v1, "utf8")) / 1000;
    } catch {
        /* no v1 cpuacct cgroup for it */
    }
    for (const dir of cgroupDirs(relative)) {
        try {
            const m = /^usage_usec (\d+)/m.exec(fs.readFileSync(path.join(dir, "cpu.stat"), "utf8"));
            if (m) return Number(m[1]);
        } catch {
            /* not this hierarchy */
        }
    }
    return undefined;
}

/** CPU time of several cgroups together, microseconds (one that has no accounting counts 0). */
export function cgroupsCpuUsec(relatives: string[]): number {
    return relatives.reduce((total, r) => total + (cgroupCpuUsec(r) ?? 0), 0);
}

/**
 * The cgroups (relative paths) of systemd units inside a host: the host's own systemd puts each
 * service in `<host cgroup>/.../system.slice/<unit>.service` (nspawn adds a level, "payload", on
 * some layouts), so they are found by name under the host's subtree.
 */
export function unitCgroups(hostCgroup: string, units: string[]): string[] {
    const wanted = new Set(units.map(u => (u.endsWith(".service") ? u : `${u}.service`)));
    const found: string[] = [];
    const walk = (abs: string, rel: string, depth: number) => {
        let entries: fs.Dirent[];
        try {
            entries = fs.readdirSync(abs, { withFileTypes: true });
        } catch {
            return;
        }
        for (const e of entries) {
            if (!e.isDirectory()) continue;
            if (wanted.has(e.name)) found.push(path.join(rel, e.name));
            else if (depth < 4) walk(path.join(abs, e.name), path.join(rel, e.name), depth + 1);
        }
    };
    const dir = cgroupDirs(hostCgroup).find(d => fs.existsSync(d));
    if (dir) walk(dir, hostCgroup, 0);
    return found;
}

/** CPU time of the other local clouds on this machine (their pycluster-* cgroups), microseconds. */
export function otherCloudsCpuUsec(own: string[]): number {
    let total = 0;
    for (const root of ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]) {
        let names: string[];
        try {
            names = fs.readdirSync(root).filter(n => n.startsWith("pycluster-") && !own.includes(n));
        } catch {
            continue;
        }
        total += cgroupsCpuUsec(names);
        if (names.length > 0 || fs.existsSync(path.join(root, "cgroup.procs"))) break;
    }
    return total;
}

/** Kernel memory for sockets, machine-wide: slab plus the TCP buffer pages (/proc/net/sockstat "mem"). */
export function kernelSocketBytes(): number {
    const slab = /^Slab:\s+(\d+) kB/m.exec(fs.readFileSync("/proc/meminfo", "utf8"));
    const tcp = /^TCP:.* mem (\d+)/m.exec(fs.readFileSync("/proc/net/sockstat", "utf8"));
    return (slab ? Number(slab[1]) * 1024 : 0) + (tcp ? Number(tcp[1]) * 4096 : 0);
}

/** TCP sockets in use in the network namespaces of `pids` (each namespace counted once). */
export function tcpInUseOfPids(pids: number[]): number {
    const seen = new Set<string>();
    let total = 0;
    for (const pid of pids) {
        try {
            const ns = fs.readlinkSync(`/proc/${pid}/ns/net`);
            if (seen.has(ns)) continue;
            seen.add(ns);
            const m = /^TCP: inuse (\d+)/m.exec(fs.readFileSync(`/proc/${pid}/net/sockstat`, "utf8"));
            if (m) total += Number(m[1]);
        } catch {
            /* exited meanwhile */
        }
    }
    return total;
}

export function cgroupMemoryBytes(relative: string): { bytes: number; method: string } {
    try {
        const bytes = Number(fs.readFileSync(path.join("/sys/fs/cgroup/memory", relative, "memory.usage_in_bytes"), "utf8"));
        return { bytes, method: "cgroup v1 memory.usage_in_bytes" };
    } catch {
        /* no v1 memory cgroup for it: sum the processes */
    }
    let pss = 0;
    for (const pid of cgroupPids(relative)) {
        try {
            const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
            if (m) pss += Number(m[1]) * 1024;
        } catch {
            /* gone meanwhile, or a kernel thread */
        }
    }
    return { bytes: pss, method: "sum of process PSS (smaps_rollup)" };
}

/** A process of the host that lives in its network namespace (the cgroup also holds the supervisor, which does not). */
const netnsPid = new Map<string, number>();

function pidInNetns(h: HostRef): number | undefined {
    const cached = netnsPid.get(h.netns);
    let inode: number;
    try {
        inode = fs.statSync(`/run/netns/${h.netns}`).ino;
    } catch {
        return undefined;
    }
    const matches = (pid: number) => {
        try {
            return fs.readlinkSync(`/proc/${pid}/ns/net`) === `net:[${inode}]`;
        } catch {
            return false;
        }
    };
    if (cached !== undefined && matches(cached)) return cached;
    const pid = cgroupPids(h.cgroup).find(matches);
    if (pid !== undefined) netnsPid.set(h.netns, pid);
    return pid;
}

/** "TCP: inuse N" of the host's network namespace. */
export function tcpInUse(h: HostRef): number | undefined {
    const pid = pidInNetns(h);
    if (pid === undefined) return undefined;
    try {
        const m = /^TCP: inuse (\d+)/m.exec(fs.readFileSync(`/proc/${pid}/net/sockstat`, "utf8"));
        return m ? Number(m[1]) : undefined;
    } catch {
        netnsPid.delete(h.netns);
        return undefined;
    }
}

/**
 * Connections tracked by netfilter in the host's namespace (the local hosts
 * enforce security groups with nftables, so every connection has an entry;
 * the table is capped by the machine-wide nf_conntrack_max).
 */
export function conntrackCount(h: HostRef): number | undefined {
    const r = spawnSync("ip", ["netns", "exec", h.netns, "cat", "/proc/sys/net/netfilter/nf_conntrack_count"], { encoding: "utf8" });
    const n = Number(r.stdout.trim());
    return r.status === 0 && r.stdout.trim() !== "" && Number.isFinite(n) ? n : undefined;
}

export class Sampler {
    private timer?: NodeJS.Timeout;
    private samples: Sample[] = [];
    private prevCpu = new Map<string, number>();
    private prevMachine = readMachineCpu();
    private prevLoadgen = 0;
    private prevOthers = 0;
    private prevT = Date.now();
    private tick = 0;
    private memoryMethod = "";

    constructor(
        private readonly hosts: HostRef[],
        private readonly appHostNames: string[],
        private readonly loadgenCgroup: string,
        /** Top-level cgroup names that are the bench's own (its cloud, its load generators). */
        private readonly ownCgroups: string[],
        private readonly cpus: number,
        private readonly memEveryTicks = 3,
    ) {}

    start(intervalMs = 1000): void {
        this.samples = [];
        this.prevMachine = readMachineCpu();
        this.prevLoadgen = cgroupCpuUsec(this.loadgenCgroup) ?? 0;
        this.prevOthers = otherCloudsCpuUsec(this.ownCgroups);
        this.prevT = Date.now();
        for (const h of this.hosts) this.prevCpu.set(h.name, cgroupCpuUsec(h.cgroup) ?? 0);
        this.take(true);
        this.timer = setInterval(() => this.take(false), intervalMs);
    }

    /** The latest TCP in-use count per host (for cooldown checks). */
    static tcpNow(hosts: HostRef[]): Record<string, number> {
        const out: Record<string, number> = {};
        for (const h of hosts) out[h.name] = tcpInUse(h) ?? 0;
        return out;
    }

    private take(first: boolean): void {
        const now = Date.now();
        const dt = Math.max(0.001, (now - this.prevT) / 1000);
        const machine = readMachineCpu();
        const machineBusyCores = first ? 0 : (machine.busy - this.prevMachine.busy) / CLK_TCK / dt;
        const loadgen = cgroupCpuUsec(this.loadgenCgroup) ?? 0;
        const loadgenCores = first ? 0 : (loadgen - this.prevLoadgen) / 1e6 / dt;
        const others = otherCloudsCpuUsec(this.ownCgroups);
        const otherCloudsCores = first ? 0 : Math.max(0, (others - this.prevOthers) / 1e6 / dt);
        const withMem = first || this.tick % this.memEveryTicks === 0;
        const hosts: Sample["hosts"] = {};
        for (const h of this.hosts) {
            const usec = cgroupCpuUsec(h.cgroup) ?? 0;
            const cpuCores = first ? 0 : (usec - (this.prevCpu.get(h.name) ?? usec)) / 1e6 / dt;
            this.prevCpu.set(h.name, usec);
            const entry: Sample["hosts"][string] = { cpuCores, tcpInUse: tcpInUse(h) };
            if (!this.appHostNames.includes(h.name)) entry.conntrack = conntrackCount(h);
            if (withMem) {
                const m = cgroupMemoryBytes(h.cgroup);
                entry.memBytes = m.bytes;
                this.memoryMethod = m.method;
            }
            hosts[h.name] = entry;
        }
        const memAvailable = parseMeminfo(fs.readFileSync("/proc/meminfo", "utf8")).availableBytes;
        const loadgenPids = cgroupPids(this.loadgenCgroup);
        const sample: Sample = { t: now, memAvailable, machineBusyCores, loadgenCores, otherCloudsCores, hosts, loadgenTcpInUse: tcpInUseOfPids(loadgenPids) };
        if (withMem) {
            sample.loadgenMemBytes = cgroupMemoryBytes(this.loadgenCgroup).bytes;
            sample.kernelBytes = kernelSocketBytes();
        }
        this.samples.push(sample);
        this.prevMachine = machine;
        this.prevLoadgen = loadgen;
        this.prevOthers = others;
        this.prevT = now;
        this.tick++;
    }

    stop(): SampleSummary {
        if (this.timer) clearInterval(this.timer);
        this.timer = undefined;
        this.take(false);
        return summarize(this.samples, this.hosts.map(h => h.name), this.appHostNames, this.memoryMethod, this.cpus);
    }
}

/** Peaks and means over samples (the first sample only sets baselines). Pure. */
export function summarize(samples: Sample[], hostNames: string[], appHostNames: string[], memoryMethod: string, cpus: number): SampleSummary {
    const rest = samples.slice(1);
    const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
    const hosts: Record<string, HostSummary> = {};
    for (const name of hostNames) {
        const cpu = rest.map(s => s.hosts[name]?.cpuCores ?? 0);
        hosts[name] = {
            peakCpuCores: Math.max(0, ...cpu),
            meanCpuCores: mean(cpu),
            peakMemBytes: Math.max(0, ...samples.map(s => s.hosts[name]?.memBytes ?? 0)),
            startMemBytes: samples[0]?.hosts[name]?.memBytes ?? 0,
            peakTcpInUse: Math.max(0, ...samples.map(s => s.hosts[name]?.tcpInUse ?? 0)),
            baselineTcpInUse: samples[0]?.hosts[name]?.tcpInUse ?? 0,
            peakConntrack: samples.some(s => s.hosts[name]?.conntrack !== undefined) ? Math.max(...samples.map(s => s.hosts[name]?.conntrack ?? 0)) : undefined,
        };
    }
    const appSum = (s: Sample) => appHostNames.reduce((a, n) => a + (s.hosts[n]?.tcpInUse ?? 0), 0);
    const appInFlightPeak = samples.length ? Math.max(0, Math.max(...samples.map(appSum)) - appSum(samples[0])) : 0;
    const hostCores = rest.map(s => hostNames.reduce((a, n) => a + (s.hosts[n]?.cpuCores ?? 0), 0));
    const foreign = rest.map((s, i) => Math.max(0, s.machineBusyCores - hostCores[i] - s.loadgenCores));
    const sockets = (s: Sample) => hostNames.reduce((a, n) => a + (s.hosts[n]?.tcpInUse ?? 0), 0) + (s.loadgenTcpInUse ?? 0);
    const kernelSamples = samples.filter(s => s.kernelBytes !== undefined);
    const meanBusy = mean(rest.map(s => s.machineBusyCores));
    return {
        samples: samples.length,
        seconds: samples.length > 1 ? (samples[samples.length - 1].t - samples[0].t) / 1000 : 0,
        minMemAvailable: Math.min(...samples.map(s => s.memAvailable)),
        memAvailableAtStart: samples[0]?.memAvailable ?? 0,
        meanMachineBusyCores: mean(rest.map(s => s.machineBusyCores)),
        meanLoadgenCores: mean(rest.map(s => s.loadgenCores)),
        meanForeignCores: mean(foreign),
        meanOtherCloudsCores: mean(rest.map(s => s.otherCloudsCores)),
        loadgen: { peakMemBytes: Math.max(0, ...samples.map(s => s.loadgenMemBytes ?? 0)), peakCpuCores: Math.max(0, ...rest.map(s => s.loadgenCores)) },
        saturatedShare: rest.length ? rest.filter(s => s.machineBusyCores >= 0.9 * cpus).length / rest.length : 0,
        loadgenShareOfBusy: meanBusy > 0 ? mean(rest.map(s => s.loadgenCores)) / meanBusy : 0,
        kernel: {
            startBytes: kernelSamples[0]?.kernelBytes ?? 0,
            peakBytes: Math.max(0, ...kernelSamples.map(s => s.kernelBytes!)),
            startSockets: samples.length ? sockets(samples[0]) : 0,
            peakSockets: Math.max(0, ...samples.map(sockets)),
        },
        hosts,
        appInFlightPeak,
        timeline: samples.map(s => {
            const apps = appHostNames.reduce((a, n) => a + (s.hosts[n]?.cpuCores ?? 0), 0);
            const others = hostNames.filter(n => !appHostNames.includes(n));
            const lbTcp = others.reduce((a, n) => a + (s.hosts[n]?.tcpInUse ?? 0), 0);
            const lbCpu = others.reduce((a, n) => a + (s.hosts[n]?.cpuCores ?? 0), 0);
            const r2 = (x: number) => Math.round(x * 100) / 100;
            return [r2((s.t - samples[0].t) / 1000), lbTcp, appSum(s), r2(lbCpu), r2(apps), r2(s.loadgenCores), r2(s.machineBusyCores), Math.round(s.memAvailable / 1048576)];
        }),
        memoryMethod,
    };
}
