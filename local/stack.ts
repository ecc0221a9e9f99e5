/**
 * The local rehearsal of a stack: the real program, driven by the local
 * engine, on a local cloud named after the stack. `up`, `preview` and
 * `down` as the CLI and the e2e tests use them.
 */
import * as fs from "fs";
import * as path from "path";
import { createCloud, destroyCloud, LocalCloud, stateDirOf } from "./cloud";
import { LocalEngine, StepRecord } from "./engine";
import { loadDeclarations } from "../config/declarations";
import { LOCAL_FILES } from "../config/files";
import { projectValues, SAMPLE_APP_DIR } from "../config/read";
import { StackConfig } from "../config/types";
import { parseStackConfig } from "../config/stackConfig";
import { CliConfig, cliStackConfig } from "./cliConfig";
import { ProgramFailure, PROJECT, runProgramWithMocks } from "./program";
import { renderSshConfig } from "../provisioning/render/sshConfig";
import { ensureLocalCloudPrerequisites } from "./prerequisites";
import { ensureRepoPackages, ensureRootfs, REPO_PACKAGES } from "./rootfs";

/**
 * Credentials the program validates, where the README puts them: exported in the environment of
 * `up` (the local cloud never calls an API with them).
 */
const LOCAL_ENV: Record<string, string> = {
    OVH_CLOUD_PROJECT_SERVICE: "10ca1c10ca1c10ca1c10ca1c10ca1c10",
    OVH_APPLICATION_KEY: "local",
    OVH_APPLICATION_SECRET: "local-not-a-secret",
    OVH_CONSUMER_KEY: "local-not-a-secret",
    OS_USERNAME: "local",
    OS_PASSWORD: "local-not-a-secret",
};

export interface LocalStackOptions {
    /** Stack file Pulumi.<stack>.yaml (default "local"). */
    stack?: string;
    /** `pulumi config set key value` over the stack file (keys without the project prefix). */
    set?: Record<string, string>;
    /** Lists and objects, as `pulumi config set --path 'key[0]' value` writes them (appPackages, adminCidrs, ...). */
    setObject?: Record<string, unknown>;
    /** `pulumi config set --secret` (appEnv, tlsPrivateKey, ...). */
    setSecret?: Record<string, string>;
    /** Internet client namespaces of the cloud (load generators use several). */
    clients?: number;
    /** NoCloud vendor-data per instance name: fault injection for tests (e.g. a slow cloud-init). */
    vendorData?: (instanceName: string) => string | undefined;
    log?: (line: string) => void;
}

export interface UpResult {
    outputs: Record<string, any>;
    secretOutputs: string[];
    /** Every step of this run, including those that found nothing to do. */
    steps: StepRecord[];
    /** Commands and uploads that ran on hosts. */
    remoteExecutions: StepRecord[];
    wallMs: number;
    cloud: LocalCloud;
    /** The deployer's key, written for ssh (0600). */
    sshKeyFile: string;
    /** An ssh_config for `ssh -F` with a Host block per host (aliased by name), beside the key. */
    sshConfigFile: string;
    /** The config's alias of the public address: the LB's name, or a pair's `<project>-<stack>-lb-active`. */
    sshLbAlias: string;
}

export function cloudPrefix(stack: string): string {
    const prefix = `pyc${stack.replace(/[^a-z0-9]/g, "")}`.slice(0, 8);
    return prefix;
}


/**
 * The zones the local internet serves for a stack that uses Let's Encrypt or manages its DNS
 * record: dnsZone, else the zone a user would edit for the domain (the domain without its first
 * label, or the domain itself when it has only two). Undefined: the stack needs no such services.
 */
export function internetZones(cfg: StackConfig): string[] | undefined {
    if (cfg.lb.dnsRecord) return [cfg.lb.dnsRecord.zone];
    if (cfg.lb.tls.mode !== "letsencrypt" || !cfg.lb.domain) return undefined;
    const labels = cfg.lb.domain.split(".");
    return [labels.length > 2 ? labels.slice(1).join(".") : cfg.lb.domain];
}

