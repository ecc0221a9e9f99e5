/**
 * The application: its name and kind, where its code is and how it is started,
 * its environment (a secret), health path, releases and rollout batch size.
 * File checks (does appDir exist, is the entry module in it) go through the
 * context's FileView, so the parse stays pure.
 */
import * as path from "path";
import { LB_STATUS_PORT, MONITORING_PORTS } from "./ports";
import type { Reader } from "./reader";
import type { AppKind, ParseContext, StackConfig } from "./types";

const APP_MODULE = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(?:\(\))?$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Accounts of the image and its packages: the app's own user must not be one of them. */
const RESERVED_USERS = new Set(["root", "daemon", "bin", "sys", "nobody", "www-data", "nginx", "debian", "ubuntu", "sshd", "systemd-network"]);

/** The module file a `module:callable` entry point imports, relative to the app dir. */
export function entryModuleFiles(appModule: string): string[] {
    const modulePath = appModule.split(":")[0].split(".").join(path.sep);
    return [`${modulePath}.py`, path.join(modulePath, "__init__.py")];
}

export type AppSettings = Omit<StackConfig["app"], "nodeCount" | "flavor" | "vcpus">;

export function readApp(r: Reader, ctx: ParseContext, tier: { nodeCount: number; production: boolean }): AppSettings {
    const name = r.string("appName");
    if (!/^[a-z][a-z0-9-]{0,30}$/.test(name)) {
        r.fail("appName", name, "must be 1-31 characters: a lowercase letter, then lowercase letters, digits or dashes (it names a system user and a unit)");
    } else if (RESERVED_USERS.has(name)) {
        r.fail("appName", name, "is a system account name; choose another name for the app's user");
    }
    const kind = r.oneOf("appKind", ["wsgi", "asgi"] as const);
    const { dir, sample, module } = readCode(r, ctx, kind);
    const packages = readPackages(r);
    const port = r.integer("appPort", 1024, 65535, " (the app runs unprivileged)");
    if (port === LB_STATUS_PORT) r.fail("appPort", port, `is reserved for the status listener; choose another port`);
    const monitoringPort = Object.entries(MONITORING_PORTS).find(([, p]) => p === port);
    if (monitoringPort) r.fail("appPort", port, `is where the monitoring listens (${monitoringPort[0]}); choose another port, e.g. 8000`);
    const env = readEnv(r);
    const healthPath = r.string("healthPath");
    if (!/^\/[A-Za-z0-9._~\/-]*$/.test(healthPath)) r.fail("healthPath", healthPath, "must be a URL path starting with /, e.g. /healthz");
    const accessLog = r.boolean("appAccessLog");
    const releasesKept = r.integer("releasesKept", 2, 50, " (at least 2, to roll back)");
    const pin = r.string("appRelease").trim();
    if (pin !== "" && !/^[0-9a-f]{12}$/.test(pin)) r.fail("appRelease", pin, "must be a release id (12 hex characters) from the `releases` stack output, or empty");
    const rolloutBatchSize = r.integer("rolloutBatchSize", 1, 200);
    if (rolloutBatchSize > tier.nodeCount) {
        r.fail("rolloutBatchSize", rolloutBatchSize, `is larger than appNodeCount (${tier.nodeCount}): a rollout would take every node at once`);
    } else if (tier.production && rolloutBatchSize >= tier.nodeCount) {
        r.fail("rolloutBatchSize", rolloutBatchSize, `would update every node of a production stack at once; use at most ${tier.nodeCount - 1}`);
    }
    return { name, kind, dir, sample, module, packages, port, env, healthPath, accessLog, releasesKept, releasePin: pin || undefined, rolloutBatchSize };
}

/** Where the app's code is and its entry point; the bundled sample when appDir is empty. */
function readCode(r: Reader, ctx: ParseContext, kind: AppKind): { dir: string; sample: boolean; module: string } {
    const dirSetting = r.string("appDir").trim();
    const sample = dirSetting === "";
    const dir = sample ? ctx.sampleAppDir : path.resolve(dirSetting);
    let module = r.string("appModule").trim();
    if (sample) {
        if (module === "") module = kind === "asgi" ? "app:asgi_application" : "app:application";
    } else if (!ctx.files.isDirectory(dir)) {
        r.fail("appDir", dirSetting, `is not a directory (resolved to ${dir}): point it at your app's source tree`);
    } else if (module === "") {
        r.failMissing("appModule", "the entry point of the app in appDir is required, e.g. myapp.wsgi:application");
    }
    if (module !== "") {
        if (!APP_MODULE.test(module)) {
            r.fail("appModule", module, "must be module:callable, e.g. myapp.wsgi:application");
        } else if (ctx.files.isDirectory(dir) && !entryModuleFiles(module).some(f => ctx.files.isFile(path.join(dir, f)))) {
            r.fail("appModule", module, `its module is not in appDir: expected ${entryModuleFiles(module).join(" or ")} under ${dir}`);
        }
    }
    return { dir, sample, module };
}

/** Debian package names (policy manual 5.6.1: lowercase letters, digits, + - and ., at least two, starting alphanumeric). */
const DEBIAN_PACKAGE = /^[a-z0-9][a-z0-9+.-]+$/;

function readPackages(r: Reader): string[] {
    const out: string[] = [];
    for (const name of r.stringArray("appPackages")) {
        const p = name.trim();
        if (!DEBIAN_PACKAGE.test(p)) r.fail("appPackages", name, "each entry must be a Debian package name such as libpq5 or python3-flask (lowercase; no version, no spaces)");
        else if (out.includes(p)) r.fail("appPackages", name, "is listed twice: remove one");
        else out.push(p);
    }
    return out;
}

/** appEnv: a JSON object of variables an env file can hold. */
function readEnv(r: Reader): StackConfig["app"]["env"] {
    const env = r.secret("appEnv");
    if (!env) return undefined;
    let parsed: unknown;
    try {
        parsed = JSON.parse(env.reveal());
    } catch {
        parsed = undefined;
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
        r.fail("appEnv", env, `must be a JSON object of variables, e.g. {"DB_PASSWORD":"..."}`);
        return env;
    }
    for (const [k, v] of Object.entries(parsed)) {
        if (!ENV_NAME.test(k)) r.fail("appEnv", env, `variable name ${JSON.stringify(k)} is not a valid environment variable name`);
        if (!["string", "number", "boolean"].includes(typeof v)) r.fail("appEnv", env, `variable ${k} must be a string, number or boolean`);
        if (typeof v === "string" && /[\n\r\0]/.test(v)) r.fail("appEnv", env, `variable ${k} contains a newline or NUL, which an env file cannot hold`);
    }
    return env;
}
