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
import { defaultWorkerCount } from "../config/catalog";
import { calibrate, rampPlan } from "./lib/calibration";
import { ConfigPlan, configPlan } from "./lib/configs";
import { checkInterrupted, Ctx, installSignalHandlers, Interrupted, log, meminfo, sleep } from "./lib/context";
import { answeredDurationsUs, describeSlots } from "./lib/h2load";
import { applyPlan, differingFiles, effectiveCapacityInputs, probeApp, probeLb } from "./lib/hosts";
import { closeIdleUpstreamConnections, keepOrTearDown, restartServices, waitAppsReady, waitQuiet } from "./lib/housekeeping";
import { finishH2load, FinishedH2load, LOADGEN_CGROUP, planProcesses, prepareLoadgenCgroup, removeLoadgenCgroup, startH2load, stopLoadGenerators, writeScript } from "./lib/loadgen";
import { learnBytesPerRequest, MiB, mustAbort, predictProcesses, predictStep } from "./lib/memoryGuard";
import { ConfigName, parseOptions, stepTiming } from "./lib/options";
import { chartInput, fullReport } from "./lib/report";
import { BenchResult, Calibration, ConfigResult, evaluateTargets, firstFailure, maxHeld, nextProbe, StepResult } from "./lib/results";
import { cgroupMemoryBytes, Sampler } from "./lib/sampler";
import { newBenchResult, pairHolder, prerequisites, standUp } from "./lib/setup";
import { lowerBaselines, skippedStep, stepLine, stepResult } from "./lib/step";
import { renderChart } from "./lib/svg";
import { throughput } from "./lib/throughput";
import { renderLuaScript } from "./lib/wrk";

let stepAbort: string | undefined;

/** bench/lib/calibration.ts against this run's cluster. */
function calibrateMachine(ctx: Ctx): Promise<Calibration> {
    const { facts, cfg } = ctx;
    const urls = { lbUrl: `https://${facts.lbPublicIp}/`, directUrl: `http://${facts.appIps[0]}:${cfg.app.port}/` };
    return calibrate({ ...ctx, ...urls, seconds: ctx.o.calibrateSeconds, waitQuiet: () => waitQuiet(ctx), checkInterrupted, log });
}

/** Stops the load (and records why in stepAbort) once MemAvailable falls below the reserve; checked every 250 ms. */
function startMemoryGuard(ctx: Ctx): NodeJS.Timeout {
    stepAbort = undefined;
    return setInterval(() => {
        const m = meminfo();
        if (!stepAbort && mustAbort(m.availableBytes, ctx.reserve)) {
            stepAbort = `MemAvailable ${Math.round(m.availableBytes / MiB)} MiB fell below the reserve of ${Math.round(ctx.reserve / MiB)} MiB: load stopped`;
            log(`  ABORT: ${stepAbort}`);
            void stopLoadGenerators(2000);
        }
    }, 250);
}

/**
 * keepalived moves the address when the holder's health check fails (a CPU-starved LB can fail
 * it): every request held on the old holder is then lost, so say so beside the figures.
 */
async function notePairAddressMoved(ctx: Ctx, vip: string, notes: string[]): Promise<void> {
    const holder = await pairHolder(ctx.up, vip).catch((e: Error) => e.message);
    if (holder !== ctx.lbHost) {
        notes.push(`the pair's address moved during the step: ${ctx.lbHost} held it at the start; now: ${holder}`);
        log(`  the pair's address moved: ${ctx.lbHost} held it at the start; now: ${holder}`);
    }
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
    const guard = startMemoryGuard(ctx);
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
    if (ctx.lbVip) await notePairAddressMoved(ctx, ctx.lbVip, notes);
    // Latency of the answered requests beyond the hold, from every request's own record.
    const answeredUs = answeredDurationsUs(plan.map((_, i) => path.join(logDir, `${i}.log`)), f => fs.readFileSync(f, "utf8"));
    fs.rmSync(logDir, { recursive: true, force: true });
    checkInterrupted();

    ctx.memoryBaselines = lowerBaselines(ctx.memoryBaselines, summary);
    const step = stepResult(id, { holdMs, rampMs: timing.rampMs, plan, finished, answeredUs, summary, lbHost: ctx.lbHost, appHosts: ctx.appHosts, memoryBaselines: ctx.memoryBaselines, aborted: stepAbort }, notes);
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
    ctx.memoryBaselines = undefined;
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
        `  in effect: nginx ${lb.workerProcesses} workers x ${lb.workerConnections} connections (nofile ${lb.workerOpenFiles}${lb.upstreamMaxConns ? `, max_conns ${lb.upstreamMaxConns} per app node` : ""}), ` +
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
    // Throughput last: its hundreds of thousands of short requests would otherwise bring the app
    // workers to their recycling limit, and a recycled worker has graceful_timeout to finish what it holds.
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
    const result = newBenchResult(o, startedAt, mem0);
    let ctx: Ctx | undefined;
    const script = writeScript(os.tmpdir(), renderLuaScript());
    let exitCode = 0;
    try {
        prepareLoadgenCgroup();
        ctx = await standUp(o, result, mem0, script);
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
            await keepOrTearDown(o, ctx);
        } catch (err) {
            console.error(`cleanup: ${err instanceof Error ? err.message : err}`);
            exitCode = exitCode || 1;
        }
        removeLoadgenCgroup();
        fs.rmSync(script, { force: true });
    }
    writeResults(o.resultsDir, stamp, result);
    return exitCode;
}

/** The result as JSON and as a chart under --results, and the report on the terminal. */
function writeResults(resultsDir: string, stamp: string, result: BenchResult): void {
    result.finishedAt = new Date().toISOString();
    result.targets = evaluateTargets(result.configs);
    const jsonFile = path.join(resultsDir, `${stamp}.json`);
    const svgFile = path.join(resultsDir, `${stamp}.svg`);
    fs.writeFileSync(jsonFile, JSON.stringify(result, null, 2) + "\n");
    fs.writeFileSync(svgFile, renderChart(chartInput(result)));
    console.log("\n" + fullReport(result));
    if (result.interrupted) console.log(`\nrun ${result.interrupted}`);
    console.log(`\nresults: ${jsonFile}\nchart:   ${svgFile}`);
}

main().then(
    code => process.exit(code),
    err => {
        console.error(err instanceof Error ? err.message : err);
        void stopLoadGenerators().then(() => process.exit(1));
    },
);
