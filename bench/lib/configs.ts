/**
 * The three configurations compared, as plans of what goes onto each host:
 * files (path, mode, owner, content), files removed, kernel settings, units
 * to (re)start. Pure: the stack config and the fixture texts in, plans out;
 * bench/lib/hosts.ts carries them out over SSH.
 *
 *  generated  what the program renders for the stack (its own renderers, the
 *             same destinations hostctl writes to);
 *  seed       the seed article verbatim: its gunicorn_config.py, its systemd
 *             unit, its nginx site on Debian's stock nginx.conf, kernel defaults;
 *  stock      Debian's stock nginx.conf with a naive site, gunicorn's defaults
 *             (sync workers, (2 x vCPU) + 1 of them), kernel defaults.
 */
import * as fs from "fs";
import * as path from "path";
import { StackConfig } from "../../config/types";
import { appKernelFiles, appLayout, appNodeFiles } from "../../provisioning/appFiles";
import { lbKernelFiles, lbNginxFiles } from "../../provisioning/lbFiles";
import { bundleDestinations, hostPath } from "../../provisioning/hostContract";
import { SYSCTL_FILE } from "../../provisioning/kernelFiles";
import { BundleFile } from "../../provisioning/render/bundle";
import { NGINX_TLS_CERT, NGINX_TLS_KEY } from "../../provisioning/render/nginx";
import { defaultWorkerCount } from "../../config/catalog";
import { ConfigName } from "./options";
import { shellQuote as sq } from "../../lib/shell";

export interface HostFile {
    path: string;
    mode: number;
    owner: string;
    group: string;
    content: string;
}

export interface HostPlan {
    /** "lb", or an app node's private address. */
    host: string;
    files: HostFile[];
    remove: string[];
    /** sysctl key -> value written to /proc/sys (a key the kernel refuses is reported, not fatal). */
    sysctls: Record<string, string>;
    enable: string[];
    disable: string[];
    /** Units restarted (after daemon-reload), in order. */
    restart: string[];
    /** A URL the host itself must answer 200 on before the plan counts as applied. */
    healthUrl?: string;
}

export interface ConfigPlan {
    name: ConfigName;
    description: string;
    lb: HostPlan;
    apps: HostPlan[];
}

/** Where the bench puts its own nginx site for seed and stock (included by Debian's stock nginx.conf). */
export const BENCH_SITE = `${hostPath("nginxDir")}/sites-enabled/pycluster-bench.conf`;
const SYSCTL_UNIT = "pycluster-sysctl.service";

export const FIXTURES_DIR = path.join(__dirname, "..", "fixtures");

export interface Fixtures {
    seedGunicorn: string;
    seedSite: string;
    seedUnit: string;
    stockNginx: string;
    stockSite: string;
    stockUnit: string;
}

export function loadFixtures(dir = FIXTURES_DIR): Fixtures {
    const read = (p: string) => fs.readFileSync(path.join(dir, p), "utf8");
    return {
        seedGunicorn: read("seed/gunicorn_config.py"),
        seedSite: read("seed/site.conf"),
        seedUnit: read("seed/app.service"),
        stockNginx: read("stock/nginx.conf"),
        stockSite: read("stock/site.conf"),
        stockUnit: read("stock/app.service"),
    };
}

/** Replaces every {{NAME}}; throws on a placeholder without a value, so nothing half-filled reaches a host. */
export function fillTemplate(text: string, values: Record<string, string>): string {
    const out = text.replace(/\{\{([A-Z_]+)\}\}/g, (_, key: string) => {
        if (!(key in values)) throw new Error(`fixture placeholder {{${key}}} has no value`);
        return values[key];
    });
    return out;
}

/** What the bench needs to know about the running cluster besides its StackConfig. */
export interface ClusterFacts {
    lbPublicIp: string;
    /** The measured LB's private address (a pair's LBs differ there: nginx's status listener binds it). */
    lbPrivateIp: string;
    appIps: string[];
    /** vCPUs an app node sees (nproc), for stock's (2 x vCPU) + 1. */
    appVcpus: number;
    /** Kernel defaults of a fresh network namespace, for the keys the program sets. */
    kernelDefaults: Record<string, string>;
}

/** The "-key = value" lines of a rendered sysctl drop-in. */
export function sysctlSettings(content: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const line of content.split("\n")) {
        const m = /^-?([a-z0-9_.-]+)\s*=\s*(.*)$/.exec(line.trim());
        if (m) out[m[1]] = m[2];
    }
    return out;
}

/**
 * Where hostctl installs the kernel-bundle files that seed and stock replace or remove (the host
 * contract's). The bundle's other files (e.g. the drain-expiry timer) are never touched by the
 * bench, so they stay as the program pushed them and are left out of the plans.
 */
