/**
 * The bench cluster's hosts over SSH, as the program reaches them (the load
 * balancer directly, app nodes through it): carrying out a configuration
 * plan, comparing files with what a plan says, and reading back the settings
 * actually in effect (for the capacity model's prediction).
 */
import { createHash } from "crypto";
import { ClusterAccess, onClusterHost } from "../../local/clusterSsh";
import { CapacityInputs } from "../../config/capacity";
import { HostPlan, planScript } from "./configs";
import { shellQuote as sq } from "../../lib/shell";

export type { ClusterAccess } from "../../local/clusterSsh";
export const onHost = onClusterHost;

export interface AppliedPlan {
    host: string;
    /** Kernel keys the host refused (as on the local hosts, which share the machine's kernel). */
    refused: string[];
}

export async function applyPlan(a: ClusterAccess, plan: HostPlan): Promise<AppliedPlan> {
    const out = await onHost(a, plan.host, "sudo bash -s", planScript(plan));
    if (!/^applied$/m.test(out)) throw new Error(`on ${plan.host}: the plan did not finish:\n${out}`);
    const refused = [...out.matchAll(/^sysctl-refused (\S+)$/gm)].map(m => m[1]);
    return { host: plan.host, refused };
}

export const sha256 = (s: string | Buffer) => createHash("sha256").update(s).digest("hex");

/** Files of the plan whose content on the host differs from the plan (or are missing). */
export async function differingFiles(a: ClusterAccess, plan: HostPlan): Promise<string[]> {
    const paths = plan.files.map(f => f.path);
    const out = await onHost(a, plan.host, `sudo sha256sum ${paths.map(sq).join(" ")} 2>/dev/null || true`);
    const onHostSums = new Map<string, string>();
    for (const line of out.split("\n")) {
        const m = /^([0-9a-f]{64})\s+(.+)$/.exec(line.trim());
        if (m) onHostSums.set(m[2], m[1]);
    }
    return plan.files.filter(f => onHostSums.get(f.path) !== sha256(f.content)).map(f => f.path);
}

/** The load balancer's nginx as it runs: from `nginx -T`, its worker processes and their limits. */
export interface LbEffective {
    workerProcesses: number;
    workerConnections: number;
    workerOpenFiles: number;
    portRange: [number, number];
    reservedPorts: number;
    somaxconn: number;
    /** The smallest upstream max_conns (what one app node is given); absent = none set (seed, stock). */
    upstreamMaxConns?: number;
}

export interface AppEffective {
    host: string;
    workers: number;
    workerClass: string;
    workerConnections: number;
    backlog: number;
    timeout: number;
    workerOpenFiles: number;
    somaxconn: number;
}

/** Counts the ports of a ip_local_reserved_ports list ("8000,8080-8090") inside [lo, hi]. */
export function reservedInRange(list: string, lo: number, hi: number): number {
    let n = 0;
    for (const part of list.split(",").map(s => s.trim()).filter(Boolean)) {
        const [a, b] = part.split("-").map(Number);
        const from = Math.max(a, lo);
        const to = Math.min(b ?? a, hi);
        if (to >= from) n += to - from + 1;
    }
    return n;
}

const LB_PROBE = `set -e
conf=$(sudo nginx -T 2>/dev/null || true)
printf '%s\\n' "$conf" | grep -E '^\\s*(worker_processes|worker_connections|worker_rlimit_nofile)\\b' || true
echo "nginx_workers $(pgrep -c -f '^nginx: worker' || true)"
w=$(pgrep -f '^nginx: worker' | head -1)
echo "worker_nofile $(awk '/Max open files/ {print $4}' /proc/$w/limits)"
echo "port_range $(cat /proc/sys/net/ipv4/ip_local_port_range)"
echo "reserved_ports $(cat /proc/sys/net/ipv4/ip_local_reserved_ports)"
echo "somaxconn $(cat /proc/sys/net/core/somaxconn)"
printf '%s\\n' "$conf" | grep -oE 'max_conns=[0-9]+' | sed 's/=/ /' || true
`;

