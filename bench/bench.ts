/**
 * npm run bench -- [options]     (see bench/README.md and --help)
 *
 * Stands the bench stack up on local hosts (1 load balancer + 4 app nodes),
 * then, on the same hosts, compares the generated configuration with the seed
 * article's and a stock one: N requests held concurrently through the load
 * balancer for each step, a throughput run, the capacity model's prediction
 * against what held. Prints tables, writes bench/results/<timestamp>.json and
 * .svg, and tears the cluster down (unless --keep). Only processes this run
 * started are ended, by PID, also on failure or Ctrl-C.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { capacityModel } from "../config/capacity";
import { MEASURED_RATES } from "../config/rates";
import { defaultWorkerCount } from "../config/catalog";
import { StackConfig } from "../config/types";
import { localDown, localStackConfig, localUp, UpResult } from "../local/stack";
import { classifyErrors } from "./lib/classify";
import { calibrate, rampPlan } from "./lib/calibration";
import { answeredDurationsUs, describeSlots } from "./lib/h2load";
import { skippedStep, stepLine, stepResult } from "./lib/step";
import { ClusterFacts, configPlan, ConfigPlan, Fixtures, loadFixtures } from "./lib/configs";
import { applyPlan, ClusterAccess, differingFiles, effectiveCapacityInputs, onHost, probeApp, probeLb } from "./lib/hosts";
import {
    finish,
    finishH2load,
    FinishedH2load,
    FinishedWrk,
    LOADGEN_CGROUP,
    planProcesses,
    prepareLoadgenCgroup,
    removeLoadgenCgroup,
    runningLoadGenerators,
    startH2load,
    startWrk,
    stopLoadGenerators,
    writeScript,
} from "./lib/loadgen";
import {
    DEFAULT_BYTES_PER_APP_WORKER,
    DEFAULT_BYTES_PER_REQUEST,
    learnBytesPerRequest,
    MiB,
    mustAbort,
    parseMeminfo,
    predictProcesses,
    predictStep,
    reserveBytes,
} from "./lib/memoryGuard";
import { BenchOptions, ConfigName, parseOptions, stepTiming } from "./lib/options";
import { chartInput, fullReport } from "./lib/report";
import { exporterUnits, measureMonitoringCost, MonitoringCost } from "./lib/monitoringCost";
import { BenchResult, Calibration, ConfigResult, evaluateTargets, firstFailure, maxHeld, nextProbe, StepResult, ThroughputResult, ThroughputRun } from "./lib/results";
import { HostRef, readMachineCpu, Sampler, cgroupCpuUsec, cgroupMemoryBytes, otherCloudsCpuUsec } from "./lib/sampler";
import { renderChart } from "./lib/svg";
import { renderLuaScript, WrkMode } from "./lib/wrk";

const log = (line: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);
const sleep = (ms: number) => new Promise<void>(r => setTimeout(r, ms));
const meminfo = () => parseMeminfo(fs.readFileSync("/proc/meminfo", "utf8"));

class Interrupted extends Error {}

/** Everything a run shares. */
interface Ctx {
    o: BenchOptions;
    up: UpResult;
    cfg: StackConfig;
    access: ClusterAccess;
    facts: ClusterFacts;
    fixtures: Fixtures;
    hosts: HostRef[];
    lbHost: string;
    appHosts: string[];
    lbNetns: string;
    clientNetns: string[];
    script: string;
    reserve: number;
    bytesPerRequest: number;
    bytesPerAppWorker: number;
    /** New connections per second every step ramps at (calibrated, or --ramp-rate). */
    rampRate: number;
    /** App workers running now over all nodes (for the next configuration's memory check). */
    appWorkersNow: number;
    applied?: ConfigName;
}

let interrupted: string | undefined;
let stepAbort: string | undefined;

function checkInterrupted(): void {
    if (interrupted) throw new Interrupted(interrupted);
}