const KERNEL_DESTINATIONS: Record<string, string> = Object.fromEntries(
    Object.entries(bundleDestinations("kernel")).filter(([name]) => ["sysctl.conf", SYSCTL_UNIT, "nginx-limits.conf"].includes(name)),
);
const NGINX_LIMITS_DROPIN = KERNEL_DESTINATIONS["nginx-limits.conf"];

function kernelPlanFiles(files: BundleFile[]): HostFile[] {
    return files.filter(f => f.name in KERNEL_DESTINATIONS).map(f => rootFile(KERNEL_DESTINATIONS[f.name], f));
}

const rootFile = (p: string, f: BundleFile): HostFile => ({ path: p, mode: f.mode, owner: "root", group: "root", content: f.content });

function generatedPlan(cfg: StackConfig, facts: ClusterFacts): ConfigPlan {
    const app = cfg.app.name;
    const layout = appLayout(app);
    const nginx = lbNginxFiles(cfg, { publicIp: facts.lbPublicIp, privateIp: facts.lbPrivateIp }).filter(f => !f.name.startsWith("tls/"));
    const lbKernel = lbKernelFiles(cfg);
    const lb: HostPlan = {
        host: "lb",
        files: [
            ...nginx.map(f => rootFile(bundleDestinations("nginx")[f.name], f)),
            ...kernelPlanFiles(lbKernel),
        ],
        remove: [BENCH_SITE],
        sysctls: sysctlSettings(lbKernel.find(f => f.name === "sysctl.conf")!.content),
        enable: [SYSCTL_UNIT],
        disable: [],
        restart: ["nginx.service"],
    };
    const apps = facts.appIps.map((ip): HostPlan => {
        const files = appNodeFiles(cfg, { nodeIp: ip });
        const kernel = appKernelFiles(cfg);
        return {
            host: ip,
            files: [
                ...files.map(f => {
                    if (f.name === "gunicorn.conf.py") return { path: layout.config, mode: f.mode, owner: "root", group: app, content: f.content };
                    if (f.name === "env") return rootFile(layout.envFile, f);
                    if (f.name === layout.unit) return rootFile(hostPath("appUnit", { app }), f);
                    throw new Error(`no destination known for app file ${f.name}`);
                }),
                ...kernelPlanFiles(kernel),
            ],
            remove: [],
            sysctls: sysctlSettings(kernel.find(f => f.name === "sysctl.conf")!.content),
            enable: [SYSCTL_UNIT],
            disable: [],
            restart: [layout.unit],
            healthUrl: `http://${ip}:${cfg.app.port}${cfg.app.healthPath}`,
        };
    });
    return { name: "generated", description: "what the program renders for the stack", lb, apps };
}

/** Kernel defaults for the keys the generated configuration sets (those a fresh namespace has). */
function defaultsFor(keys: string[], defaults: Record<string, string>): Record<string, string> {
    const out: Record<string, string> = {};
    for (const k of keys) if (k in defaults) out[k] = defaults[k];
    return out;
}

