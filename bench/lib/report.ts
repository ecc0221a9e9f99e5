/**
 * What the bench prints: the steps table, per-host peaks, throughput,
 * predicted against measured, and the targets. Pure (results in, text out).
 */
import { MeasuredRates } from "../../config/rates";
import { describeSlots } from "./h2load";
import { BenchResult, ConfigResult, StepResult } from "./results";
import { ChartInput } from "./svg";

export function table(header: string[], rows: string[][]): string {
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map(r => (r[i] ?? "").length)));
    const line = (cells: string[]) => "| " + cells.map((c, i) => (c ?? "").padEnd(widths[i])).join(" | ") + " |";
    return [line(header), "|" + widths.map(w => "-".repeat(w + 2)).join("|") + "|", ...rows.map(line)].join("\n");
}

const ms = (v: number | undefined) => (v === undefined ? "-" : v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`);
const mib = (v: number) => (v >= 10_240 ? `${(v / 1024).toFixed(1)} GiB` : `${Math.round(v)} MiB`);

/**
 * Latency beyond the hold, for steps where every request was answered 2xx: in a failed step
 * the answered requests are a biased sample (the ones that got through).
 */
export function latencyOf(s: StepResult): StepResult["latency"] {
    return s.slots.failed === 0 ? s.latency : undefined;
}

function stepStatus(s: StepResult): string {
    if (s.skipped) return `skipped: ${s.skipped}`;
    if (s.aborted) return `ABORTED: ${s.aborted}`;
    if (s.held) return "held";
    if (s.slots.failed === 0 && !s.simultaneous) return "not all at once";
    if (s.starvedBy) return "FAILED (load generators starved the hosts)";
    return "FAILED";
}

/** The LB that took the load: the recorded holder (a pair), else the host named "-lb" (results from before the pair). */
function activeLb(r: BenchResult, hosts: Record<string, unknown>): string {
    return r.stack.lbHosts?.[0] ?? Object.keys(hosts).find(h => h.endsWith("-lb")) ?? "";
}

const isLb = (r: BenchResult, host: string) => (r.stack.lbHosts ? r.stack.lbHosts.includes(host) : host.endsWith("-lb"));

export function stepsTable(r: BenchResult): string {
    const rows: string[][] = [];
    for (const c of r.configs) {
        if (c.skipped) {
            rows.push([c.name, "-", "-", "-", "-", "-", "-", "-", "-", "-", `skipped: ${c.skipped}`]);
            continue;
        }
        for (const s of c.steps) {
            const lb = s.hosts[activeLb(r, s.hosts)];
            const apps = Object.entries(s.hosts).filter(([h]) => !isLb(r, h));
            const appMem = apps.length ? Math.max(...apps.map(([, p]) => p.peakMemMiB)) : 0;
            const appCpu = apps.reduce((a, [, p]) => a + p.peakCpuCores, 0);
            rows.push([
                c.name,
                `${s.concurrency}${s.kind === "refine" ? "*" : ""}`,
                s.skipped ? "-" : `${s.rampS.toFixed(0)}/${s.holdS.toFixed(0)}`,
                s.skipped ? "-" : `${s.ok}/${s.concurrency}`,
                s.skipped ? "-" : describeSlots(s.slots),
                ms(latencyOf(s)?.p50ExcessMs),
                ms(latencyOf(s)?.p99ExcessMs),
                s.skipped ? "-" : String(s.appInFlightPeak),
                lb ? `${mib(lb.peakMemMiB)} / ${lb.peakCpuCores.toFixed(2)}` : "-",
                apps.length ? `${mib(appMem)} / ${appCpu.toFixed(2)}` : "-",
                s.skipped ? "-" : `${mib(s.loadgen.peakMemMiB)} / ${s.loadgen.meanCpuCores.toFixed(2)}`,
                stepStatus(s),
            ]);
        }
    }
    return table(
        ["config", "in flight", "ramp/hold s", "ok", "failed slots", "p50-hold", "p99-hold", "at apps", "LB mem / cpu", "app mem (max) / cpu (sum)", "clients mem / cpu", "result"],
        rows,
    );
}

export function hostsTable(r: BenchResult): string {
    const hostNames = [...new Set(r.configs.flatMap(c => c.steps.flatMap(s => Object.keys(s.hosts))))];
    const short = (h: string) => h.replace(/^pycluster-[a-z0-9]+-/, "");
    const rows: string[][] = [];
    for (const c of r.configs) {
        for (const s of c.steps) {
            if (s.skipped) continue;
            rows.push([
                c.name,
                String(s.concurrency),
                ...hostNames.map(h => (s.hosts[h] ? `${mib(s.hosts[h].peakMemMiB)}, ${s.hosts[h].peakCpuCores.toFixed(2)}/${s.hosts[h].meanCpuCores.toFixed(2)}` : "-")),
                `${mib(s.machine.memDropMiB)}`,
                s.machine.foreignCores.toFixed(2),
            ]);
        }
    }
    return table(["config", "in flight", ...hostNames.map(h => `${short(h)} mem, cpu peak/mean`), "machine mem used", "foreign cpu"], rows);
}

export function throughputTable(r: BenchResult): string {
    const rows: string[][] = [];
    for (const c of r.configs) {
        const t = c.throughput;
        if (!t) continue;
        for (const run of [...t.closedLoop.map(x => ["closed loop", x] as const), ...t.paced.map(x => ["paced", x] as const)]) {
            const [kind, x] = run;
            rows.push([
                c.name,
                kind,
                x.target === "lb" ? "through the LB (https)" : "direct to one app node (http)",
                String(x.connections),
                x.requestsPerSecond.toFixed(0),
                x.p50Ms === undefined ? "-" : x.p50Ms.toFixed(2),
                x.p99Ms === undefined ? "-" : x.p99Ms.toFixed(2),
                String(x.errors),
            ]);
        }
        rows.push([c.name, "LB added p50", "", "", "", t.lbAddedP50Ms === undefined ? "-" : t.lbAddedP50Ms.toFixed(2), "", ""]);
    }
    return table(["config", "run", "target", "conns", "req/s", "p50 ms", "p99 ms", "errors"], rows);
}

export function predictedTable(r: BenchResult): string {
    const rows: string[][] = [];
    for (const c of r.configs) {
        if (c.skipped) {
            rows.push([c.name, "-", "-", "-", `skipped: ${c.skipped}`]);
            continue;
        }
        const p = c.predicted;
        const measured = c.firstFailure !== undefined ? `${c.maxHeld} (first failure ${c.firstFailure})` : `${c.maxHeld} (no failure up to the last step)`;
        rows.push([
            c.name,
            p ? String(p.ceiling) : "-",
            p ? `${p.binding.name}: ${p.binding.formula}` : "-",
            measured,
            verdict(c),
        ]);
    }
    return table(["config", "predicted ceiling", "binding limit (from the settings in effect)", "measured: highest held", "model vs measurement"], rows);
}

function verdict(c: ConfigResult): string {
    const p = c.predicted?.ceiling;
    if (p === undefined) return "-";
    if (c.firstFailure === undefined) return c.maxHeld >= p ? "held beyond the model" : `held all steps (max ${c.maxHeld} < model ${p})`;
    if (c.maxHeld <= p && c.firstFailure > p) return "consistent: the ceiling lies between";
    if (c.firstFailure <= p) return `fails below the model (${c.firstFailure} <= ${p}): another limit binds`;
    return `holds above the model (${c.maxHeld} > ${p})`;
}

const kibText = (b: number | undefined) => (b === undefined ? "-" : `${(b / 1024).toFixed(1)} KiB`);

/** The calibration: this machine's rates with the bench's clients, and the ramp chosen from them. */
export function calibrationTable(r: BenchResult): string {
    const c = r.calibration;
    if (!c) return `no calibration; steps ramp at ${r.ramp.rate}/s (${r.ramp.source})`;
    const what = { handshakes: "new TLS connection per request, through the LB", keepalive: "kept-alive connections, through the LB", direct: "straight to one app node (http)" };
    const rows = c.runs.map(x => [
        x.kind,
        what[x.kind],
        String(x.connections),
        x.perSecond.toFixed(0),
        `${x.ok}/${x.requests}`,
        x.lbCores.toFixed(2),
        x.appCores.toFixed(2),
        x.loadgenCores.toFixed(2),
        `${x.busyCores.toFixed(2)} of ${r.machine.cpus}`,
    ]);
    return [
        table(["run", "what", "conns", "per s", "ok", "LB cores", "app cores", "client cores", "machine busy"], rows),
        `steps ramp at ${r.ramp.rate} new connections/s: ${r.ramp.source}`,
    ].join("\n");
}

/** The model's per-core and per-request figures (config/rates.ts) against this run's. */
export function ratesTable(r: BenchResult): string {
    const m: MeasuredRates = r.modelRates;
    const c = r.calibration?.perCore;
    const gen = r.configs.find(x => x.name === "generated");
    // Memory per request from generated's largest held step (the steadiest figure).
    const held = gen?.steps.filter(s => s.held && s.memoryPerRequest).sort((a, b) => b.concurrency - a.concurrency)[0];
    const mem = held?.memoryPerRequest;
    const ratio = (measured: number | undefined, model: number) => (measured === undefined ? "-" : `${(measured / model).toFixed(2)}`);
    const rows: string[][] = [
        ["TLS handshakes per LB core (/s)", String(m.tlsHandshakesPerLbCore), c ? String(c.tlsHandshakesPerLbCore) : "-", ratio(c?.tlsHandshakesPerLbCore, m.tlsHandshakesPerLbCore)],
        ["proxied requests per LB core (/s)", String(m.proxiedRequestsPerLbCore), c ? String(c.proxiedRequestsPerLbCore) : "-", ratio(c?.proxiedRequestsPerLbCore, m.proxiedRequestsPerLbCore)],
        ["sample app requests per core (/s)", String(m.sampleAppRequestsPerCore), c ? String(c.sampleAppRequestsPerCore) : "-", ratio(c?.sampleAppRequestsPerCore, m.sampleAppRequestsPerCore)],
        ["LB memory per in-flight request", kibText(m.lbBytesPerInFlight), kibText(mem?.lbBytes), ratio(mem?.lbBytes, m.lbBytesPerInFlight)],
        ["app memory per in-flight request", kibText(m.appBytesPerInFlight), kibText(mem?.appBytes), ratio(mem?.appBytes, m.appBytesPerInFlight)],
        ["kernel memory per TCP socket", kibText(m.kernelBytesPerSocket), kibText(mem?.kernelPerSocketBytes), ratio(mem?.kernelPerSocketBytes, m.kernelBytesPerSocket)],
    ];
    const runs = r.calibration?.runs ?? [];
    const predicted: string[][] = runs.map(x => {
        // The model's rate for the cores each part actually had in the run (the hosts share this machine).
        const byLb = x.kind === "handshakes" ? x.lbCores * m.tlsHandshakesPerLbCore : x.kind === "keepalive" ? x.lbCores * m.proxiedRequestsPerLbCore : Infinity;
        const byApps = x.appCores * m.sampleAppRequestsPerCore;
        const p = Math.min(byLb, byApps);
        const bound = byLb <= byApps ? `LB ${x.lbCores.toFixed(2)} cores` : `apps ${x.appCores.toFixed(2)} cores`;
        return [x.kind, `${p.toFixed(0)}/s (${bound})`, `${x.perSecond.toFixed(0)}/s`, (x.perSecond / p).toFixed(2)];
    });
    return [
        table(["figure", `model (config/rates.ts, ${m.provenance.date})`, "measured now", "now / model"], rows),
        mem ? `(memory from generated's ${held!.concurrency} step: ${mem.inFlight} in flight at the apps)` : "(memory: no held step of generated)",
        ...(predicted.length
            ? ["", "Rates predicted by the model for the cores each part had in the calibration vs measured:", table(["run", "predicted (binding)", "measured", "measured / predicted"], predicted)]
            : []),
    ].join("\n");
}

