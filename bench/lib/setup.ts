/**
 * The start of a bench run: the machine's prerequisites, the result record
 * with what was measured where, and the bench stack stood up into the run's
 * context (hosts, namespaces, kernel defaults, memory reserve).
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { MEASURED_RATES } from "../../config/rates";
import { localStackConfig, localUp, UpResult } from "../../local/stack";
import { checkInterrupted, Ctx, log } from "./context";
import { loadFixtures } from "./configs";
import { ClusterAccess, onHost } from "./hosts";
import { DEFAULT_BYTES_PER_APP_WORKER, DEFAULT_BYTES_PER_REQUEST, MemInfo, MiB, reserveBytes } from "./memoryGuard";
import { BenchOptions } from "./options";
import { BenchResult } from "./results";

export function prerequisites(o: BenchOptions): void {
    if (process.getuid?.() !== 0) throw new Error("the bench needs root (network namespaces, cgroups, local hosts)");
    if (spawnSync("wrk", ["--version"]).error) throw new Error("wrk is missing: apt-get install wrk");
    if (spawnSync("h2load", ["--version"]).error) throw new Error("h2load is missing: apt-get install nghttp2-client");
    const nofile = Number(spawnSync("bash", ["-c", "ulimit -n"], { encoding: "utf8" }).stdout.trim());
    if (nofile < o.chunk + 64) throw new Error(`open-file limit ${nofile} is below --chunk ${o.chunk} + 64: lower --chunk`);
}

/** Kernel defaults of a fresh network namespace, for the keys the program sets. */
function kernelDefaults(keys: string[]): Record<string, string> {
    const script = keys.map(k => `printf '%s=%s\\n' '${k}' "$(cat /proc/sys/${k.replace(/\./g, "/")} 2>/dev/null | tr '\\t' ' ')"`).join("\n");
    const r = spawnSync("unshare", ["--net", "bash", "-c", script], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`cannot read kernel defaults in a fresh namespace: ${r.stderr}`);
    const out: Record<string, string> = {};
    for (const line of r.stdout.split("\n")) {
        const eq = line.indexOf("=");
        if (eq > 0 && line.slice(eq + 1) !== "") out[line.slice(0, eq)] = line.slice(eq + 1);
        else if (eq > 0 && line.startsWith("net.ipv4.ip_local_reserved_ports")) out[line.slice(0, eq)] = "";
    }
    return out;
}

/** Which program was measured: the git commit (and changed files) of the checkout, or a snapshot's .program-ref. */
function programRef(): string {
    const root = path.join(__dirname, "..", "..");
    const git = spawnSync("git", ["-C", root, "rev-parse", "HEAD"], { encoding: "utf8" });
    if (git.status === 0) {
        const dirty = spawnSync("git", ["-C", root, "status", "--porcelain", "--untracked-files=no"], { encoding: "utf8" }).stdout.split("\n").filter(Boolean); // not trim(): " M path" starts with a space
        return `${git.stdout.trim()}${dirty.length ? ` + uncommitted changes to ${dirty.map(l => l.slice(3)).join(", ")}` : ""}`;
    }
    try {
        return `snapshot of ${fs.readFileSync(path.join(root, ".program-ref"), "utf8").trim()} (+ this bench)`;
    } catch {
        return "unknown";
    }
}

function otherClouds(own: string): string[] {
    try {
        return fs.readdirSync("/var/lib/pycluster-local").filter(d => d !== own && fs.existsSync(`/var/lib/pycluster-local/${d}/state.json`));
    } catch {
        return [];
    }
}

/** The run's result record as it starts: the command, the program, the machine, the options; filled in as the run goes. */
export function newBenchResult(o: BenchOptions, startedAt: Date, mem0: MemInfo): BenchResult {
    return {
        version: 2,
        startedAt: startedAt.toISOString(),
        finishedAt: "",
        command: ["npx tsx bench/bench.ts", ...process.argv.slice(2)].join(" "),
        program: programRef(),
        machine: {
            cpus: os.cpus().length,
            memTotalMiB: Math.round(mem0.totalBytes / MiB),
            kernel: os.release(),
            loadAvgAtStart: os.loadavg().map(x => x.toFixed(2)).join(" "),
            otherClouds: [],
        },
        options: o,
        stack: { name: o.stack, set: o.set, targetConcurrency: 0 },
        bytesPerRequestLearned: DEFAULT_BYTES_PER_REQUEST,
        ramp: { rate: 0, source: "not started" },
        modelRates: MEASURED_RATES,
        configs: [],
        targets: [],
    };
}

/**
 * Why a pair cannot run these configurations, if it cannot: seed and stock replace nginx's
 * configuration on the holder only, and their nginx has no status listener for the pair's health
 * check, so keepalived would move the address to the other LB in the middle of the run. Pure.
 */