export function parseLbProbe(out: string, cpus: number): LbEffective {
    const num = (re: RegExp, fallback?: number) => {
        const m = re.exec(out);
        if (!m) {
            if (fallback !== undefined) return fallback;
            throw new Error(`load balancer probe: no ${re} in:\n${out}`);
        }
        return m[1] === "auto" ? cpus : Number(m[1]);
    };
    const range = /^port_range\s+(\d+)\s+(\d+)/m.exec(out);
    if (!range) throw new Error(`load balancer probe: no port range in:\n${out}`);
    const maxConns = [...out.matchAll(/^max_conns (\d+)$/gm)].map(m => Number(m[1]));
    return {
        workerProcesses: num(/^nginx_workers (\d+)/m),
        workerConnections: num(/^\s*worker_connections\s+(\d+);/m, 512),
        workerOpenFiles: num(/^worker_nofile (\d+)/m),
        portRange: [Number(range[1]), Number(range[2])],
        reservedPorts: reservedInRange((/^reserved_ports ?(.*)$/m.exec(out)?.[1] ?? "").trim(), Number(range[1]), Number(range[2])),
        somaxconn: num(/^somaxconn (\d+)/m),
        ...(maxConns.length ? { upstreamMaxConns: Math.min(...maxConns) } : {}),
    };
}

/**
 * On an app node: the gunicorn master's own command line re-run with
 * --print-config (as the app user, in its working directory: the settings
 * gunicorn really uses, from its config file and flags), its live workers and
 * their open-file limit.
 */
function appProbe(app: string): string {
    const unit = sq(`${app}.service`);
    return `set -e
pid=$(systemctl show -p MainPID --value ${unit})
cwd=$(systemctl show -p WorkingDirectory --value ${unit})
cmd=$(systemctl show -p ExecStart --value ${unit} | sed -E 's/.*argv\\[\\]=([^;]*) ;.*/\\1/')
echo "workers_live $(cat /proc/$pid/task/$pid/children | wc -w)"
w=$(cat /proc/$pid/task/$pid/children | awk '{print $1}')
echo "worker_nofile $(sudo awk '/Max open files/ {print $4}' /proc/$w/limits)"
echo "somaxconn $(cat /proc/sys/net/core/somaxconn)"
sudo -u ${sq(app)} bash -c "cd \${cwd:-/} && $cmd --print-config" 2>/dev/null | grep -E '^(worker_class|worker_connections|backlog|timeout|workers)\\s'
`;
}

export function parseAppProbe(host: string, out: string): AppEffective {
    const setting = (k: string) => new RegExp(`^${k}\\s+= (.*)$`, "m").exec(out)?.[1]?.trim();
    const line = (k: string) => new RegExp(`^${k} (\\d+)`, "m").exec(out)?.[1];
    const workerClass = (setting("worker_class") ?? "sync").replace(/^['"]|['"]$/g, "");
    const live = Number(line("workers_live"));
    if (!(live > 0)) throw new Error(`app probe on ${host}: no live gunicorn workers:\n${out}`);
    return {
        host,
        workers: live,
        workerClass,
        workerConnections: Number(setting("worker_connections") ?? 1000),
        backlog: Number(setting("backlog") ?? 2048),
        timeout: Number(setting("timeout") ?? 30),
        workerOpenFiles: Number(line("worker_nofile")),
        somaxconn: Number(line("somaxconn")),
    };
}

export async function probeLb(a: ClusterAccess, cpus: number): Promise<LbEffective> {
    return parseLbProbe(await onHost(a, "lb", LB_PROBE), cpus);
}

export async function probeApp(a: ClusterAccess, host: string, app: string): Promise<AppEffective> {
    return parseAppProbe(host, await onHost(a, host, appProbe(app)));
}

/**
 * Capacity model inputs from the settings in effect. A sync worker holds one
 * request at a time; gevent workers hold worker_connections; the effective
 * accept backlog is the smaller of the app's and the kernel's.
 */
export function effectiveCapacityInputs(lb: LbEffective, apps: AppEffective[]): CapacityInputs {
    const minOf = (f: (x: AppEffective) => number) => Math.min(...apps.map(f));
    const gevent = apps.every(x => /gevent/i.test(x.workerClass));
    const sync = apps.every(x => x.workerClass === "sync" || /SyncWorker/.test(x.workerClass));
    return {
        lbWorkers: lb.workerProcesses,
        lbWorkerConnections: lb.workerConnections,
        lbWorkerOpenFiles: lb.workerOpenFiles,
        lbEphemeralPorts: lb.portRange[1] - lb.portRange[0] + 1 - lb.reservedPorts,
        appNodes: apps.length,
        appWorkersPerNode: minOf(x => x.workers),
        appWorkerConnections: gevent ? minOf(x => x.workerConnections) : sync ? 1 : undefined,
        appWorkerOpenFiles: minOf(x => x.workerOpenFiles),
        appBacklog: minOf(x => Math.min(x.backlog, x.somaxconn)),
        appNodeConnections: lb.upstreamMaxConns,
    };
}
