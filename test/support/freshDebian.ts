/**
 * A freshly installed Debian 12 machine, for tests of what `npm run local` does to a machine
 * before anything else (installing its prerequisites).
 *
 * Stand-in: a fresh Debian 12 server is modelled by mmdebstrap's minbase variant (the Essential
 * and Priority: required packages, plus apt) from this machine's Debian mirror, with apt's package
 * lists empty as after an installation that ran no `apt-get update` since. It is entered with
 * systemd-nspawn in this machine's network, so that its apt reaches the mirror as a real machine's
 * would. Built once and cached under /var/cache/pycluster-local/fresh-debian-<key>/ (the key hashes
 * the recipe and the apt sources, as local/rootfs.ts keys its images); each FreshMachine is an
 * overlay on it, so the cache stays pristine.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { run } from "../../local/exec";
import { cgroupPids, ensureCgroup, killCgroup, removeCgroup } from "../../local/procs";
import { acquireLock, DEFAULT_CACHE_DIR, defaultSources } from "../../local/rootfs";

/** Bump when the recipe below changes, so cached machines are built again. */
const RECIPE_VERSION = 1;
const SUITE = "bookworm";

/** The cached root directory of a fresh Debian 12 (built first when missing: about a minute). */
export async function ensureFreshDebian(o: { cacheDir?: string; log?: (line: string) => void } = {}): Promise<{ rootDir: string; built: boolean }> {
    const cacheDir = o.cacheDir ?? DEFAULT_CACHE_DIR;
    const sources = defaultSources();
    const key = createHash("sha256").update(JSON.stringify({ v: RECIPE_VERSION, suite: SUITE, sources: fs.readFileSync(sources, "utf8") })).digest("hex").slice(0, 16);
    const dir = path.join(cacheDir, `fresh-debian-${key}`);
    const rootDir = path.join(dir, "root");
    if (fs.existsSync(path.join(dir, "READY"))) return { rootDir, built: false };
    fs.mkdirSync(cacheDir, { recursive: true });
    const lock = await acquireLock(`${dir}.lock`);
    const work = `${dir}.build-${process.pid}`;
    try {
        if (fs.existsSync(path.join(dir, "READY"))) return { rootDir, built: false };
        fs.rmSync(work, { recursive: true, force: true });
        o.log?.(`building a fresh Debian ${SUITE} (mmdebstrap minbase) in ${dir}`);
        fs.mkdirSync(work, { recursive: true });
        await run(["mmdebstrap", "--mode=root", "--variant=minbase", "--format=directory", SUITE, path.join(work, "root"), sources], { timeoutMs: 15 * 60_000 });
        fs.writeFileSync(path.join(work, "READY"), `${new Date().toISOString()}\n`);
        // Older recipes or sources: replaced, not kept beside it.
        for (const f of fs.readdirSync(cacheDir)) if (/^fresh-debian-[0-9a-f]{16}$/.test(f)) fs.rmSync(path.join(cacheDir, f), { recursive: true, force: true });
        fs.renameSync(work, dir);
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
        lock.release();
    }
    return { rootDir, built: true };
}

export interface EnterOptions {
    /** Run as this user of the machine (default root). */
    user?: string;
    /** Host paths mounted read-only inside: container path -> host path. */
    binds?: Record<string, string>;
    /** Working directory inside. */
    cwd?: string;
    /** Without CAP_NET_ADMIN: nothing inside can change this machine's network, which it shares. */
    noNetAdmin?: boolean;
    timeoutMs?: number;
}

/** One fresh machine: a writable overlay on the cached root, entered with systemd-nspawn. */
export class FreshMachine {
    private readonly merged: string;
    private readonly cgroup: string;

    private constructor(
        private readonly dir: string,
        readonly name: string,
    ) {
        this.merged = path.join(dir, "merged");
        this.cgroup = `pycluster-${name}`;
    }