export function pairConfigsProblem(lbCount: number, configs: readonly string[]): string | undefined {
    const others = configs.filter(c => c !== "generated");
    if (lbCount !== 2 || others.length === 0) return undefined;
    return `lbCount 2: the pair is benched with the generated configuration only (${others.join(" and ")} would replace nginx's configuration on the holder alone); run with --configs generated`;
}

/** The one LB that answers for the pair's address (the local cloud asks ARP, as the router would). */
export async function pairHolder(up: UpResult, vip: string): Promise<string> {
    const names = await up.cloud.whoAnswers(vip, 800);
    if (names.length !== 1) throw new Error(`the pair: ${names.length === 0 ? "no LB" : names.join(" and ")} answer${names.length === 1 ? "s" : ""} for ${vip}, need exactly one`);
    return names[0];
}

/** Stands the bench stack up and gathers what the run needs about it; records the stack and the other local clouds in `result`. */
export async function standUp(o: BenchOptions, result: BenchResult, mem0: MemInfo, script: string): Promise<Ctx> {
    const cfg = localStackConfig({ stack: o.stack, set: o.set });
    const refused = pairConfigsProblem(cfg.lb.count, o.configs);
    if (refused) throw new Error(refused);
    log(`standing the ${o.stack} stack up (${Object.keys(o.set).length ? `set ${JSON.stringify(o.set)}` : "stack file as is"})`);
    const up = await localUp({ stack: o.stack, set: o.set, clients: o.clients, log: l => log(`  ${l}`) });
    checkInterrupted();
    result.stack.targetConcurrency = cfg.targetConcurrency;
    result.stack.lbCount = cfg.lb.count;
    result.machine.otherClouds = otherClouds(up.cloud.prefix);
    log(`up in ${(up.wallMs / 1000).toFixed(1)} s (${up.remoteExecutions.length} remote steps); other local clouds on this machine: ${result.machine.otherClouds.join(", ") || "none"}`);
    const access: ClusterAccess = { lbPublicIp: up.outputs.lbPublicIp, sshKeyFile: up.sshKeyFile, user: cfg.platform.sshUser, dialErrorLimit: 3, perDialTimeout: 10 };
    const appIps = up.outputs.appPrivateIps as string[];
    const hostInfos = up.cloud.hosts();
    // The load balancer that takes the load: the only one, or the pair's holder of the address.
    const lbVip = up.outputs.lbVip as string | undefined;
    const lbNames = ((up.outputs.lbs as { name: string }[] | undefined) ?? []).map(l => l.name);
    const holder = lbVip ? await pairHolder(up, lbVip) : undefined;
    const lbInfo = holder ? hostInfos.find(h => h.name === holder) : hostInfos.find(h => h.privateIp === cfg.network.lbIp);
    if (!lbInfo) throw new Error("no load balancer host in the cloud");
    const backups = lbNames.filter(n => n !== lbInfo.name);
    if (lbVip) log(`the pair: ${lbInfo.name} holds the address (${lbVip}); ${backups.join(", ")} is the backup`);
    result.stack.lbHosts = [lbInfo.name, ...backups];
    const appVcpus = Number((await onHost(access, appIps[0], "nproc")).trim());
    const sysctlKeys = ["net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog", "net.core.netdev_max_backlog", "net.ipv4.ip_local_port_range", "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_tw_reuse", "net.ipv4.tcp_fin_timeout", "fs.file-max", "fs.nr_open"];
    const clientNetns = up.cloud.clients.map(c => c.netns);
    // The load generators' own namespaces: the whole port range for outgoing connections.
    for (const ns of clientNetns) spawnSync("ip", ["netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535"]);
    const ctx: Ctx = {
        o,
        up,
        cfg,
        access,
        facts: { lbPublicIp: access.lbPublicIp, lbPrivateIp: lbInfo.privateIp, appIps, appVcpus, kernelDefaults: kernelDefaults(sysctlKeys) },
        fixtures: loadFixtures(),
        hosts: hostInfos.map(h => ({ name: h.name, cgroup: up.cloud.names.hostCgroup(h.name), netns: h.netns })),
        lbHost: lbInfo.name,
        lbVip,
        appHosts: hostInfos.filter(h => appIps.includes(h.privateIp)).map(h => h.name),
        lbNetns: lbInfo.netns,
        clientNetns,
        script,
        reserve: reserveBytes(mem0.totalBytes, o.memReserveMiB),
        bytesPerRequest: DEFAULT_BYTES_PER_REQUEST,
        bytesPerAppWorker: DEFAULT_BYTES_PER_APP_WORKER,
        appWorkersNow: cfg.gunicorn.workers * appIps.length,
        rampRate: o.rampRate ?? 0,
    };
    log(`memory: ${(mem0.availableBytes / 1024 / MiB).toFixed(1)} GiB available at start, reserve ${(ctx.reserve / 1024 / MiB).toFixed(1)} GiB; kernel defaults of a fresh namespace: ${JSON.stringify(ctx.facts.kernelDefaults)}`);
    return ctx;
}
