import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as zlib from "zlib";

/**
 * Packs an app directory into a reproducible .tar.gz named after its content.
 * The release id is a hash of paths, executable bits and contents only, so
 * the same source gives the same id on any machine, and an unchanged app
 * uploads and deploys nothing.
 */

export interface AppArchive {
    /** 12 hex characters: the release directory name on the hosts. */
    id: string;
    path: string;
    files: string[];
    bytes: number;
}

/** Never shipped: VCS data, caches, local virtualenvs, and dotfiles such as .env (secrets go through appEnv). */
const SKIPPED_DIRS = new Set(["__pycache__", "node_modules", "venv", "env"]);

interface Entry {
    rel: string;
    executable: boolean;
    content: Buffer;
}

function collect(root: string): Entry[] {
    const entries: Entry[] = [];
    const walk = (dir: string) => {
        for (const name of fs.readdirSync(dir).sort()) {
            if (name.startsWith(".")) continue;
            const full = path.join(dir, name);
            const rel = path.relative(root, full).split(path.sep).join("/");
            const stat = fs.statSync(full);
            if (stat.isDirectory()) {
                if (fs.lstatSync(full).isSymbolicLink()) throw new Error(`app archive: ${rel} is a symlink to a directory; copy it into the app instead`);
                if (!SKIPPED_DIRS.has(name)) walk(full);
            } else if (stat.isFile()) {
                if (name.endsWith(".pyc")) continue;
                entries.push({ rel, executable: (stat.mode & 0o111) !== 0, content: fs.readFileSync(full) });
            }
        }
    };
    walk(root);
    return entries;
}

export function releaseId(entries: { rel: string; executable: boolean; content: Buffer }[]): string {
    const h = crypto.createHash("sha256");
    for (const e of entries) {
        h.update(e.rel).update("\0").update(e.executable ? "x" : "-").update("\0");
        h.update(crypto.createHash("sha256").update(e.content).digest("hex")).update("\n");
    }
    return h.digest("hex").slice(0, 12);
}

function octal(value: number, width: number): string {
    return value.toString(8).padStart(width - 1, "0") + "\0";
}

/** One 512-byte ustar header. Long paths use the 155-byte prefix field. */
function tarHeader(name: string, size: number, mode: number, type: "0" | "5"): Buffer {
    const header = Buffer.alloc(512);
    let prefix = "";
    let base = name;
    if (Buffer.byteLength(name) > 100) {
        const cut = name.lastIndexOf("/", 155);
        if (cut <= 0 || Buffer.byteLength(name.slice(cut + 1)) > 100) throw new Error(`app archive: path too long for tar: ${name}`);
        prefix = name.slice(0, cut);
        base = name.slice(cut + 1);
    }
    header.write(base, 0, 100, "utf8");
    header.write(octal(mode, 8), 100, "ascii");
    header.write(octal(0, 8), 108, "ascii");
    header.write(octal(0, 8), 116, "ascii");
    header.write(octal(size, 12), 124, "ascii");
    header.write(octal(0, 12), 136, "ascii");
    header.write("        ", 148, "ascii");
    header.write(type, 156, "ascii");
    header.write("ustar\0", 257, "ascii");
    header.write("00", 263, "ascii");
    header.write(prefix, 345, 155, "utf8");
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(octal(sum, 7) + " ", 148, "ascii");
    return header;
}

export function tarEntries(entries: Entry[]): Buffer {
    const blocks: Buffer[] = [];
    const dirs = new Set<string>();
    for (const e of entries) {
        const parts = e.rel.split("/");
        for (let i = 1; i < parts.length; i++) {
            const d = parts.slice(0, i).join("/") + "/";
            if (!dirs.has(d)) {
                dirs.add(d);
                blocks.push(tarHeader(d, 0, 0o755, "5"));
            }
        }
        blocks.push(tarHeader(e.rel, e.content.length, e.executable ? 0o755 : 0o644, "0"), e.content);
        const pad = (512 - (e.content.length % 512)) % 512;
        if (pad) blocks.push(Buffer.alloc(pad));
    }
    blocks.push(Buffer.alloc(1024));
    return Buffer.concat(blocks);
}

/** Builds (or reuses) the archive of `appDir` in `outDir`. */
export function buildAppArchive(appName: string, appDir: string, outDir: string): AppArchive {
    const entries = collect(appDir);
    if (entries.length === 0) throw new Error(`app archive: ${appDir} contains no files to ship`);
    const id = releaseId(entries);
    const file = path.join(outDir, `${appName}-${id}.tar.gz`);
    if (!fs.existsSync(file)) {
        fs.mkdirSync(outDir, { recursive: true });
        const tmp = `${file}.${process.pid}.tmp`;
        fs.writeFileSync(tmp, zlib.gzipSync(tarEntries(entries), { level: 9 }));
        fs.renameSync(tmp, file);
    }
    return { id, path: file, files: entries.map(e => e.rel), bytes: fs.statSync(file).size };
}

