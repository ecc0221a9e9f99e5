/**
 * npm run local -- up | preview | down | status   [--stack local] [--set key=value]... [--json]
 *
 * Rehearses a stack on local Debian hosts before paying for OVH: the same
 * program, the same files and commands, over real SSH. Linux and root only.
 */
import { cloudPrefix, localDown, localPreview, localUp, ProgramFailure } from "./stack";
import { LocalCloud } from "./cloud";
import { CliConfigError } from "./cliConfig";
import { PrerequisiteError } from "./prerequisites";
import { ConfigError } from "../config/reader";
import { sshCommand, sshTunnelCommand } from "../provisioning/render/sshConfig";

function parseArgs(argv: string[]) {
    const [command = "up", ...rest] = argv;
    const o = { command, stack: "local", set: {} as Record<string, string>, setObject: {} as Record<string, unknown>, json: false };
    for (let i = 0; i < rest.length; i++) {
        const a = rest[i];
        if (a === "--stack") o.stack = rest[++i];
        else if (a === "--json") o.json = true;
        else if (a === "--set") {
            const [k, ...v] = (rest[++i] ?? "").split("=");
            if (!k || v.length === 0) throw new Error(`--set needs key=value, got ${JSON.stringify(rest[i])}`);
            const value = v.join("=");
            // A JSON list is what `pulumi config set --path 'key[0]' ...` builds: a list, not a string.
            if (value.startsWith("[")) o.setObject[k] = JSON.parse(value);
            else o.set[k] = value;
        } else throw new Error(`unknown argument ${a}\nusage: npm run local -- up|preview|down|status [--stack local] [--set key=value]... [--json]`);
    }
    return o;
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    const log = (line: string) => console.error(`  ${line}`);
    if (args.command === "up") {
        const r = await localUp({ stack: args.stack, set: args.set, setObject: args.setObject, log });
        const o = r.outputs;
        const info = {
            lb: o.lbPublicIp,
            publicNetns: r.cloud.publicNetns,
            apps: o.appPrivateIps,
            sshUser: "debian",
            sshKey: r.sshKeyFile,
            sshConfig: r.sshConfigFile,
            url: o.url,
        };
        if (args.json) {
            console.log(JSON.stringify(info));
            return;
        }
        console.log(`\nstack ${args.stack} is up on local hosts in ${(r.wallMs / 1000).toFixed(1)} s (${r.remoteExecutions.length} remote steps ran)`);
        console.log(`  URL          ${o.url}   (self-signed: curl -k ${o.url})`);
        console.log(`  from a client namespace: ip netns exec ${r.cloud.publicNetns} curl -k ${o.url}`);
        // The stack's commands, with this machine's copy of its ssh_config (sshKeySetup's files, under the state directory).
        const alias = (ip: string) => r.cloud.hosts().find(h => h.privateIp === ip)!.name;
        const lbAlias = r.sshLbAlias;
        console.log(`  load balancer ${sshCommand(r.sshConfigFile, lbAlias)}${o.lbs ? "   (whichever of the pair holds the address)" : ""}`);
        for (const lb of (o.lbs ?? []) as { name: string }[]) console.log(`  LB of pair   ${sshCommand(r.sshConfigFile, lb.name)}`);
        for (const ip of o.appPrivateIps as string[]) console.log(`  app node     ${sshCommand(r.sshConfigFile, alias(ip))}`);
        const prometheus = o.monitoring?.prometheus;
        if (prometheus) {
            const ip = /http:\/\/([\d.]+):(\d+)/.exec(prometheus.url)!;
            console.log(`  monitoring   ${sshCommand(r.sshConfigFile, alias(ip[1]))}`);
            console.log(`  Prometheus   ${sshTunnelCommand(r.sshConfigFile, lbAlias, ip[1], Number(ip[2]))}   then ${prometheus.tunnelUrl}`);
        }
        console.log(`  capacity     ${o.capacity.ceiling} concurrent requests (bound by ${o.capacity.bindingLimit})`);
        const rates = o.capacity.rates;
        console.log(`               ${rates.requestsPerSecond.ceiling} requests/s (bound by ${rates.requestsPerSecond.bindingLimit}), ${rates.newConnectionsPerSecond.ceiling} new TLS connections/s (bound by ${rates.newConnectionsPerSecond.bindingLimit}); per-core costs measured ${rates.measured}`);
        console.log(`remove it with: npm run local -- down${args.stack === "local" ? "" : ` --stack ${args.stack}`}`);
    } else if (args.command === "preview") {
        const steps = await localPreview({ stack: args.stack, set: args.set, setObject: args.setObject, log });
        const changes = steps.filter(s => s.action !== "same");
        console.log(`${changes.length} change(s), ${steps.length - changes.length} unchanged`);
    } else if (args.command === "down") {
        const steps = await localDown({ stack: args.stack, log });
        console.log(`stack ${args.stack} removed (${steps.length} resources deleted) and local cloud ${cloudPrefix(args.stack)} torn down`);
    } else if (args.command === "status") {
        const cloud = LocalCloud.open(cloudPrefix(args.stack));
        for (const h of cloud.hosts()) console.log(`${h.name.padEnd(28)} ${h.running ? "running" : "stopped"}  ${h.privateIp}${h.publicIp ? `  public ${h.publicIp}` : ""}`);
    } else {
        throw new Error(`unknown command ${args.command}: use up, preview, down or status`);
    }
}

main().then(
    () => process.exit(0),
    (e: unknown) => {
        // What the CLI or the program says about a bad configuration, a failed step or a machine
        // that lacks a prerequisite needs no stack trace.
        const plain = e instanceof ProgramFailure || e instanceof ConfigError || e instanceof CliConfigError || e instanceof PrerequisiteError;
        const message = plain ? (e as Error).message : e instanceof Error ? e.stack ?? e.message : String(e);
        console.error(`\nerror: ${message}`);
        process.exit(1);
    },
);
