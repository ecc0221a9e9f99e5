/**
 * Housekeeping on the bench cluster between measurements: waiting for a quiet
 * machine, restarting the services after a failed step, waiting for the apps,
 * closing the LB's idle upstream connections, and at the end leaving the
 * cluster up (--keep) or tearing it down.
 */
import { localDown } from "../../local/stack";
import { configPlan } from "./configs";
import { checkInterrupted, Ctx, log, sleep } from "./context";
import { applyPlan, differingFiles, onHost } from "./hosts";
import { LOADGEN_CGROUP } from "./loadgen";
import { BenchOptions } from "./options";
import { cgroupsCpuUsec, otherCloudsCpuUsec, readMachineCpu } from "./sampler";

/** CPU used outside the bench over `ms`, in cores: everything not on its hosts or load generators, and the other local clouds' share of it. */
async function foreignCores(ctx: Ctx, ms: number): Promise<{ foreign: number; otherClouds: number }> {
    const own = [ctx.up.cloud.names.cgroup, LOADGEN_CGROUP];
    const hostsUsec = () => cgroupsCpuUsec([...ctx.hosts.map(h => h.cgroup), LOADGEN_CGROUP]);
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
export async function waitQuiet(ctx: Ctx): Promise<{ foreign: number; otherClouds: number; waitedS: number }> {
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
export async function restartServices(ctx: Ctx): Promise<void> {
    const unit = `${ctx.cfg.app.name}.service`;
    await Promise.all([
        onHost(ctx.access, "lb", "sudo systemctl restart nginx"),
        ...ctx.facts.appIps.map(ip => onHost(ctx.access, ip, `sudo systemctl kill --signal=SIGKILL ${unit}; sudo systemctl restart ${unit}`)),
    ]);
    await waitAppsReady(ctx);
}

/** Until every app node answers its health URL and runs all the gunicorn workers its configuration asks for. */
export async function waitAppsReady(ctx: Ctx, timeoutS = 300): Promise<void> {
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
export async function closeIdleUpstreamConnections(ctx: Ctx): Promise<void> {
    await onHost(
        ctx.access,
        "lb",
        `sudo systemctl reload nginx
for i in $(seq 1 200); do pgrep -f "nginx: worker process is shuttin[g] down" >/dev/null || exit 0; sleep 0.1; done
echo "old nginx workers still running 20 s after a reload" >&2; exit 1`,
    );
    await sleep(1000);
}

/** After the run: with --keep, the generated configuration back in place and the cluster left up; otherwise the stack torn down. */
export async function keepOrTearDown(o: BenchOptions, ctx: Ctx | undefined): Promise<void> {
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
}
