/**
 * The Debian 12 root filesystem that every local host boots, plus a flat apt repository of the
 * same packages (so `apt-get install` inside a host works without internet).
 *
 * Built once with mmdebstrap and cached under `cacheDir/rootfs-<key>/`, where the key hashes the
 * package list and RECIPE_VERSION: a second call with the same inputs returns at once.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { gzipSync } from "node:zlib";
import { shellQuote } from "../lib/shell";
import { run } from "./exec";
import { isRunning, processStartTime } from "./procs";

/** Bump when the customisation below changes, so cached root filesystems are rebuilt. */
export const RECIPE_VERSION = 5;

export const DEFAULT_CACHE_DIR = "/var/cache/pycluster-local";

/** Installed in the root filesystem (OVH's Debian 12 image plus what the cluster installs). */
export const DEFAULT_PACKAGES: readonly string[] = [
    "systemd", "systemd-sysv", "dbus", "libpam-systemd", "openssh-server", "openssh-sftp-server", "sudo",
    "python3", "python3-venv", "python3-pip", "nginx", "gunicorn", "python3-gunicorn", "python3-gevent",
    "python3-uvicorn", "iproute2", "curl", "ca-certificates", "procps", "cloud-init", "locales", "certbot",
    "prometheus-node-exporter", "prometheus-nginx-exporter", "prometheus", "nftables", "less", "netbase",
];

/**
 * Packages the program installs on some hosts that the image lacks (a stock OVH image lacks them
 * too; OVH's mirror has them): the local apt repository must serve them and their dependencies.
 * keepalived: the pair of load balancers (issue 13).
 */
export const REPO_PACKAGES: readonly string[] = ["keepalived"];

/**
 * Services of packages the program configures per role (monitoring): installed in the image, but
 * left disabled, so a host runs them only once the program has pushed their configuration (the
 * exporters bound to the node's private address), not with the packages' defaults on every host.
 */
export const DISABLED_SERVICES: readonly string[] = ["prometheus.service", "prometheus-node-exporter.service", "prometheus-nginx-exporter.service"];

export interface RootfsOptions {
    /** Where built root filesystems are kept. Default /var/cache/pycluster-local. */
    cacheDir?: string;
    /** Packages installed in the root filesystem. Default DEFAULT_PACKAGES. */
    packages?: readonly string[];
    /** Packages put only into the apt repository (with their dependencies), not installed. */
    repoOnlyPackages?: readonly string[];
    /**
     * apt sources to build from: a path to a .sources/.list file, or its text. Default: the
     * Debian sources this machine's apt already uses.
     */
    sources?: string;
    /** Debian suite. Default bookworm. */
    suite?: string;
    /** Progress lines (default: none). */
    log?: (line: string) => void;
}

export interface Rootfs {
    /** Read-only root directory, used as the overlay lower layer of every host. */
    rootDir: string;
    /** Flat apt repository (Packages, Release, *.deb), served by each cloud's gateway. */
    repoDir: string;
    /** Cache key (hash of packages and recipe version). */
    key: string;
    /** True when this call built it, false when it came from the cache. */
    built: boolean;
    /** Seconds spent in this call. */
    seconds: number;
}

/** Cache key: stable for the same package sets, suite and recipe version. */
export function rootfsKey(packages: readonly string[], repoOnly: readonly string[], suite: string): string {
    const canon = JSON.stringify({
        v: RECIPE_VERSION,
        suite,
        packages: [...new Set(packages)].sort(),
        repoOnly: [...new Set(repoOnly)].sort(),
    });
    return createHash("sha256").update(canon).digest("hex").slice(0, 16);
}

/** cloud-init settings baked into the image: NoCloud seed only, no network configuration. */
export const CLOUD_INIT_LOCAL_CFG = `# pycluster-local: hosts are seeded from /var/lib/cloud/seed/nocloud/
datasource_list: [ NoCloud ]
network: {config: disabled}
# the local apt repository is written per host; do not replace it with Debian's mirrors
apt:
  preserve_sources_list: true
`;

/**
 * sshd must not start before cloud-init has installed the host keys given in user-data
 * (`ssh_keys:`), as on a VM (cloud-init.service already orders itself before sshd; this makes it
 * explicit). cloud-init generates keys itself when user-data has none; only if cloud-init did not
 * run at all are keys generated here, so that sshd still starts. The key check must come before
 * Debian's own `sshd -t`, hence the reset of ExecStartPre.
 */
export const SSH_DROPIN = `[Unit]
After=cloud-init.service
[Service]
ExecStartPre=
ExecStartPre=/bin/sh -c 'ls /etc/ssh/ssh_host_*_key >/dev/null 2>&1 || ssh-keygen -A'
ExecStartPre=/usr/sbin/sshd -t
`;