function installSignalHandlers(): void {
    let count = 0;
    const onSignal = (sig: NodeJS.Signals) => {
        count++;
        interrupted = `interrupted by ${sig}`;
        log(`${sig}: stopping the load generators this run started (${runningLoadGenerators().join(", ") || "none"}), then cleaning up`);
        void stopLoadGenerators(1000);
        if (count > 1) {
            log("second signal: exiting now (the cluster may be left up: npm run local -- down --stack <stack>)");
            process.exit(130);
        }
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
}

function prerequisites(o: BenchOptions): void {
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
    const root = path.join(__dirname, "..");
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

/** Runs one wrk to completion and returns its result (or why there is none). */
async function runWrk(ctx: Ctx, label: string, netns: string, url: string, mode: WrkMode, connections: number, seconds: number, param = 0, timeoutS = 10): Promise<FinishedWrk> {
    const threads = connections >= 2 && connections % 2 === 0 && mode !== "once" ? 2 : 1;
    const p = startWrk(label, netns, { url, connections, threads, durationS: seconds, timeoutS, scriptPath: ctx.script, mode, path: new URL(url).pathname + new URL(url).search, param });
    return finish(p);
}

function toRun(target: "lb" | "direct", url: string, connections: number, seconds: number, f: FinishedWrk): ThroughputRun {
    const r = f.result;
    if (!r) return { target, url, connections, seconds, requestsPerSecond: 0, errors: -1 };
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
async function throughput(ctx: Ctx, config: ConfigName): Promise<ThroughputResult | undefined> {
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

/** bench/lib/monitoringCost.ts on this run's cluster: the closed loop through the LB, exporters stopped and started over SSH. */
function monitoringCostOf(ctx: Ctx, lbUrl: string): Promise<MonitoringCost> {
    const o = ctx.o;
    const units = exporterUnits(ctx.cfg);
    const hosts: [string, string[]][] = [["lb", units.lb], ...ctx.facts.appIps.map(ip => [ip, units.app] as [string, string[]])];
    return measureMonitoringCost({
        rounds: o.monitoringCostRounds,
        appStatsd: ctx.cfg.monitoring.appStatsd,
        measure: async () => {
            checkInterrupted();
            const f = await runWrk(ctx, "monitoring-cost", ctx.clientNetns[0], lbUrl, "loop", o.throughputConnections, o.throughputSeconds);
            return toRun("lb", lbUrl, o.throughputConnections, o.throughputSeconds, f).requestsPerSecond;
        },
        setExporters: async running => {
            await Promise.all(hosts.map(([host, list]) => onHost(ctx.access, host, `sudo systemctl ${running ? "start" : "stop"} ${list.join(" ")}`)));
        },
        log,
    });
}

/** bench/lib/calibration.ts against this run's cluster. */
function calibrateMachine(ctx: Ctx): Promise<Calibration> {
    const { facts, cfg } = ctx;
    const urls = { lbUrl: `https://${facts.lbPublicIp}/`, directUrl: `http://${facts.appIps[0]}:${cfg.app.port}/` };
    return calibrate({ ...ctx, ...urls, seconds: ctx.o.calibrateSeconds, waitQuiet: () => waitQuiet(ctx), checkInterrupted, log });
}

/** CPU used outside the bench over `ms`, in cores: everything not on its hosts or load generators, and the other local clouds' share of it. */
async function foreignCores(ctx: Ctx, ms: number): Promise<{ foreign: number; otherClouds: number }> {
    const own = [ctx.up.cloud.names.cgroup, LOADGEN_CGROUP];
    const hostsUsec = () => ctx.hosts.reduce((a, h) => a + (cgroupCpuUsec(h.cgroup) ?? 0), 0) + (cgroupCpuUsec(LOADGEN_CGROUP) ?? 0);
    const m0 = readMachineCpu();
    const h0 = hostsUsec();
    const o0 = otherCloudsCpuUsec(own);
    await sleep(ms);
    const m1 = readMachineCpu();
    const h1 = hostsUsec();
    const o1 = otherCloudsCpuUsec(own);
    const s = ms / 1000;
    return { foreign: Math.max(0, (m1.busy - m0.busy) / 100 / s - (h1 - h0) / 1e6 / s), otherClouds: Math.max(0, (o1 - o0) / 1e6 / s) };
}

/** Before a step: wait (up to --quiet-wait) until other work on the machine leaves the CPUs to the bench. */
async function waitQuiet(ctx: Ctx): Promise<{ foreign: number; otherClouds: number; waitedS: number }> {
    const t0 = Date.now();
    const deadline = t0 + ctx.o.quietWaitS * 1000;
    let f = await foreignCores(ctx, 2000);
    let said = false;
    while ((f.foreign > 0.5 || f.otherClouds > 0.2) && Date.now() < deadline) {
        if (!said) log(`  waiting for the machine to quiet down: ${f.foreign.toFixed(2)} cores used outside the bench (other local clouds ${f.otherClouds.toFixed(2)})`);
        said = true;
        checkInterrupted();
        f = await foreignCores(ctx, 3000);
    }
    return { ...f, waitedS: (Date.now() - t0) / 1000 };
}

/**
 * After a failed step: work may still be queued on the hosts (requests nobody
 * waits for any more, held by the app or waiting in a backlog), so the
 * configuration's services are restarted, their queued work dropped, and the
 * next step starts from the state the first one had. A held step leaves
 * nothing behind (every request was answered) and needs no cooldown.
 */
async function restartServices(ctx: Ctx): Promise<void> {
    const unit = `${ctx.cfg.app.name}.service`;
    await Promise.all([
        onHost(ctx.access, "lb", "sudo systemctl restart nginx"),
        ...ctx.facts.appIps.map(ip => onHost(ctx.access, ip, `sudo systemctl kill --signal=SIGKILL ${unit}; sudo systemctl restart ${unit}`)),
    ]);
    await waitAppsReady(ctx);
}

/** Until every app node answers its health URL and runs all the gunicorn workers its configuration asks for. */
async function waitAppsReady(ctx: Ctx, timeoutS = 300): Promise<void> {
    const unit = `${ctx.cfg.app.name}.service`;
    const health = (ip: string) => `http://${ip}:${ctx.cfg.app.port}${ctx.cfg.app.healthPath}`;
    await Promise.all(
        ctx.facts.appIps.map(ip =>
            onHost(
                ctx.access,
                ip,
                `want=$(sudo -u ${ctx.cfg.app.name} bash -c "cd $(systemctl show -p WorkingDirectory --value ${unit}) && $(systemctl show -p ExecStart --value ${unit} | sed -E 's/.*argv\\[\\]=([^;]*) ;.*/\\1/') --print-config" 2>/dev/null | awk '$1 == "workers" {print $3}')
for i in $(seq 1 ${timeoutS * 2}); do
  pid=$(systemctl show -p MainPID --value ${unit})
  live=$(cat /proc/$pid/task/$pid/children 2>/dev/null | wc -w)
  if [ "$live" -ge "\${want:-1}" ] && curl -fsS -m 2 -o /dev/null ${health(ip)}; then exit 0; fi
  sleep 0.5
done
echo "not ready: $live of $want workers" >&2; exit 1`,
            ),
        ),
    );
}

/**
 * The in-flight count at the apps is their TCP sockets over the step's first sample. Idle
 * keepalive connections the LB kept from an earlier step would be reused by the first requests
 * and hide that many of them (13 workers x 128 = 1,664 with the generated configuration), so
 * nginx is reloaded before each step: its old workers close their idle upstream connections
 * and exit, and the step starts from none. ([g]: so pgrep does not find this very script.)
 */
async function closeIdleUpstreamConnections(ctx: Ctx): Promise<void> {
    await onHost(
        ctx.access,
        "lb",
        `sudo systemctl reload nginx
for i in $(seq 1 200); do pgrep -f "nginx: worker process is shuttin[g] down" >/dev/null || exit 0; sleep 0.1; done
echo "old nginx workers still running 20 s after a reload" >&2; exit 1`,
    );
    await sleep(1000);
}

async function runStep(ctx: Ctx, config: ConfigName, concurrency: number, kind: "step" | "refine"): Promise<StepResult> {
    const o = ctx.o;
    const started = Date.now();
    const notes: string[] = [];
    const id = { concurrency, kind, rampRate: ctx.rampRate };
    const mem = meminfo();
    const prediction = predictStep(concurrency, ctx.bytesPerRequest, mem.availableBytes, ctx.reserve);
    if (!prediction.fits) {
        log(`  ${concurrency}: not run, the memory guard refuses it: ${prediction.explanation}`);
        return skippedStep(id, `memory guard: ${prediction.explanation}`, notes);
    }
    const quiet = await waitQuiet(ctx);
    if (quiet.foreign > 0.5 || quiet.otherClouds > 0.2) {
        notes.push(`started although CPU was used outside the bench: ${quiet.foreign.toFixed(2)} cores (other local clouds ${quiet.otherClouds.toFixed(2)}) after waiting ${quiet.waitedS.toFixed(0)} s`);
    }

    const plan = planProcesses(concurrency, o.chunk, ctx.rampRate, ctx.clientNetns);
    const timing = stepTiming(concurrency, o, ctx.rampRate);
    const holdMs = timing.holdMs;
    const url = `https://${ctx.facts.lbPublicIp}/wait?ms=${holdMs}`;
    const deadlineS = (holdMs + timing.graceMs) / 1000;
    log(
        `  ${concurrency} in flight: ${plan.length} h2load processes over ${ctx.clientNetns.length} source IPs, ramp ${(timing.rampMs / 1000).toFixed(1)} s at ${ctx.rampRate}/s, ` +
            `hold ${holdMs / 1000} s, answers due within ${deadlineS} s of each connection's start (guard: ${prediction.explanation})`,
    );

    await closeIdleUpstreamConnections(ctx);
    const sampler = new Sampler(ctx.hosts, ctx.appHosts, LOADGEN_CGROUP, [ctx.up.cloud.names.cgroup, LOADGEN_CGROUP], os.cpus().length);
    sampler.start(1000);
    stepAbort = undefined;
    const guard = setInterval(() => {
        const m = meminfo();
        if (!stepAbort && mustAbort(m.availableBytes, ctx.reserve)) {
            stepAbort = `MemAvailable ${Math.round(m.availableBytes / MiB)} MiB fell below the reserve of ${Math.round(ctx.reserve / MiB)} MiB: load stopped`;
            log(`  ABORT: ${stepAbort}`);
            void stopLoadGenerators(2000);
        }
    }, 250);
    const logDir = fs.mkdtempSync(path.join(os.tmpdir(), "pycbench-step-"));
    let finished: FinishedH2load[] = [];
    try {
        const procs = plan.map((p, i) =>
            startH2load(`${config}-${concurrency}-${i}`, p.netns, {
                url,
                clients: p.connections,
                requests: p.connections,
                connectionsPerSecond: p.rate,
                connectionTimeoutS: deadlineS,
                logFile: path.join(logDir, `${i}.log`),
            }),
        );
        finished = await Promise.all(procs.map(finishH2load));
    } finally {
        clearInterval(guard);
    }
    const summary = sampler.stop();
    // Latency of the answered requests beyond the hold, from every request's own record.
    const answeredUs = answeredDurationsUs(plan.map((_, i) => path.join(logDir, `${i}.log`)), f => fs.readFileSync(f, "utf8"));
    fs.rmSync(logDir, { recursive: true, force: true });
    checkInterrupted();

    const step = stepResult(id, { holdMs, rampMs: timing.rampMs, plan, finished, answeredUs, summary, lbHost: ctx.lbHost, appHosts: ctx.appHosts, aborted: stepAbort }, notes);
    ctx.bytesPerRequest = learnBytesPerRequest(ctx.bytesPerRequest, summary.memAvailableAtStart, summary.minMemAvailable, Math.min(summary.appInFlightPeak, concurrency));
    if (!step.held) {
        await restartServices(ctx);
        notes.push("services restarted after the failed step (work still queued on the hosts dropped)");
    }
    step.wallS = (Date.now() - started) / 1000;
    log(stepLine(step));
    return step;
}

/** A step that other work on the machine took a real share of the CPUs from. */
function contended(s: StepResult): boolean {
    return s.machine.otherCloudsCores > 0.2 || s.machine.foreignCores > 0.5;
}

function appWorkersOf(name: ConfigName, ctx: Ctx): number {
    if (name === "generated") return ctx.cfg.gunicorn.workers * ctx.facts.appIps.length;
    if (name === "seed") {
        const m = /^workers\s*=\s*(\d+)/m.exec(ctx.fixtures.seedGunicorn);
        return (m ? Number(m[1]) : 1) * ctx.facts.appIps.length;
    }
    return defaultWorkerCount(ctx.facts.appVcpus) * ctx.facts.appIps.length;
}

async function applyConfig(ctx: Ctx, plan: ConfigPlan, result: ConfigResult): Promise<void> {
    const t0 = Date.now();
    const lb = await applyPlan(ctx.access, plan.lb);
    const apps = await Promise.all(plan.apps.map(p => applyPlan(ctx.access, p)));
    for (const a of [lb, ...apps]) if (a.refused.length) result.refusedSysctls[a.host] = a.refused;
    ctx.applied = plan.name;
    await waitAppsReady(ctx);
    // The site answers through the LB before anything is measured.
    const url = `https://${ctx.facts.lbPublicIp}/healthz`;
    for (let i = 0; ; i++) {
        const r = spawnSync("ip", ["netns", "exec", ctx.clientNetns[0], "curl", "-ksS", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}", url], { encoding: "utf8" });
        if (r.stdout === "200") break;
        if (i > 60) throw new Error(`${plan.name}: ${url} answers ${r.stdout || r.stderr} after the change`);
        await sleep(500);
    }
    result.applySeconds = (Date.now() - t0) / 1000;
}

async function benchConfig(ctx: Ctx, name: ConfigName): Promise<ConfigResult> {
    const o = ctx.o;
    const plan = configPlan(name, ctx.cfg, ctx.facts, ctx.fixtures);
    const result: ConfigResult = { name, description: plan.description, differedBeforeApply: [], refusedSysctls: {}, steps: [], maxHeld: 0 };
    log(`configuration ${name}: ${plan.description}`);
    if (name === "generated") {
        const differing = (await Promise.all([plan.lb, ...plan.apps].map(p => differingFiles(ctx.access, p).then(d => d.map(f => `${p.host}:${f}`))))).flat();
        result.differedBeforeApply = differing;
        log(`  files on the hosts ${differing.length === 0 ? "equal what the renderers produce" : `differing from the renderers' output: ${differing.join(", ")}`}`);
    }
    // Memory: the configuration's extra app workers must fit before they start.
    const workers = appWorkersOf(name, ctx);
    const extra = Math.max(0, workers - ctx.appWorkersNow);
    const mem = meminfo();
    const processes = predictProcesses(extra, ctx.bytesPerAppWorker, mem.availableBytes, ctx.reserve);
    if (!processes.fits) {
        result.skipped = `memory guard: ${workers} gunicorn workers: ${processes.explanation}`;
        log(`  not run: ${result.skipped}`);
        return result;
    }
    log(`  applying (${workers} gunicorn workers in all; memory: ${processes.explanation})`);
    await applyConfig(ctx, plan, result);
    checkInterrupted();
    const [lb, ...apps] = await Promise.all([probeLb(ctx.access, ctx.cfg.lb.vcpus), ...ctx.facts.appIps.map(ip => probeApp(ctx.access, ip, ctx.cfg.app.name))]);
    result.effective = { lb, apps };
    result.predicted = capacityModel(effectiveCapacityInputs(lb, apps));
    if (name === "generated") result.stackCapacity = ctx.cfg.capacity;
    ctx.appWorkersNow = apps.reduce((a, x) => a + x.workers, 0);
    const appMem = ctx.hosts.filter(h => ctx.appHosts.includes(h.name)).reduce((a, h) => a + cgroupMemoryBytes(h.cgroup).bytes, 0);
    result.appWorkerPssMiB = appMem / ctx.appWorkersNow / MiB;
    ctx.bytesPerAppWorker = Math.max(ctx.bytesPerAppWorker, Math.round(appMem / ctx.appWorkersNow));
    log(
        `  in effect: nginx ${lb.workerProcesses} workers x ${lb.workerConnections} connections (nofile ${lb.workerOpenFiles}), ` +
            `gunicorn ${apps[0].workers} x ${apps[0].workerClass} workers per node (worker_connections ${apps[0].workerConnections}, nofile ${apps[0].workerOpenFiles}), ` +
            `applied in ${result.applySeconds?.toFixed(1)} s; ${result.appWorkerPssMiB.toFixed(1)} MiB per app worker (host memory / workers)`,
    );
    log(`  capacity model: ${result.predicted.ceiling} in flight, bound by ${result.predicted.binding.name} (${result.predicted.binding.formula})`);

    // A failure while other clusters on the machine took CPU says little about the configuration: run it again.
    const measure = async (n: number, kind: "step" | "refine"): Promise<StepResult> => {
        let step = await runStep(ctx, name, n, kind);
        for (let retry = 1; retry <= o.retries && !step.held && !step.skipped && !step.aborted && contended(step); retry++) {
            log(`  ${n}: failed while ${step.machine.otherCloudsCores.toFixed(2)} cores went to other local clouds (${step.machine.foreignCores.toFixed(2)} outside the bench): measuring again (${retry}/${o.retries})`);
            const again = await runStep(ctx, name, n, kind);
            again.notes.unshift(`attempt ${retry + 1}: attempt ${retry} failed under contention (${describeSlots(step.slots)}; ${step.machine.otherCloudsCores.toFixed(2)} cores to other clouds)`);
            step = again;
        }
        return step;
    };
    for (const n of o.steps) {
        const step = await measure(n, "step");
        result.steps.push(step);
        if (step.skipped) break; // a larger step needs more memory still
        if (!step.held && !o.continueAfterFailure) break;
    }
    for (let i = 0; i < o.refine; i++) {
        const failed = firstFailure(result.steps);
        if (failed === undefined) break;
        const probe = nextProbe(maxHeld(result.steps), failed, result.predicted.ceiling);
        if (probe === undefined) break;
        result.steps.push(await measure(probe, "refine"));
    }
    result.steps.sort((a, b) => a.concurrency - b.concurrency);
    // Throughput last: its hundreds of thousands of short requests would otherwise bring the
    // app workers near max_requests, and a worker recycled during a step ends what it holds.
    result.throughput = await throughput(ctx, name);
    result.maxHeld = maxHeld(result.steps);
    result.firstFailure = firstFailure(result.steps);
    log(`  ${name}: held up to ${result.maxHeld}${result.firstFailure ? `, first failure at ${result.firstFailure}` : ""}; model said ${result.predicted.ceiling}`);
    return result;
}

async function main(): Promise<number> {
    const o = parseOptions(process.argv.slice(2));
    prerequisites(o);
    installSignalHandlers();
    const startedAt = new Date();
    const stamp = startedAt.toISOString().replace(/[:.]/g, "-").replace(/-\d\dZ$/, "Z");
    fs.mkdirSync(o.resultsDir, { recursive: true });
    const mem0 = meminfo();
    const result: BenchResult = {
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
    let ctx: Ctx | undefined;
    const script = writeScript(os.tmpdir(), renderLuaScript());
    let exitCode = 0;
    try {
        prepareLoadgenCgroup();
        log(`standing the ${o.stack} stack up (${Object.keys(o.set).length ? `set ${JSON.stringify(o.set)}` : "stack file as is"})`);
        const up = await localUp({ stack: o.stack, set: o.set, clients: o.clients, log: l => log(`  ${l}`) });
        checkInterrupted();
        const cfg = localStackConfig({ stack: o.stack, set: o.set });
        result.stack.targetConcurrency = cfg.targetConcurrency;
        result.machine.otherClouds = otherClouds(up.cloud.prefix);
        log(`up in ${(up.wallMs / 1000).toFixed(1)} s (${up.remoteExecutions.length} remote steps); other local clouds on this machine: ${result.machine.otherClouds.join(", ") || "none"}`);
        const access: ClusterAccess = { lbPublicIp: up.outputs.lbPublicIp, sshKeyFile: up.sshKeyFile, user: cfg.platform.sshUser, dialErrorLimit: 3, perDialTimeout: 10 };
        const appIps = up.outputs.appPrivateIps as string[];
        const hostInfos = up.cloud.hosts();
        const lbInfo = hostInfos.find(h => h.privateIp === cfg.network.lbIp);
        if (!lbInfo) throw new Error("no load balancer host in the cloud");
        const appVcpus = Number((await onHost(access, appIps[0], "nproc")).trim());
        const sysctlKeys = ["net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog", "net.core.netdev_max_backlog", "net.ipv4.ip_local_port_range", "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_tw_reuse", "net.ipv4.tcp_fin_timeout", "fs.file-max", "fs.nr_open"];
        const clientNetns = up.cloud.clients.map(c => c.netns);
        // The load generators' own namespaces: the whole port range for outgoing connections.
        for (const ns of clientNetns) spawnSync("ip", ["netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535"]);
        ctx = {
            o,
            up,
            cfg,
            access,
            facts: { lbPublicIp: access.lbPublicIp, appIps, appVcpus, kernelDefaults: kernelDefaults(sysctlKeys) },
            fixtures: loadFixtures(),
            hosts: hostInfos.map(h => ({ name: h.name, cgroup: up.cloud.names.hostCgroup(h.name), netns: h.netns })),
            lbHost: lbInfo.name,
            appHosts: hostInfos.filter(h => h.name !== lbInfo.name).map(h => h.name),
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
        if (o.calibrateSeconds > 0) {
            log(`calibrating: this machine's rates with the bench's own clients against the cluster (${o.calibrateSeconds} s per run)`);
            result.calibration = await calibrateMachine(ctx);
        }
        result.ramp = rampPlan(o, result.calibration);
        ctx.rampRate = result.ramp.rate;
        log(`steps ramp at ${ctx.rampRate} new connections/s (${result.ramp.source})`);
        for (const name of o.configs) {
            checkInterrupted();
            const c = await benchConfig(ctx, name);
            result.configs.push(c);
            if (name === "generated") result.generatedMatchedRender = c.differedBeforeApply.length === 0;
        }
    } catch (err) {
        if (err instanceof Interrupted) {
            result.interrupted = err.message;
            exitCode = 130;
        } else {
            result.interrupted = `failed: ${err instanceof Error ? err.message : String(err)}`;
            console.error(err instanceof Error ? err.stack : err);
            exitCode = 1;
        }
    } finally {
        await stopLoadGenerators();
        if (ctx) result.bytesPerRequestLearned = ctx.bytesPerRequest;
        try {
            if (o.keep && ctx) {
                if (ctx.applied && ctx.applied !== "generated") {
                    const plan = configPlan("generated", ctx.cfg, ctx.facts, ctx.fixtures);
                    log("--keep: putting the generated configuration back");
                    await applyPlan(ctx.access, plan.lb);
                    await Promise.all(plan.apps.map(p => applyPlan(ctx!.access, p)));
                }
                if (ctx) {
                    const plan = configPlan("generated", ctx.cfg, ctx.facts, ctx.fixtures);
                    const differing = (await Promise.all([plan.lb, ...plan.apps].map(p => differingFiles(ctx!.access, p)))).flat();
                    log(`--keep: cluster left up; generated files in place: ${differing.length === 0 ? "all equal the renderers' output" : `DIFFERING ${differing.join(", ")}`}`);
                }
            } else if (!o.keep) {
                log(`tearing the ${o.stack} stack down`);
                await localDown({ stack: o.stack, log: () => undefined });
            }
        } catch (err) {
            console.error(`cleanup: ${err instanceof Error ? err.message : err}`);
            exitCode = exitCode || 1;
        }
        removeLoadgenCgroup();
        fs.rmSync(script, { force: true });
    }
    result.finishedAt = new Date().toISOString();
    result.targets = evaluateTargets(result.configs);
    const jsonFile = path.join(o.resultsDir, `${stamp}.json`);
    const svgFile = path.join(o.resultsDir, `${stamp}.svg`);
    fs.writeFileSync(jsonFile, JSON.stringify(result, null, 2) + "\n");
    fs.writeFileSync(svgFile, renderChart(chartInput(result)));
    console.log("\n" + fullReport(result));
    if (result.interrupted) console.log(`\nrun ${result.interrupted}`);
    console.log(`\nresults: ${jsonFile}\nchart:   ${svgFile}`);
    return exitCode;
}

main().then(
    code => process.exit(code),
    err => {
        console.error(err instanceof Error ? err.message : err);
        void stopLoadGenerators().then(() => process.exit(1));
    },
);
