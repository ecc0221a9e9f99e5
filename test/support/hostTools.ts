/**
 * The real tools (nginx, gunicorn, systemd-analyze) and hostctl's own
 * validation path, for the renderer tests. Where a tool is missing the test is
 * skipped with the reason, unless PYCLUSTER_REQUIRE_TOOLS=1 (CI), where that is a failure.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { agentArchive } from "../../provisioning/hostAgent";

export const ROOT = path.join(__dirname, "..", "..");
/** The agent's package (provisioning/host/hostctl), importable with this directory on sys.path. */
export const HOST_DIR = path.join(ROOT, "provisioning", "host");

/** The agent as hosts get it: the zipapp the program builds, written once per test process. */
export const HOSTCTL = (() => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "pyc-agent-")), "hostctl.pyz");
    fs.writeFileSync(file, agentArchive().bytes);
    return file;
})();
export const SAMPLE_APP = path.join(ROOT, "provisioning", "app", "sample");
/** Debian's interpreter: its dist-packages hold gunicorn, gevent and uvicorn (as on the hosts). */
export const SYSTEM_PYTHON = "/usr/bin/python3";

export interface Result {
    code: number;
    output: string;
}

export function sh(cmd: string, args: string[], input?: string, env?: NodeJS.ProcessEnv): Result {
    const p = spawnSync(cmd, args, { input, encoding: "utf8", env: env ?? process.env, timeout: 120_000 });
    return { code: p.status ?? -1, output: `${p.stdout ?? ""}${p.stderr ?? ""}` };
}

export function hostctl(args: string[], stdin?: string): Result {
    return sh(SYSTEM_PYTHON, [HOSTCTL, ...args], stdin);
}

/**
 * Python lines that make hostctl importable as `h`: every module of the package in one namespace (the
 * tests name functions, not modules); to replace a function or setting for a test, assign it on its
 * module (e.g. `tls.DNS_POLL_SECONDS`).
 */
export const HOSTCTL_PRELUDE =
    `import sys, types\nsys.path.insert(0, ${JSON.stringify(HOST_DIR)})\n` +
    `from hostctl import common, bundle, nginx_reload, release, rollout, tls, validate, vrrp\n` +
    `h = types.SimpleNamespace(**{**vars(nginx_reload), **vars(vrrp), **vars(tls), **vars(common), **vars(bundle), **vars(release), **vars(validate), **vars(rollout)})\n`;

/** Runs Python with hostctl importable as `h`; returns stdout. */
export function py(code: string): string {
    const r = sh(SYSTEM_PYTHON, ["-c", HOSTCTL_PRELUDE + code]);
    if (r.code !== 0) throw new Error(`python failed:\n${r.output}`);
    return r.output;
}

function has(cmd: string, args: string[]): boolean {
    return spawnSync(cmd, args, { stdio: "ignore" }).status === 0;
}

/** Why a tool-based test cannot run here, or undefined when it can. */
export type Tool = "nginx" | "gunicorn" | "gevent" | "uvicorn" | "systemd-analyze" | "runuser" | "promtool" | "exporter-units" | "openssh-client" | "dnslib" | "keepalived" | "netns" | "wrk";

/** The Debian units the monitoring drop-ins complete (packages prometheus, prometheus-node-exporter, prometheus-nginx-exporter). */
export const EXPORTER_UNITS = ["prometheus", "prometheus-node-exporter", "prometheus-nginx-exporter"].map(u => `/lib/systemd/system/${u}.service`);

export function missingTools(tools: Tool[]): string | undefined {
    const root = process.getuid?.() === 0;
    const checks: Record<string, () => boolean> = {
        // As on the hosts, where hostctl runs them as root: nginx -t binds the configured ports and
        // opens nginx's pid file; keepalived disables a check script it cannot prove secure.
        nginx: () => root && has("nginx", ["-v"]),
        gunicorn: () => has(SYSTEM_PYTHON, ["-c", "import gunicorn"]),
        gevent: () => has(SYSTEM_PYTHON, ["-c", "import gevent"]),
        uvicorn: () => has(SYSTEM_PYTHON, ["-c", "import uvicorn.workers"]),
        "systemd-analyze": () => has("systemd-analyze", ["--version"]),
        runuser: () => root && has("runuser", ["--version"]),
        promtool: () => has("promtool", ["--version"]),
        "exporter-units": () => EXPORTER_UNITS.every(u => fs.existsSync(u)),
        "openssh-client": () => has("ssh", ["-V"]) && !spawnSync("ssh-keygen", ["-?"], { stdio: "ignore" }).error,
        dnslib: () => has(SYSTEM_PYTHON, ["-c", "import dnslib"]),
        keepalived: () => root && has("keepalived", ["--version"]),
        // Network namespaces of its own and nftables in them, as on the hosts where hostctl runs as root.
        netns: () => root && has("ip", ["-V"]) && has("nft", ["--version"]),
        wrk: () => has("sh", ["-c", "command -v wrk"]),
    };
    const missing = tools.filter(t => !checks[t]());
    if (missing.length === 0) return undefined;
    const reason = `needs ${missing.join(", ")} (Debian: nginx gunicorn python3-gevent python3-uvicorn systemd prometheus prometheus-node-exporter prometheus-nginx-exporter openssh-client python3-dnslib keepalived iproute2 nftables wrk; nginx, keepalived, runuser and network namespaces as root)`;
    if (process.env.PYCLUSTER_REQUIRE_TOOLS === "1") throw new Error(`PYCLUSTER_REQUIRE_TOOLS=1 but this test ${reason}`);
    return reason;
}

/**
 * A release as hostctl lays it out: the app's files plus `.venv`, a venv
 * with the system site-packages. Readable by every user, like on a host.
 */
export function makeRelease(appDir = SAMPLE_APP): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyc-release-"));
    fs.chmodSync(dir, 0o755);
    fs.cpSync(appDir, dir, { recursive: true });
    // No pip: nothing is installed into these test releases, and ensurepip alone takes 5 s.
    const venv = sh(SYSTEM_PYTHON, ["-m", "venv", "--without-pip", "--system-site-packages", path.join(dir, ".venv")]);
    if (venv.code !== 0) throw new Error(`venv: ${venv.output}`);
    return dir;
}

export function tempDir(prefix: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    fs.chmodSync(dir, 0o755);
    return dir;
}