/**
 * The cloud of a stack: its private network is the stack's subnet, and its
 * "internet" is the stack's first admin CIDR, since the deployer must sit there.
 */
async function openOrCreateCloud(cfg: StackConfig, stack: string, o: LocalStackOptions): Promise<LocalCloud> {
    const privateCidr = cfg.network.cidr;
    const prefix = cloudPrefix(stack);
    const zones = internetZones(cfg);
    if (fs.existsSync(path.join(stateDirOf(prefix), "state.json"))) {
        const cloud = LocalCloud.open(prefix);
        if (cloud.state.privateCidr !== privateCidr) {
            throw new Error(`the local cloud ${prefix} uses ${cloud.state.privateCidr} but the stack's subnetCidr is ${privateCidr}: run \`npm run local -- down\` first`);
        }
        if (cloud.intact) {
            const missing = (zones ?? []).filter(z => !cloud.internet?.zones.includes(z));
            if (missing.length > 0) {
                throw new Error(`the local cloud ${prefix} has no DNS zone ${missing.join(", ")} (made for another configuration): run \`npm run local -- down --stack ${stack}\` first`);
            }
            return cloud;
        }
        // Its network is gone (this machine rebooted): its hosts and the engine's record of them are
        // stale, and reusing the record would boot hosts behind a gateway that no longer exists.
        o.log?.(`the local cloud ${prefix} is left over from before a reboot (its network is gone): removing it and starting again`);
        await destroyCloud(prefix);
    }
    const rootfs = await ensureRootfs({ log: o.log });
    return createCloud({ prefix, privateCidr, publicCidr: cfg.ssh.adminCidrs[0], clients: o.clients ?? 6, rootfs, log: o.log, internet: zones && { zones } });
}

/** The stack's configuration as `pulumi up` would pass it (the CLI refuses what it would refuse). */
function config(stack: string, o: LocalStackOptions): CliConfig {
    return cliStackConfig({ stack, set: o.set, setObject: o.setObject, setSecret: o.setSecret });
}

async function run(stack: string, cloud: LocalCloud | undefined, preview: boolean, o: LocalStackOptions) {
    const log = o.log ?? (() => undefined);
    const engine = new LocalEngine(cloud, { stack, stateDir: stateDirOf(cloudPrefix(stack)), preview, log, vendorData: o.vendorData });
    const result = await runProgramWithMocks({
        stack,
        config: config(stack, o),
        env: LOCAL_ENV,
        preview,
        mocks: engine.mocks(),
        onRegister: r => engine.noteUrn(r.type, r.name, r.urn),
        failures: () => engine.failures,
        settledAfterFailure: stop => engine.settledAfterFailure(stop),
    });
    if (!preview) await engine.finish();
    return { engine, result };
}

/** The validated settings a local run of the stack uses (what tests compare the hosts against). */
export function localStackConfig(o: LocalStackOptions = {}): StackConfig {
    const stack = o.stack ?? "local";
    const declarations = loadDeclarations();
    const cli = config(stack, o);
    const raw = projectValues(declarations.project, cli.config, key => cli.secretKeys.includes(key));
    return parseStackConfig(raw, { declarations, stack, env: LOCAL_ENV, sampleAppDir: SAMPLE_APP_DIR, files: LOCAL_FILES });
}

