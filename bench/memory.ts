/**
 * npm run bench:memory -- [--requests N] [--hold DURATION] [--repeat K] [--only TEXT]
 *
 * Memory per held request of nginx and of a gunicorn worker, as the program
 * renders them and with settings that could lower it (bench/lib/memoryVariants.ts),
 * on loopback in a private network namespace: no cluster, no other host. Each
 * variant runs --repeat times; the median is printed with what the setting costs.
 * Root, Linux, nginx, gunicorn with gevent and uvicorn, h2load, openssl.
 */
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { SAMPLE_APP_DIR } from "../config/read";
import { localStackConfig } from "../local/stack";
import { NGINX_SITE_DIR, NGINX_TLS_CERT, NGINX_TLS_KEY } from "../provisioning/render/nginx";
import { renderNginxMain } from "../provisioning/render/nginxMain";
import { lbNginxFiles } from "../provisioning/lbFiles";
import { clientProtocol, median, MemoryVariant, parseVariantOutput, plainHttpSite, VARIANTS, variantNginxConf, variantScript } from "./lib/memoryVariants";
import { parseCount, parseDuration } from "./lib/options";
import { table } from "./lib/report";

interface Options {
    requests: number;
    holdMs: number;
    repeat: number;
    /** Only the variants whose name contains this (the reference, "as rendered", always runs). */
    only?: string;
}

function parseArgs(argv: string[]): Options {
    const o: Options = { requests: 5000, holdMs: 20_000, repeat: 3 };
    for (let i = 0; i < argv.length; i++) {
        const v = argv[i + 1];
        if (argv[i] === "--requests") (o.requests = parseCount(v)), i++;
        else if (argv[i] === "--hold") (o.holdMs = parseDuration(v)), i++;
        else if (argv[i] === "--repeat") (o.repeat = parseCount(v)), i++;
        else if (argv[i] === "--only" && v) (o.only = v), i++;
        else throw new Error(`unknown option ${argv[i]}: use --requests N, --hold DURATION, --repeat K, --only TEXT`);
    }
    if (o.requests > 18_000) throw new Error("--requests must stay below 18000: a process may open at most 20000 files here");
    return o;
}

/** The program's nginx files for the bench stack, with one worker, answering to 127.0.0.1. */
function renderedNginx(): { main: string; site: string } {
    const cfg = localStackConfig({ stack: "bench", set: {} });
    const files = lbNginxFiles(cfg, { publicIp: "127.0.0.1" });
    const site = files.find(f => f.name === "site.conf")!.content;
    // One worker: its growth is the figure (the stack's 13 workers would split it 13 ways).
    const main = renderNginxMain({ workerProcesses: 1, workerConnections: 19_000, workerOpenFiles: 19_500 });
    // Upstreams: the local gunicorn instead of the bench's app nodes.
    const local = site
        // The status listener on loopback (the LB's private address does not exist here).
        .replace(/^(\s+listen )\d+\.\d+\.\d+\.\d+(:\d+;)$/m, "$1127.0.0.1$2")
        .replace(/^\s+server 10\.\d+\.\d+\.\d+:\d+ max_fails.*\n/gm, (line, offset: number) => (offset === site.search(/^\s+server 10\./m) ? line.replace(/10\.\d+\.\d+\.\d+:\d+/, "127.0.0.1:8000") : ""));
    if ((local.match(/^\s+server \S+ max_fails/gm) ?? []).length !== 1 || !local.includes("server 127.0.0.1:8000")) throw new Error("could not point the rendered upstream at the local app");
    return { main, site: local };
}

let running: { pid: number } | undefined;

