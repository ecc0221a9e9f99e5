/**
 * The SSH window of a deploy job on a GitHub-hosted runner. `pulumi up` provisions the hosts over
 * SSH, and the load balancer admits SSH only from adminCidrs and deployerCidrs; a hosted runner's
 * address is known only once the job runs.
 *
 *   tsx .github/scripts/ssh-window.ts open <stack>    deployerCidrs: ["<runner's public IPv4>/32"]
 *   tsx .github/scripts/ssh-window.ts close <stack>   deployerCidrs: []
 *
 * Run from the repository top: it edits Pulumi.<stack>.yaml of the job's own checkout, which the
 * runner throws away, for the `up` that follows. The value goes into the file as a YAML list, as
 * `pulumi config set --path` would write it: pulumi/actions' config-map sets every value as a
 * string, and the CLI refuses a string for a key declared `type: array`.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { spawnSync } from "node:child_process";
import { parse, parseDocument } from "yaml";
import { containsAddress, formatIpv4, parseCidr, parseIpv4 } from "../../lib/ipv4";

/** Answers with the caller's public IPv4 address as plain text. */
export const ADDRESS_SOURCE = "https://api.ipify.org";

/** Ranges a public address never falls in: getting one means the lookup went wrong. */
const NOT_PUBLIC = [
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.168.0.0/16", "224.0.0.0/3",
].map(text => parseCidr(text)!);

/**
 * The /32 to admit, from what the address source answered. Throws, quoting (the start of) the
 * answer, unless it is one public IPv4 address in dotted-quad form.
 */
export function runnerCidr(answer: string): string {
    const address = parseIpv4(answer);
    const shown = JSON.stringify(answer.length > 80 ? `${answer.slice(0, 80)}…` : answer);
    if (address === undefined) {
        throw new Error(`${ADDRESS_SOURCE} answered ${shown}, not an IPv4 address`);
    }
    if (NOT_PUBLIC.some(range => containsAddress(range, address))) {
        throw new Error(`${ADDRESS_SOURCE} answered ${shown}, which is not a public address`);
    }
    return `${formatIpv4(address)}/32`;
}

/** Asks the address source with curl (bounded, retried); throws with curl's message on failure. */
export function askRunnerAddress(): string {
    const curl = spawnSync("curl", ["-fsS", "--max-time", "10", "--retry", "2", ADDRESS_SOURCE], { encoding: "utf8" });
    if (curl.error) throw new Error(`could not run curl: ${curl.error.message}`);
    if (curl.status !== 0) {
        throw new Error(`could not ask ${ADDRESS_SOURCE} for this runner's address: ${curl.stderr.trim() || `curl exited ${curl.status}`}`);
    }
    return curl.stdout;
}

/** Writes `<project>:deployerCidrs` into Pulumi.<stack>.yaml under `dir`, keeping the rest as is. */
export function writeDeployerCidrs(dir: string, stack: string, cidrs: string[]): string {
    if (!/^[A-Za-z0-9_.-]+$/.test(stack)) throw new Error(`"${stack}" is not a stack name`);
    const file = path.join(dir, `Pulumi.${stack}.yaml`);
    if (!fs.existsSync(file)) throw new Error(`no ${path.basename(file)} in ${dir}`);
    const project = parse(fs.readFileSync(path.join(dir, "Pulumi.yaml"), "utf8")).name;
    const doc = parseDocument(fs.readFileSync(file, "utf8"));
    const key = `${project}:deployerCidrs`;
    doc.setIn(["config", key], doc.createNode(cidrs));
    fs.writeFileSync(file, doc.toString());
    return key;
}

function main(args: string[]): void {
    const [action, stack] = args;
    if (!(action === "open" || action === "close") || stack === undefined || args.length !== 2) {
        throw new Error("usage: ssh-window.ts open|close <stack>");
    }
    const cidrs = action === "open" ? [runnerCidr(askRunnerAddress())] : [];
    const key = writeDeployerCidrs(process.cwd(), stack, cidrs);
    console.log(action === "open"
        ? `SSH window open for this run: ${key} = ${JSON.stringify(cidrs)} in Pulumi.${stack}.yaml`
        : `SSH window closed: ${key} = [] in Pulumi.${stack}.yaml`);
}

if (require.main === module) {
    try {
        main(process.argv.slice(2));
    } catch (err) {
        console.error(`ssh-window: ${(err as Error).message}`);
        process.exit(1);
    }
}