/** Shell commands run by mmdebstrap after installation; "$1" is the root directory. */
export function customizeCommands(repoOnlyPackages: readonly string[]): string[] {
    const cmds = [
        // the default user of OVH's Debian images: passwordless sudo, key login only
        `chroot "$1" useradd --create-home --shell /bin/bash --comment Debian --groups adm,sudo debian`,
        `printf 'debian ALL=(ALL) NOPASSWD:ALL\\n' > "$1/etc/sudoers.d/90-cloud-init-users" && chmod 0440 "$1/etc/sudoers.d/90-cloud-init-users"`,
        // locale
        `printf 'en_US.UTF-8 UTF-8\\n' > "$1/etc/locale.gen" && chroot "$1" locale-gen >/dev/null`,
        `printf 'LANG=en_US.UTF-8\\n' > "$1/etc/default/locale"`,
        // per-host identity is written by the host overlay: no host keys, machine-id, hostname here
        `rm -f "$1"/etc/ssh/ssh_host_*`,
        `: > "$1/etc/machine-id" && rm -f "$1/var/lib/dbus/machine-id"`,
        `rm -f "$1/etc/hostname"`,
        `mkdir -p "$1/etc/systemd/system/ssh.service.d"`,
        `printf '%s' ${shellQuote(SSH_DROPIN)} > "$1/etc/systemd/system/ssh.service.d/10-pycluster-local.conf"`,
        `printf '%s' ${shellQuote(CLOUD_INIT_LOCAL_CFG)} > "$1/etc/cloud/cloud.cfg.d/90-pycluster-local.cfg"`,
        // apt sources are per cloud (the gateway address), written into each host's overlay
        `rm -f "$1/etc/apt/sources.list" "$1"/etc/apt/sources.list.d/*`,
        `chroot "$1" systemctl disable --quiet ${DISABLED_SERVICES.join(" ")}`,
    ];
    if (repoOnlyPackages.length > 0) {
        cmds.unshift(`chroot "$1" apt-get install --download-only -y ${repoOnlyPackages.join(" ")}`);
    }
    return cmds;
}

/**
 * The default apt sources of this machine (its Debian mirror): the first file apt reads that names
 * a Debian archive outside comments. Debian's installer writes sources.list, its cloud images and
 * containers sources.list.d/debian.sources, and other tools other names (mmdebstrap:
 * 0000debian.sources), so every *.list and *.sources file counts, as it does for apt.
 * A machine with no Debian archive among its sources (Ubuntu) gets Debian's own mirror, written to
 * `fallbackDir`: the hosts are Debian 12, as OVH's image is (their packages are checked with
 * debian-archive-keyring, which local/prerequisites.ts installs).
 */
export function defaultSources(etcApt = "/etc/apt", fallbackDir = DEFAULT_CACHE_DIR, suite = "bookworm"): string {
    const parts = path.join(etcApt, "sources.list.d");
    const listed = fs.existsSync(parts) ? fs.readdirSync(parts).filter((f) => /\.(list|sources)$/.test(f)).sort() : [];
    const candidates = [path.join(parts, "debian.sources"), path.join(etcApt, "sources.list"), ...listed.map((f) => path.join(parts, f))];
    const namesDebian = (text: string) => text.split("\n").some((l) => !l.trimStart().startsWith("#") && /debian/.test(l));
    for (const p of candidates) {
        if (fs.existsSync(p) && namesDebian(fs.readFileSync(p, "utf8"))) return p;
    }
    const fallback = path.join(fallbackDir, `debian-${suite}.sources`);
    fs.mkdirSync(fallbackDir, { recursive: true });
    fs.writeFileSync(fallback, debianMirrorSources(suite));
    return fallback;
}

/** Debian's own mirror for a suite, in deb822 form: main, updates and security. */
export function debianMirrorSources(suite: string): string {
    const keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
    return [
        `Types: deb\nURIs: http://deb.debian.org/debian\nSuites: ${suite} ${suite}-updates\nComponents: main\nSigned-By: ${keyring}\n`,
        `Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: ${suite}-security\nComponents: main\nSigned-By: ${keyring}\n`,
    ].join("\n");
}

/** The mmdebstrap command line (pure): installs `packages` into `rootDir`, keeps the .debs in `archiveOut`. */
export function mmdebstrapArgv(o: {
    suite: string;
    rootDir: string;
    packages: readonly string[];
    repoOnlyPackages: readonly string[];
    sourcesArg: string;
    debCache: string;
    archiveOut: string;
}): string[] {
    return [
        "mmdebstrap",
        "--mode=root",
        "--variant=apt",
        "--format=directory",
        `--include=${[...new Set(o.packages)].join(",")}`,
        `--aptopt=Acquire::Check-Valid-Until "false"`,
        `--aptopt=APT::Install-Recommends "false"`,
        "--skip=essential/unlink",
        // reuse .debs of earlier builds
        `--setup-hook=mkdir -p "$1/var/cache/apt/archives/"`,
        `--setup-hook=sync-in ${o.debCache} /var/cache/apt/archives/`,
        ...customizeCommands(o.repoOnlyPackages).map((c) => `--customize-hook=${c}`),
        `--customize-hook=sync-out /var/cache/apt/archives ${o.archiveOut}`,
        o.suite,
        o.rootDir,
        o.sourcesArg,
    ];
}