/** Memory per in-flight request by component, per step. */
export function memoryTable(r: BenchResult): string {
    const rows: string[][] = [];
    for (const c of r.configs) {
        for (const s of c.steps) {
            const m = s.memoryPerRequest;
            if (!m || s.skipped) continue;
            rows.push([
                c.name,
                String(s.concurrency),
                String(m.inFlight),
                kibText(m.lbBytes),
                kibText(m.appBytes),
                kibText(m.lbBytes + m.appBytes),
                kibText(m.serverKernelBytes),
                kibText(m.lbBytes + m.appBytes + m.serverKernelBytes),
                kibText(m.loadgenBytes),
            ]);
        }
    }
    return table(["config", "step", "in flight", "LB (nginx)", "apps (gunicorn)", "server processes", "server sockets (kernel, 3 per request)", "server total", "clients (h2load + socket)"], rows);
}

export function targetsText(r: BenchResult): string {
    return r.targets.map(t => `  [${t.met === undefined ? "n/a" : t.met ? "met" : "NOT MET"}] ${t.target}: ${t.detail}`).join("\n");
}

export function chartInput(r: BenchResult): ChartInput {
    return {
        title: `pycluster bench: ${r.stack.name} stack, requests held >= ${r.options.holdMs / 1000} s (longer for big steps)`,
        subtitle: `${r.startedAt} - ${r.machine.cpus} CPUs, ${(r.machine.memTotalMiB / 1024).toFixed(0)} GiB; targetConcurrency ${r.stack.targetConcurrency}${Object.keys(r.stack.set).length ? `; set ${Object.entries(r.stack.set).map(([k, v]) => `${k}=${v}`).join(" ")}` : ""}`,
        series: r.configs
            .filter(c => !c.skipped)
            .map(c => ({
                name: `${c.name} (held ${c.maxHeld})`,
                points: c.steps
                    .filter(s => !s.skipped)
                    .map(s => ({
                        concurrency: s.concurrency,
                        failedPct: (100 * s.failed) / s.concurrency,
                        p99ExcessS: latencyOf(s) ? latencyOf(s)!.p99ExcessMs / 1000 : undefined,
                    })),
            })),
    };
}

export function fullReport(r: BenchResult): string {
    return [
        "Calibration (this machine, the bench's own clients against the cluster; cores = mean over the run):",
        calibrationTable(r),
        "",
        "Steps (in flight = concurrent requests, each held by the app; p50/p99 beyond the hold; * = refinement probe):",
        stepsTable(r),
        "",
        "Peak memory and CPU per host (cores; peak over 1 s samples / mean over the step):",
        hostsTable(r),
        "",
        "Throughput at moderate concurrency (endpoint /):",
        throughputTable(r),
        "",
        "Memory per in-flight request (each component's growth over the step / requests in flight):",
        memoryTable(r),
        "",
        "Capacity model, predicted vs measured:",
        predictedTable(r),
        "",
        "Rates model (config/rates.ts) vs this run:",
        ratesTable(r),
        "",
        "Targets (for the generated configuration):",
        targetsText(r),
    ].join("\n");
}