function runVariant(v: MemoryVariant, o: Options, work: string, base: { main: string; site: string }): Promise<string> {
    const dir = path.join(work, "nginx");
    fs.rmSync(dir, { recursive: true, force: true });
    // The rendered configuration's relative paths (site, certificate) under the scratch prefix.
    fs.mkdirSync(path.join(dir, path.dirname(NGINX_TLS_CERT)), { recursive: true });
    fs.writeFileSync(path.join(dir, "nginx.conf"), variantNginxConf(base.main, dir, v.nginxDirectives ?? []));
    fs.writeFileSync(path.join(dir, NGINX_SITE_DIR, "site.conf"), v.plainHttp ? plainHttpSite(base.site) : base.site);
    fs.copyFileSync(path.join(work, "fullchain.pem"), path.join(dir, NGINX_TLS_CERT));
    fs.copyFileSync(path.join(work, "privkey.pem"), path.join(dir, NGINX_TLS_KEY));
    fs.copyFileSync("/etc/nginx/mime.types", path.join(dir, "mime.types"));
    const script = variantScript(v, { nginxDir: dir, appDir: SAMPLE_APP_DIR, requests: o.requests, holdMs: o.holdMs, rate: 1000 });
    return new Promise((resolve, reject) => {
        // A private network namespace: the load stays on its loopback.
        const child = spawn("unshare", ["--net", "bash", "-c", script], { cwd: work, stdio: ["ignore", "pipe", "pipe"] });
        running = { pid: child.pid! };
        let out = "";
        child.stdout.on("data", d => (out += d));
        child.stderr.on("data", d => (out += d));
        child.on("error", reject);
        child.on("exit", () => {
            running = undefined;
            resolve(out);
        });
    });
}

async function main(): Promise<void> {
    const o = parseArgs(process.argv.slice(2));
    if (process.getuid?.() !== 0) throw new Error("needs root (a private network namespace)");
    for (const cmd of ["nginx", "h2load", "openssl", "unshare"]) if (spawnSync("which", [cmd]).status !== 0) throw new Error(`${cmd} is missing`);
    // The script's trap ends nginx and gunicorn; SIGTERM to bash (its PID) runs it.
    process.on("SIGINT", () => {
        if (running) process.kill(running.pid, "SIGTERM");
        process.exit(130);
    });
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "pycbench-memory-"));
    try {
        const cert = spawnSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "privkey.pem", "-out", "fullchain.pem", "-subj", "/CN=127.0.0.1", "-days", "2"], { cwd: work });
        if (cert.status !== 0) throw new Error(`openssl: ${cert.stderr}`);
        const base = renderedNginx();
        console.log(`${o.requests} requests held ${o.holdMs / 1000} s on loopback, ${o.repeat} runs per variant (median); ${os.cpus().length} CPUs, ${os.release()}`);
        const rows: string[][] = [];
        let reference: { nginx: number; app: number } | undefined;
        for (const v of VARIANTS.filter((x, i) => i === 0 || !o.only || x.name.includes(o.only))) {
            const runs = [];
            for (let i = 0; i < o.repeat; i++) runs.push(parseVariantOutput(await runVariant(v, o, work, base), o.requests));
            const bad = runs.find(r => r.ok < o.requests);
            if (bad) throw new Error(`${v.name}: only ${bad.ok} of ${o.requests} requests answered 2xx`);
            // The figure is only what the variant says if the clients spoke the protocol it names.
            const wanted = clientProtocol(v);
            const other = runs.find(r => r.protocol !== wanted);
            if (other) throw new Error(`${v.name}: h2load negotiated ${other.protocol}, not ${wanted}`);
            const nginx = median(runs.map(r => r.nginxBytes));
            const app = median(runs.map(r => r.appBytes));
            reference ??= { nginx, app };
            const kib = (b: number) => `${(b / 1024).toFixed(1)} KiB`;
            const delta = (b: number, ref: number) => (v === VARIANTS[0] ? "" : ` (${b - ref >= 0 ? "+" : ""}${((b - ref) / 1024).toFixed(1)})`);
            rows.push([v.name, kib(nginx) + delta(nginx, reference.nginx), kib(app) + delta(app, reference.app), runs.map(r => `${(r.nginxBytes / 1024).toFixed(1)}/${(r.appBytes / 1024).toFixed(1)}`).join(", "), v.cost]);
            console.log(`  ${v.name}: nginx ${kib(nginx)}, app ${kib(app)} per held request`);
        }
        console.log("\n" + table(["variant", "nginx per request", "gunicorn worker per request", "runs (nginx/app KiB)", "what it costs"], rows));
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
    }
}

main().catch(err => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
});