/**
 * Returns the cached root filesystem and apt repository for these options, building them first
 * if needed (about a minute). Safe to call from several processes: one builds, the others wait.
 */
export async function ensureRootfs(options: RootfsOptions = {}): Promise<Rootfs> {
    const started = Date.now();
    const log = options.log ?? (() => undefined);
    const cacheDir = options.cacheDir ?? DEFAULT_CACHE_DIR;
    const packages = options.packages ?? DEFAULT_PACKAGES;
    const repoOnly = options.repoOnlyPackages ?? [];
    const suite = options.suite ?? "bookworm";
    const key = rootfsKey(packages, repoOnly, suite);
    const dir = path.join(cacheDir, `rootfs-${key}`);
    const result = (built: boolean): Rootfs => ({
        rootDir: path.join(dir, "root"),
        repoDir: path.join(dir, "repo"),
        key,
        built,
        seconds: (Date.now() - started) / 1000,
    });
    if (fs.existsSync(path.join(dir, "READY"))) return result(false);

    fs.mkdirSync(cacheDir, { recursive: true });
    const lock = await acquireLock(path.join(cacheDir, `rootfs-${key}.lock`));
    try {
        if (fs.existsSync(path.join(dir, "READY"))) return result(false);
        const work = `${dir}.build-${process.pid}`;
        fs.rmSync(work, { recursive: true, force: true });
        fs.rmSync(dir, { recursive: true, force: true });
        fs.mkdirSync(path.join(work, "repo"), { recursive: true });
        const debCache = path.join(cacheDir, "debs");
        fs.mkdirSync(debCache, { recursive: true });

        let sourcesArg = options.sources ?? defaultSources();
        if (!fs.existsSync(sourcesArg)) {
            const file = path.join(work, "sources.sources");
            fs.writeFileSync(file, sourcesArg);
            sourcesArg = file;
        }
        log(`building Debian ${suite} root filesystem in ${dir} (mmdebstrap)`);
        const argv = mmdebstrapArgv({
            suite,
            rootDir: path.join(work, "root"),
            packages,
            repoOnlyPackages: repoOnly,
            sourcesArg,
            debCache,
            archiveOut: path.join(work, "repo"),
        });
        await run(argv, { timeoutMs: 20 * 60_000 });

        log("indexing the local apt repository (apt-ftparchive)");
        await buildFlatRepo(path.join(work, "repo"));
        // keep the .debs for the next build of another package set (hard links: no extra space)
        await run(["cp", "-al", "--no-clobber", "-t", debCache, ...debFiles(path.join(work, "repo"))], {
            allowFailure: true,
        });
        fs.rmSync(path.join(work, "sources.sources"), { force: true });
        fs.writeFileSync(path.join(work, "READY"), `${new Date().toISOString()}\n${packages.join(" ")}\n`);
        fs.renameSync(work, dir);
        pruneRootfsCache(cacheDir, key, log);
        return result(true);
    } finally {
        lock.release();
    }
}

/**
 * The local cloud's apt repository holds every package the image lacks that `packages` need (the
 * stack's appPackages), as OVH's Debian mirror would. apt runs on this machine with a state of its
 * own against the image's dpkg status, so it downloads exactly what an `apt-get install` on a host
 * would fetch; the repository is indexed again when anything was added. Returns what was added.
 */