function debianPlan(name: "seed" | "stock", cfg: StackConfig, facts: ClusterFacts, fx: Fixtures): ConfigPlan {
    const app = cfg.app.name;
    const layout = appLayout(app);
    const python = layout.python;
    const lbKeys = Object.keys(sysctlSettings(lbKernelFiles(cfg).find(f => f.name === "sysctl.conf")!.content));
    const appKeys = Object.keys(sysctlSettings(appKernelFiles(cfg).find(f => f.name === "sysctl.conf")!.content));
    const site = fillTemplate(name === "seed" ? fx.seedSite : fx.stockSite, {
        UPSTREAM_SERVERS: facts.appIps.map(ip => `server ${ip}:${cfg.app.port};`).join("\n"),
        SERVER_NAME: facts.lbPublicIp,
        TLS_CERTIFICATE: `${hostPath("nginxDir")}/${NGINX_TLS_CERT}`,
        TLS_PRIVATE_KEY: `${hostPath("nginxDir")}/${NGINX_TLS_KEY}`,
    });
    const lb: HostPlan = {
        host: "lb",
        files: [
            { path: hostPath("nginxConf"), mode: 0o644, owner: "root", group: "root", content: fx.stockNginx },
            { path: BENCH_SITE, mode: 0o644, owner: "root", group: "root", content: site },
        ],
        remove: [NGINX_LIMITS_DROPIN, SYSCTL_FILE],
        sysctls: defaultsFor(lbKeys, facts.kernelDefaults),
        enable: [],
        disable: [SYSCTL_UNIT],
        restart: ["nginx.service"],
    };
    const unitValues = {
        APP_NAME: app,
        APP_USER: app,
        APP_ROOT: layout.root,
        VENV_BIN: path.posix.dirname(python),
        ENV_FILE: layout.envFile,
        // The release venv has no gunicorn script (Debian's gunicorn comes through system site packages).
        GUNICORN: `${python} -m gunicorn`,
        GUNICORN_CONFIG: layout.config,
        APP_MODULE: cfg.app.module,
        APP_PORT: String(cfg.app.port),
        WORKERS: String(defaultWorkerCount(facts.appVcpus)),
    };
    const apps = facts.appIps.map(
        (ip): HostPlan => ({
            host: ip,
            files: [
                ...(name === "seed" ? [{ path: layout.config, mode: 0o640, owner: "root", group: app, content: fx.seedGunicorn }] : []),
                {
                    path: `/etc/systemd/system/${layout.unit}`,
                    mode: 0o644,
                    owner: "root",
                    group: "root",
                    content: fillTemplate(name === "seed" ? fx.seedUnit : fx.stockUnit, unitValues),
                },
            ],
            remove: [SYSCTL_FILE],
            sysctls: defaultsFor(appKeys, facts.kernelDefaults),
            enable: [],
            disable: [SYSCTL_UNIT],
            restart: [layout.unit],
            healthUrl: `http://${ip}:${cfg.app.port}${cfg.app.healthPath}`,
        }),
    );
    const description =
        name === "seed"
            ? "the seed article verbatim: gunicorn workers=100 gevent x 1000, timeout 120; its nginx site on Debian's nginx.conf; kernel defaults"
            : "Debian's nginx.conf + a naive proxy site; gunicorn defaults (sync) with (2 x vCPU) + 1 workers; kernel defaults";
    return { name, description, lb, apps };
}

export function configPlan(name: ConfigName, cfg: StackConfig, facts: ClusterFacts, fx: Fixtures): ConfigPlan {
    return name === "generated" ? generatedPlan(cfg, facts) : debianPlan(name, cfg, facts, fx);
}

/**
 * The script that carries a plan out on its host (run as root with bash -s):
 * each file written to a temporary name and renamed, so no service ever reads
 * half a file; then removals, kernel settings, units, restarts, and the
 * health URL waited for. Prints "sysctl-refused <key>" for keys the kernel
 * refuses and "applied" at the end.
 */
export function planScript(plan: HostPlan, healthTimeoutS = 180): string {
    const lines = ["set -euo pipefail"];
    for (const f of plan.files) {
        const b64 = Buffer.from(f.content, "utf8").toString("base64");
        const tmp = `${f.path}.pycbench-tmp`;
        lines.push(
            `mkdir -p ${sq(path.posix.dirname(f.path))}`,
            `base64 -d > ${sq(tmp)} <<'PYCBENCH_EOF'`,
            ...(b64.match(/.{1,76}/g) ?? [""]),
            `PYCBENCH_EOF`,
            `chown ${sq(`${f.owner}:${f.group}`)} ${sq(tmp)}`,
            `chmod ${f.mode.toString(8).padStart(4, "0")} ${sq(tmp)}`,
            `mv -f ${sq(tmp)} ${sq(f.path)}`,
        );
    }
    for (const r of plan.remove) lines.push(`rm -f ${sq(r)}`);
    for (const [key, value] of Object.entries(plan.sysctls)) {
        const proc = `/proc/sys/${key.replace(/\./g, "/")}`;
        lines.push(`printf '%s\\n' ${sq(value)} > ${sq(proc)} 2>/dev/null || echo ${sq(`sysctl-refused ${key}`)}`);
    }
    lines.push("systemctl daemon-reload");
    for (const u of plan.disable) lines.push(`systemctl disable --quiet ${sq(u)} 2>/dev/null || true`);
    for (const u of plan.enable) lines.push(`systemctl enable --quiet ${sq(u)}`);
    if (plan.files.some(f => f.path.startsWith(`${hostPath("nginxDir")}/`))) lines.push("nginx -t -q");
    for (const u of plan.restart) lines.push(`systemctl restart ${sq(u)}`);
    if (plan.healthUrl) {
        lines.push(
            `for i in $(seq 1 ${healthTimeoutS * 4}); do curl -fsS -m 2 -o /dev/null ${sq(plan.healthUrl)} && break; sleep 0.25; done`,
            `curl -fsS -m 2 -o /dev/null ${sq(plan.healthUrl)}`,
        );
    }
    lines.push("echo applied");
    return lines.join("\n") + "\n";
}