/** Stands the stack up on local hosts (creating the local cloud on first use). */
export async function localUp(o: LocalStackOptions = {}): Promise<UpResult> {
    const stack = o.stack ?? "local";
    const started = Date.now();
    // A bad configuration stops here, before the local cloud is created, as it stops a real `up`.
    const cfg = localStackConfig({ ...o, stack });
    await ensureLocalCloudPrerequisites({ internet: internetZones(cfg) !== undefined, log: o.log });
    const cloud = await openOrCreateCloud(cfg, stack, o);
    // The app's packages come from the mirror behind the gateway, as on OVH: the local one must have them.
    await ensureRepoPackages({ rootDir: cloud.state.rootDir, repoDir: cloud.state.repoDir }, [...REPO_PACKAGES, ...cfg.app.packages], { log: o.log });
    const { engine, result } = await run(stack, cloud, false, o);
    const sshKeyFile = path.join(cloud.stateDir, `${stack}-deployer.key`);
    fs.writeFileSync(sshKeyFile, String(result.outputs.sshPrivateKey), { mode: 0o600 });
    const { configFile: sshConfigFile, lbAlias: sshLbAlias } = writeSshFiles(cloud, stack, cfg.ssh.user, sshKeyFile, String(result.outputs.sshKnownHosts), String(result.outputs.lbPublicIp));
    return {
        outputs: result.outputs as Record<string, any>,
        secretOutputs: result.secretOutputs,
        steps: engine.steps,
        remoteExecutions: engine.remoteExecutions,
        wallMs: Date.now() - started,
        cloud,
        sshKeyFile,
        sshConfigFile,
        sshLbAlias,
    };
}

/**
 * What sshKeySetup writes under ~/.ssh for a real stack, in the local cloud's
 * state directory instead: the stack's known_hosts as output, and an
 * ssh_config naming the files here. Returns the config's path.
 */
function writeSshFiles(cloud: LocalCloud, stack: string, user: string, keyFile: string, knownHosts: string, publicIp: string): { configFile: string; lbAlias: string } {
    const knownHostsFile = path.join(cloud.stateDir, `${stack}.known_hosts`);
    fs.writeFileSync(knownHostsFile, knownHosts);
    const hosts = cloud.hosts().sort((a, b) => a.name.localeCompare(b.name, "en", { numeric: true }));
    // One LB holds the public address itself; a pair's is NATed to the VIP, held by either LB
    // (the alias components/outputs.ts gives it), and both LBs sit behind it like the other nodes.
    const holder = hosts.find(h => h.publicIp === publicIp);
    const lb = { alias: holder?.name ?? `${PROJECT}-${stack}-lb-active`, address: publicIp };
    if (!holder && !cloud.floatingNats().some(n => n.publicIp === publicIp)) {
        throw new Error(`the local cloud ${cloud.prefix} has no host or NAT for the public address ${publicIp}`);
    }
    const configFile = path.join(cloud.stateDir, `${stack}.ssh_config`);
    const config = renderSshConfig({
        stack: `${PROJECT}-${stack}`,
        user,
        keyFile,
        knownHostsFile,
        lb,
        privateNodes: hosts.filter(h => h !== holder).map(h => ({ alias: h.name, address: h.privateIp })),
    });
    fs.writeFileSync(configFile, config);
    return { configFile, lbAlias: lb.alias };
}

/** What `up` would do, executing nothing. */
export async function localPreview(o: LocalStackOptions = {}): Promise<StepRecord[]> {
    const stack = o.stack ?? "local";
    const prefix = cloudPrefix(stack);
    const cloud = fs.existsSync(path.join(stateDirOf(prefix), "state.json")) ? LocalCloud.open(prefix) : undefined;
    const { engine } = await run(stack, cloud, true, o);
    return engine.steps;
}

/** Deletes the stack's resources (running their delete steps), then the local cloud. */
export async function localDown(o: LocalStackOptions = {}): Promise<StepRecord[]> {
    const stack = o.stack ?? "local";
    const prefix = cloudPrefix(stack);
    let steps: StepRecord[] = [];
    if (fs.existsSync(path.join(stateDirOf(prefix), "state.json"))) {
        const cloud = LocalCloud.open(prefix);
        const engine = new LocalEngine(cloud, { stack, stateDir: cloud.stateDir, preview: false, log: o.log ?? (() => undefined) });
        await engine.destroyAll();
        steps = engine.steps;
    }
    await destroyCloud(prefix);
    return steps;
}

export { ProgramFailure };
