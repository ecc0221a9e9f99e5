/**
 * hostctl as one file: a Python zipapp (a zip archive with __main__.py at its root) built from the
 * package in provisioning/host/hostctl, so installing the agent stays one step on every host. Built
 * in memory, byte for byte the same on any machine: entries sorted, stored without compression (no
 * dependence on the zlib version), every timestamp the zip epoch (1980-01-01).
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as zlib from "zlib";

export const AGENT_PACKAGE_DIR = path.join(__dirname, "host", "hostctl");

/** What the zipapp runs: the package's command line. */
const ROOT_MAIN = "from hostctl.cli import main\n\nmain()\n";

export interface AgentArchive {
    /** The zipapp's bytes. */
    bytes: Buffer;
    /** What `python3 <file>` finds inside: archive path -> sha256 of the content. */
    files: Record<string, string>;
    sha256: string;
}

let cached: AgentArchive | undefined;

/** The agent's zipapp (built once per process). */
export function agentArchive(): AgentArchive {
    if (!cached) {
        const entries: [string, Buffer][] = [["__main__.py", Buffer.from(ROOT_MAIN)]];
        for (const name of fs.readdirSync(AGENT_PACKAGE_DIR).sort()) {
            if (name.endsWith(".py") || name.endsWith(".json")) entries.push([`hostctl/${name}`, fs.readFileSync(path.join(AGENT_PACKAGE_DIR, name))]);
        }
        const bytes = zipStored(entries);
        cached = {
            bytes,
            files: Object.fromEntries(entries.map(([n, c]) => [n, crypto.createHash("sha256").update(c).digest("hex")])),
            sha256: crypto.createHash("sha256").update(bytes).digest("hex"),
        };
    }
    return cached;
}

/** A zip archive of the entries, stored (method 0), in the given order, all dated 1980-01-01 00:00. */
export function zipStored(entries: [string, Buffer][]): Buffer {
    const DOS_DATE = (0 << 9) | (1 << 5) | 1; // 1980-01-01
    const locals: Buffer[] = [];
    const central: Buffer[] = [];
    let offset = 0;
    for (const [name, content] of entries) {
        const nameBytes = Buffer.from(name, "utf8");
        const crc = zlib.crc32(content);
        const local = Buffer.alloc(30);
        local.writeUInt32LE(0x04034b50, 0);
        local.writeUInt16LE(20, 4); // version needed: 2.0
        local.writeUInt16LE(0x0800, 6); // UTF-8 names
        local.writeUInt16LE(0, 8); // stored
        local.writeUInt16LE(0, 10); // time 00:00
        local.writeUInt16LE(DOS_DATE, 12);
        local.writeUInt32LE(crc, 14);
        local.writeUInt32LE(content.length, 18);
        local.writeUInt32LE(content.length, 22);
        local.writeUInt16LE(nameBytes.length, 26);
        local.writeUInt16LE(0, 28);
        const header = Buffer.alloc(46);
        header.writeUInt32LE(0x02014b50, 0);
        header.writeUInt16LE((3 << 8) | 20, 4); // made by: Unix, 2.0
        header.writeUInt16LE(20, 6);
        header.writeUInt16LE(0x0800, 8);
        header.writeUInt16LE(0, 10);
        header.writeUInt16LE(0, 12);
        header.writeUInt16LE(DOS_DATE, 14);
        header.writeUInt32LE(crc, 16);
        header.writeUInt32LE(content.length, 20);
        header.writeUInt32LE(content.length, 24);
        header.writeUInt16LE(nameBytes.length, 28);
        header.writeUInt32LE((0o100644 << 16) >>> 0, 38); // external attributes: a regular 0644 file
        header.writeUInt32LE(offset, 42);
        locals.push(local, nameBytes, content);
        central.push(header, nameBytes);
        offset += local.length + nameBytes.length + content.length;
    }
    const centralBytes = Buffer.concat(central);
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0);
    end.writeUInt16LE(entries.length, 8);
    end.writeUInt16LE(entries.length, 10);
    end.writeUInt32LE(centralBytes.length, 12);
    end.writeUInt32LE(offset, 16);
    return Buffer.concat([...locals, centralBytes, end]);
}
