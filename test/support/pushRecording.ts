/**
 * A plain-text recording of everything the program pushes to hosts, for the
 * golden test: every remote command (where it runs, what it waits for, the
 * command line and its stdin) and every upload, in a stable order. A
 * reshaping of the code must leave it byte-identical.
 */
import * as crypto from "crypto";
import * as path from "path";
import { COMMAND, COPY, ProgramRun, RecordedResource } from "./programHarness";

const ROOT = path.join(__dirname, "..", "..");

function where(connection: Record<string, any> | undefined): string {
    if (!connection) return "(no connection)";
    const hop = (c: Record<string, any>) => `${c.user}@${c.host}:${c.port ?? 22} hostKey=${String(c.hostKey ?? "").split(" ")[1] ?? "-"}`;
    return connection.proxy ? `${hop(connection)} via ${hop(connection.proxy)}` : hop(connection);
}

function dependencies(r: RecordedResource, byUrn: Map<string, RecordedResource>): string {
    const names = r.options.dependsOn.map(urn => byUrn.get(urn)?.name ?? urn).sort();
    return names.length ? names.join(", ") : "-";
}

/** The agent's zipapp (base64 on stdin), recorded as what it holds: each file and its sha256. */
function agentListing(stdin: string): string[] {
    const zip = Buffer.from(stdin, "base64");
    const lines = [`--- stdin: a zip of ${zip.length} bytes (base64), sha256 ${crypto.createHash("sha256").update(zip).digest("hex")}`];
    // Local file headers of a stored zip: signature, then name and content at fixed offsets.
    for (let at = 0; zip.readUInt32LE(at) === 0x04034b50; ) {
        const size = zip.readUInt32LE(at + 18);
        const nameLength = zip.readUInt16LE(at + 26);
        const extra = zip.readUInt16LE(at + 28);
        const name = zip.subarray(at + 30, at + 30 + nameLength).toString("utf8");
        const content = zip.subarray(at + 30 + nameLength + extra, at + 30 + nameLength + extra + size);
        lines.push(`${name} ${crypto.createHash("sha256").update(content).digest("hex")}`);
        at += 30 + nameLength + extra + size;
    }
    return [...lines, "--- end of stdin"];
}

/** The recording of one program run. */
export async function recordPushes(run: ProgramRun): Promise<string> {
    const byUrn = new Map(run.resources.filter(r => r.urn).map(r => [r.urn, r] as const));
    const pushed = run.resources.filter(r => r.type === COMMAND || r.type === COPY).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const out: string[] = [];
    for (const r of pushed) {
        const i = r.inputs;
        if (r.type === COMMAND) {
            out.push(`=== command ${r.name}`);
            out.push(`on: ${where(i.connection)}`);
            out.push(`after: ${dependencies(r, byUrn)}`);
            out.push(`triggers: ${JSON.stringify(i.triggers ?? [])}`);
            out.push(`logging: ${i.logging ?? "-"}; secret stdin: ${r.options.additionalSecretOutputs.includes("stdin")}`);
            out.push(`$ ${i.create}`);
            if (i.update !== undefined) out.push(`update$ ${i.update}`);
            if (i.delete !== undefined) out.push(`delete$ ${i.delete}`);
            if (i.stdin !== undefined && /base64 -d \|/.test(i.create)) out.push(...agentListing(i.stdin));
            else if (i.stdin !== undefined) out.push(`--- stdin (${Buffer.byteLength(i.stdin)} bytes)`, i.stdin, "--- end of stdin");
        } else {
            // Under mocks the asset arrives as itself, its path a promise.
            const source = r.rawInputs.source as { path?: unknown };
            const file = await source?.path;
            out.push(`=== upload ${r.name}`);
            out.push(`on: ${where(i.connection)}`);
            out.push(`after: ${dependencies(r, byUrn)}`);
            out.push(`triggers: ${JSON.stringify(i.triggers ?? [])}`);
            out.push(`to: ${i.remotePath}`);
            out.push(`from: ${typeof file === "string" ? path.relative(ROOT, file) : "(not a file asset)"}`);
        }
    }
    return out.join("\n") + "\n";
}