export async function ensureRepoPackages(rootfs: Pick<Rootfs, "rootDir" | "repoDir">, packages: readonly string[], o: { log?: (line: string) => void; sources?: string } = {}): Promise<string[]> {
    if (packages.length === 0) return [];
    // Each was added with what it needs: nothing to fetch (and no apt-get update against the mirror).
    if (packages.every(p => repoHas(rootfs.repoDir, p))) return [];
    const lock = await acquireLock(`${rootfs.repoDir}.lock`);
    const work = fs.mkdtempSync(path.join(path.dirname(rootfs.repoDir), "repo-add-"));
    try {
        const sources = o.sources ?? defaultSources();
        const parts = path.join(work, "sources.list.d");
        fs.mkdirSync(parts);
        fs.mkdirSync(path.join(work, "state", "lists", "partial"), { recursive: true });
        fs.mkdirSync(path.join(work, "cache", "archives", "partial"), { recursive: true });
        fs.copyFileSync(sources, path.join(parts, path.basename(sources).endsWith(".sources") ? "debian.sources" : "debian.list"));
        const apt = [
            "apt-get", "-q",
            "-o", `Dir::State=${path.join(work, "state")}`,
            "-o", `Dir::State::status=${path.join(rootfs.rootDir, "var/lib/dpkg/status")}`,
            "-o", `Dir::Cache=${path.join(work, "cache")}`,
            "-o", "Dir::Etc::SourceList=/dev/null",
            "-o", `Dir::Etc::SourceParts=${parts}`,
            "-o", "APT::Install-Recommends=false",
            "-o", "Debug::NoLocking=true",
        ];
        o.log?.(`adding ${packages.join(" ")} (and what they need) to the local apt repository`);
        await run([...apt, "update"], { timeoutMs: 10 * 60_000 });
        await run([...apt, "install", "--download-only", "-y", ...packages], { timeoutMs: 20 * 60_000 });
        const downloaded = debFiles(path.join(work, "cache", "archives"));
        const added = downloaded.filter(f => !fs.existsSync(path.join(rootfs.repoDir, path.basename(f))));
        for (const f of added) fs.copyFileSync(f, path.join(rootfs.repoDir, path.basename(f)));
        if (added.length > 0) await buildFlatRepo(rootfs.repoDir);
        return added.map(f => path.basename(f));
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
        lock.release();
    }
}

/**
 * Removes root filesystems of other keys (older recipes or package sets) from the cache, except
 * those that a running host still uses as its overlay's lower layer.
 */
export function pruneRootfsCache(cacheDir: string, keepKey: string, log: (line: string) => void = () => undefined): void {
    const mountinfo = fs.readFileSync("/proc/self/mountinfo", "utf8");
    for (const entry of fs.readdirSync(cacheDir)) {
        const m = /^rootfs-([0-9a-f]{16})$/.exec(entry);
        if (!m || m[1] === keepKey) continue;
        const dir = path.join(cacheDir, entry);
        if (mountinfo.includes(`lowerdir=${dir}/`)) continue;
        log(`removing unused cached root filesystem ${dir}`);
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/** Whether the repository's index lists a package of that name (a plain name, no version or arch). */
function repoHas(repoDir: string, name: string): boolean {
    try {
        return fs.readFileSync(path.join(repoDir, "Packages"), "utf8").split("\n").includes(`Package: ${name}`);
    } catch {
        return false;
    }
}

function debFiles(dir: string): string[] {
    return fs
        .readdirSync(dir)
        .filter((f) => f.endsWith(".deb"))
        .map((f) => path.join(dir, f));
}

/** Writes Packages, Packages.gz and Release for the .deb files in `dir` (a flat repository). */
export async function buildFlatRepo(dir: string): Promise<void> {
    // Each index replaced by a rename: a host running apt-get update meanwhile reads the old or the new one.
    const put = (name: string, content: string | Buffer) => {
        fs.writeFileSync(path.join(dir, `.${name}.tmp`), content);
        fs.renameSync(path.join(dir, `.${name}.tmp`), path.join(dir, name));
    };
    const packages = await run(["apt-ftparchive", "packages", "."], { cwd: dir });
    put("Packages.gz", gzipSync(packages.stdout, { level: 9 }));
    put("Packages", packages.stdout);
    const release = await run(["apt-ftparchive", "-o", "APT::FTPArchive::Release::Origin=pycluster-local", "release", "."], { cwd: dir });
    put("Release", release.stdout);
}

export interface Lock {
    release(): void;
}

/**
 * An exclusive lock file naming its owner by PID and start time; a lock whose owner is gone is
 * taken over, also when its PID now belongs to another process (after a reboot, or in another
 * PID namespace, where a killed `up` and the next one can have the same PID).
 */
export async function acquireLock(file: string, timeoutMs = 30 * 60_000): Promise<Lock> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        try {
            const fd = fs.openSync(file, "wx");
            fs.writeSync(fd, `${process.pid} ${processStartTime(process.pid)}`);
            fs.closeSync(fd);
            return { release: () => fs.rmSync(file, { force: true }) };
        } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
            const [pid, startTime] = readOr(file, "0").split(" ");
            const owner = Number(pid);
            // a lock from before start times were recorded names its owner by PID only
            const held = startTime ? isRunning({ pid: owner, startTime }) : owner > 0 && pidAlive(owner);
            if (!held) {
                fs.rmSync(file, { force: true });
                continue;
            }
            if (Date.now() > deadline) throw new Error(`timed out waiting for ${file} (held by PID ${owner})`);
            await new Promise((r) => setTimeout(r, 1000));
        }
    }
}

function readOr(file: string, fallback: string): string {
    try {
        return fs.readFileSync(file, "utf8").trim();
    } catch {
        return fallback;
    }
}

function pidAlive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch (err) {
        return (err as NodeJS.ErrnoException).code === "EPERM";
    }
}