    /** Mounts a new overlay on rootDir in a directory of its own under /var/tmp. */
    static async create(rootDir: string): Promise<FreshMachine> {
        const dir = fs.mkdtempSync("/var/tmp/pycluster-fresh-");
        const m = new FreshMachine(dir, `freshdeb-${process.pid}`);
        for (const d of ["upper", "work", "merged"]) fs.mkdirSync(path.join(dir, d));
        const options = `lowerdir=${rootDir},upperdir=${path.join(dir, "upper")},workdir=${path.join(dir, "work")}`;
        await run(["mount", "-t", "overlay", "overlay", "-o", options, m.merged]).catch((e: unknown) => {
            fs.rmSync(dir, { recursive: true, force: true });
            throw e;
        });
        return m;
    }

    /** A path inside the machine, as seen from outside (through the overlay). */
    file(inside: string): string {
        return path.join(this.merged, inside);
    }

    /** The systemd-nspawn command line that runs argv inside (pure). */
    nspawnArgv(argv: readonly string[], o: EnterOptions): string[] {
        return [
            "systemd-nspawn",
            "--quiet",
            `--directory=${this.merged}`,
            `--machine=${this.name}`,
            // no system bus on this machine: do not register with machined, stay in our own cgroup
            "--register=no",
            "--keep-unit",
            // a command, not a boot: the machine is a root shell on a fresh server
            "--as-pid2",
            "--pipe",
            ...(o.noNetAdmin ? ["--drop-capability=CAP_NET_ADMIN"] : []),
            ...Object.entries(o.binds ?? {}).map(([inside, outside]) => `--bind-ro=${outside}:${inside}`),
            ...(o.cwd ? [`--chdir=${o.cwd}`] : []),
            ...(o.user ? [`--user=${o.user}`] : []),
            "--",
            ...argv,
        ];
    }

    /**
     * Runs argv inside (in a cgroup of its own, so that stop() finds every process it left) and
     * resolves with its exit code and output. `until`, polled while it runs: once true, the machine
     * is stopped and the call resolves (for a command that would go on to do what a test must not
     * wait for).
     */
    enter(argv: readonly string[], o: EnterOptions & { until?: () => boolean } = {}): Promise<{ code: number | null; out: string; stopped: boolean }> {
        const dirs = ensureCgroup(this.cgroup);
        const join = 'for d in $PYC_CGROUPS; do echo $$ > "$d/cgroup.procs"; done; exec "$@"';
        const child = spawn("sh", ["-c", join, "sh", ...this.nspawnArgv(argv, o)], {
            stdio: ["ignore", "pipe", "pipe"],
            env: { ...process.env, PYC_CGROUPS: dirs.join(" ") },
        });
        let out = "";
        child.stdout.on("data", (d: Buffer) => (out += d.toString("utf8")));
        child.stderr.on("data", (d: Buffer) => (out += d.toString("utf8")));
        return new Promise((resolve, reject) => {
            const timeoutMs = o.timeoutMs ?? 10 * 60_000;
            let settled = false;
            const settle = (f: () => void) => {
                if (settled) return;
                settled = true;
                clearInterval(poll);
                clearTimeout(timer);
                f();
            };
            const poll = setInterval(() => {
                if (o.until?.()) settle(() => killCgroup(this.cgroup).then(() => resolve({ code: null, out, stopped: true }), reject));
            }, 100);
            const timer = setTimeout(() => settle(() => reject(new Error(`${argv.join(" ")} did not finish within ${timeoutMs / 1000} s:\n${out}`))), timeoutMs);
            child.once("error", e => settle(() => reject(e)));
            child.once("close", code => settle(() => resolve({ code, out, stopped: false })));
        });
    }

    /** Stops whatever still runs inside, unmounts and removes the overlay (the cache is untouched). */
    async stop(): Promise<void> {
        await killCgroup(this.cgroup);
        removeCgroup(this.cgroup);
        if (fs.existsSync(this.merged)) {
            const r = await run(["umount", this.merged], { allowFailure: true });
            if (r.code !== 0) await run(["umount", "--lazy", this.merged], { allowFailure: true });
        }
        fs.rmSync(this.dir, { recursive: true, force: true });
        // nspawn's per-machine directory, which it leaves behind when /run is not a tmpfs
        fs.rmSync(`/run/systemd/nspawn/propagate/${this.name}`, { recursive: true, force: true });
    }

    /** Whether a process this machine started still runs. */
    get running(): boolean {
        return cgroupPids(this.cgroup).length > 0;
    }
}
