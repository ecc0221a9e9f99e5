/**
 * The throughput runs of a configuration: closed-loop requests/s through the
 * LB and straight to an app node, the paced run for the LB's added latency,
 * and (generated only) what monitoring costs on this run's cluster.
 */
import { classifyErrors } from "./classify";
import { checkInterrupted, Ctx, log } from "./context";
import { onHost } from "./hosts";
import { finish, FinishedWrk, startWrk } from "./loadgen";
import { exporterUnits, measureMonitoringCost, MonitoringCost } from "./monitoringCost";
import { ConfigName } from "./options";
import { ThroughputResult, ThroughputRun } from "./results";
import { WrkMode } from "./wrk";
import { cgroupsCpuUsec, unitCgroups } from "./sampler";
import { waitQuiet } from "./housekeeping";

/** Runs one wrk to completion and returns its result (or why there is none). */
async function runWrk(ctx: Ctx, label: string, netns: string, url: string, mode: WrkMode, connections: number, seconds: number, param = 0, timeoutS = 10): Promise<FinishedWrk> {
    const threads = connections >= 2 && connections % 2 === 0 && mode !== "once" ? 2 : 1;
    const p = startWrk(label, netns, { url, connections, threads, durationS: seconds, timeoutS, scriptPath: ctx.script, mode, path: new URL(url).pathname + new URL(url).search, param });
    return finish(p);
}

export function toRun(target: "lb" | "direct", url: string, connections: number, seconds: number, f: FinishedWrk): ThroughputRun {
    const r = f.result;
    // A run with no answered request is no figure: say why instead of reporting 0 req/s and no error
    // (seen once, the paced run straight to an app node after a 100,000 step through the pair).
    if (!r || r.requests === 0) {
        log(`  ${f.label}: no result: ${r ? `wrk completed no request in ${seconds} s (${JSON.stringify(r.errors)})` : f.failure}`);
        return { target, url, connections, seconds, requestsPerSecond: 0, errors: -1 };
    }
    const e = classifyErrors({ expected: 0, codes: r.codes ?? {}, errors: r.errors });
    return {
        target,
        url,
        connections,
        seconds,
        requestsPerSecond: r.requestsPerSecond,
        p50Ms: r.latencyUs ? r.latencyUs.p50 / 1000 : undefined,
        p99Ms: r.latencyUs ? r.latencyUs.p99 / 1000 : undefined,
        errors: e.total,
    };
}

/** Requests/s at moderate concurrency through the LB and straight to one app node (from the LB's namespace), then a paced run for the LB's added p50. */
export async function throughput(ctx: Ctx, config: ConfigName): Promise<ThroughputResult | undefined> {
    const o = ctx.o;
    if (o.throughputConnections === 0 || o.throughputSeconds === 0) return undefined;
    const lbUrl = `https://${ctx.facts.lbPublicIp}/`;
    const directUrl = `http://${ctx.facts.appIps[0]}:${ctx.cfg.app.port}/`;
    const closedLoop: ThroughputRun[] = [];
    const paced: ThroughputRun[] = [];
    for (const [target, netns, url] of [["lb", ctx.clientNetns[0], lbUrl], ["direct", ctx.lbNetns, directUrl]] as const) {
        checkInterrupted();
        const f = await runWrk(ctx, `throughput-${target}`, netns, url, "loop", o.throughputConnections, o.throughputSeconds);
        closedLoop.push(toRun(target, url, o.throughputConnections, o.throughputSeconds, f));
    }
    if (o.latencyConnections > 0) {
        for (const [target, netns, url] of [["lb", ctx.clientNetns[0], lbUrl], ["direct", ctx.lbNetns, directUrl]] as const) {
            checkInterrupted();
            const f = await runWrk(ctx, `paced-${target}`, netns, url, "paced", o.latencyConnections, o.throughputSeconds, o.latencyPauseMs);
            paced.push(toRun(target, url, o.latencyConnections, o.throughputSeconds, f));
        }
    }
    const lbP50 = paced.find(r => r.target === "lb")?.p50Ms;
    const directP50 = paced.find(r => r.target === "direct")?.p50Ms;
    const result: ThroughputResult = { closedLoop, paced, lbAddedP50Ms: lbP50 !== undefined && directP50 !== undefined ? lbP50 - directP50 : undefined };
    if (config === "generated" && o.monitoringCostRounds > 0) result.monitoringCost = await monitoringCostOf(ctx, lbUrl);
    for (const r of [...closedLoop, ...paced]) {
        log(`  ${r.target.padEnd(6)} ${String(r.connections).padStart(4)} conns: ${r.requestsPerSecond.toFixed(0)} req/s, p50 ${r.p50Ms?.toFixed(2) ?? "-"} ms, errors ${r.errors}`);
    }
    if (result.lbAddedP50Ms !== undefined) log(`  the LB adds ${result.lbAddedP50Ms.toFixed(2)} ms at p50 (paced: ${o.latencyConnections} conns, ${o.latencyPauseMs} ms apart)`);
    return result;
}

/**
 * bench/lib/monitoringCost.ts on this run's cluster: the closed loop through the LB, exporters
 * stopped and started over SSH, the CPU of their units and of every host read from the cgroups
 * outside (which costs the hosts nothing).
 */
async function monitoringCostOf(ctx: Ctx, lbUrl: string): Promise<MonitoringCost> {
    const o = ctx.o;
    const units = exporterUnits(ctx.cfg);
    const hosts: [string, string[]][] = [["lb", units.lb], ...ctx.facts.appIps.map(ip => [ip, units.app] as [string, string[]])];
    const exporterCgroups = ctx.hosts.flatMap(h => unitCgroups(h.cgroup, [...units.lb, ...units.app]));
    return measureMonitoringCost({
        rounds: o.monitoringCostRounds,
        appStatsd: ctx.cfg.monitoring.appStatsd,
        measure: async () => {
            checkInterrupted();
            const f = await runWrk(ctx, "monitoring-cost", ctx.clientNetns[0], lbUrl, "loop", o.throughputConnections, o.throughputSeconds);
            const r = toRun("lb", lbUrl, o.throughputConnections, o.throughputSeconds, f);
            return { requestsPerSecond: r.requestsPerSecond, requests: f.result?.requests ?? 0 };
        },
        // The exporters' cgroups exist only while they run: an "off" run reads 0 for them.
        cpu: exporterCgroups.length > 0 ? () => ({ exportersUsec: cgroupsCpuUsec(exporterCgroups), clusterUsec: cgroupsCpuUsec(ctx.hosts.map(h => h.cgroup)) }) : undefined,
        setExporters: async running => {
            await Promise.all(hosts.map(([host, list]) => onHost(ctx.access, host, `sudo systemctl ${running ? "start" : "stop"} ${list.join(" ")}`)));
        },
        beforeRound: async () => void (await waitQuiet(ctx)),
        log,
    });
}
