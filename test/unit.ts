/**
 * npm run test:unit [-- <file or directory>...]
 * npm run test:unit -- --measure [<file or directory>...]    (times each file alone; updates test/unitWeights.json)
 *
 * The unit suites (every test/**\/*.test.ts but the end-to-end ones), split into one group per core
 * plus one, 2 to 4 (PYCLUSTER_UNIT_GROUPS overrides), each group one Node process that loads its files in-process
 * (--experimental-test-isolation=none). A process per file, as `node --test` does by default, spent
 * as much CPU starting Node, tsx and @pulumi/pulumi 59 times as the tests themselves (134 s of CPU
 * against 67 s). Files run one after another inside a group, so tests that set process-wide state
 * (Pulumi's mocks, the environment) never overlap.
 *
 * The first group's report streams; the others' follow as they finish. Exits non-zero if any group fails.
 */
import { spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const ROOT = path.join(__dirname, "..");

function testFiles(roots: string[]): string[] {
    const found: string[] = [];
    const walk = (p: string) => {
        const stat = fs.statSync(p);
        if (stat.isDirectory()) for (const e of fs.readdirSync(p).sort()) walk(path.join(p, e));
        else if (p.endsWith(".test.ts") && !p.endsWith(".e2e.test.ts")) found.push(p);
    };
    for (const r of roots) walk(r);
    return [...new Set(found)];
}

const WEIGHTS = path.join(__dirname, "unitWeights.json");

function readWeights(): Record<string, number> {
    return fs.existsSync(WEIGHTS) ? JSON.parse(fs.readFileSync(WEIGHTS, "utf8")) : {};
}

/**
 * Seconds each file took alone on a 2-vCPU machine (test/unitWeights.json), to balance the groups.
 * A file not in the table (new) weighs the median; a stale table only balances worse.
 */
function weights(files: string[]): { file: string; weight: number }[] {
    const known = readWeights();
    const values = Object.values(known).sort((a, b) => a - b);
    const median = values.length ? values[Math.floor(values.length / 2)] : 1;
    return files.map(file => ({ file, weight: known[file] ?? median }));
}

/** Times each file in a process of its own and updates its row of the table (the other rows stay). */
async function measure(files: string[]): Promise<void> {
    const table = readWeights();
    for (const file of files) {
        const started = Date.now();
        const { code } = await runGroup([file], false);
        table[file] = Math.round((Date.now() - started) / 100) / 10;
        console.log(`${table[file].toFixed(1)} s ${file}${code ? " (failed)" : ""}`);
    }
    fs.writeFileSync(WEIGHTS, JSON.stringify(Object.fromEntries(Object.entries(table).sort()), null, 2) + "\n");
}

/** Groups of about equal weight, heaviest files placed first. */
export function partition(files: { file: string; weight: number }[], groups: number): string[][] {
    const out = Array.from({ length: Math.min(groups, files.length) }, () => ({ weight: 0, files: [] as string[] }));
    for (const f of [...files].sort((a, b) => b.weight - a.weight || a.file.localeCompare(b.file))) {
        const lightest = out.reduce((min, g) => (g.weight < min.weight ? g : min));
        lightest.files.push(f.file);
        lightest.weight += f.weight;
    }
    return out.map(g => g.files.sort());
}

function runGroup(files: string[], stream: boolean): Promise<{ code: number; output: string }> {
    return new Promise((resolve, reject) => {
        const child = spawn(process.execPath, ["--import", "tsx", "--test", "--experimental-test-isolation=none", ...files], {
            cwd: ROOT,
            stdio: ["ignore", "pipe", "pipe"],
        });
        let output = "";
        const take = (chunk: Buffer) => (stream ? process.stdout.write(chunk) : (output += chunk.toString()));
        child.stdout.on("data", take);
        child.stderr.on("data", take);
        child.on("error", reject);
        child.on("close", code => resolve({ code: code ?? 1, output }));
    });
}

async function main(): Promise<void> {
    const measuring = process.argv.includes("--measure");
    const args = process.argv.slice(2).filter(a => a !== "--measure");
    const files = testFiles(args.length ? args.map(a => path.resolve(a)) : [__dirname]).map(f => path.relative(ROOT, f));
    if (files.length === 0) throw new Error(`no unit test files under ${args.join(" ") || "test/"}`);
    if (measuring) return measure(files);
    const groups = partition(
        weights(files),
        Number(process.env.PYCLUSTER_UNIT_GROUPS ?? Math.max(2, Math.min(4, os.availableParallelism() + 1))),
    );
    const started = Date.now();
    const results = groups.map((g, i) => runGroup(g, i === 0));
    let failed = 0;
    for (const [i, r] of results.entries()) {
        const { code, output } = await r;
        if (output) process.stdout.write(output);
        if (code !== 0) failed++;
        console.log(`# group ${i + 1} of ${groups.length}: ${groups[i].length} files, exit ${code}`);
    }
    console.log(`# unit suites: ${files.length} files in ${groups.length} processes, ${((Date.now() - started) / 1000).toFixed(1)} s${failed ? `; ${failed} group(s) failed` : ""}`);
    process.exitCode = failed ? 1 : 0;
}

if (require.main === module) {
    main().catch(e => {
        console.error(e instanceof Error ? e.message : e);
        process.exitCode = 1;
    });
}
