/**
 * Runs the real program (index.ts) under Pulumi's mocks: the routine shared
 * by the unit tests (a fake cloud) and the local rehearsal (a cloud of local
 * hosts). Records each registration's resource options, which the mocks API
 * does not pass on.
 */
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import * as pulumi from "@pulumi/pulumi";
import { ENV_FALLBACK } from "../config/reader";
import type { CliConfig } from "./cliConfig";

// Internal SDK modules (waitForRPCs and leakedPromises have no public equivalent). They can change
// in any minor release: package.json pins @pulumi/pulumi with ~ for them.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const debuggable = require("@pulumi/pulumi/runtime/debuggable") as { leakedPromises(): [Set<unknown>, string] };
// eslint-disable-next-line @typescript-eslint/no-require-imports
const settings = require("@pulumi/pulumi/runtime/settings") as {
    waitForRPCs(): Promise<void>;
    getMonitor(): { registerResource(req: RegisterRequest, cb: (err: unknown, resp?: RegisterResponse) => void): Promise<void> };
};

interface RegisterRequest {
    getType(): string;
    getName(): string;
    getParent(): string;
    getDependenciesList(): string[];
    getIgnorechangesList(): string[];
    getDeletedwith(): string;
    getDeletebeforereplace(): boolean;
    getProtect(): boolean;
    getProvider(): string;
    getAdditionalsecretoutputsList(): string[];
}
interface RegisterResponse {
    getUrn(): string;
}

export const PROJECT_ROOT = path.join(__dirname, "..");
export const PROJECT = "pycluster";
export const SECRET_SIG = "4dabf18193072939515e22adb298388d";
const SECRET_VALUE = "1b47061264138c4ac30d75fd1eb44270";

export interface ResourceOptionsSeen {
    parent: string;
    dependsOn: string[];
    ignoreChanges: string[];
    deletedWith: string;
    deleteBeforeReplace: boolean;
    protect: boolean;
    /** The provider reference ("<urn>::<id>"), empty for the default provider. */
    provider: string;
    additionalSecretOutputs: string[];
}

export interface Registration {
    type: string;
    name: string;
    /** Inputs as the engine received them: secrets wrapped. */
    rawInputs: Record<string, any>;
    options: ResourceOptionsSeen;
}

export interface ProgramMocks {
    /** Called for every resource, with its options; returns its id and output state. */
    newResource(r: Registration): Promise<{ id: string; state: Record<string, any> }> | { id: string; state: Record<string, any> };
}

export interface ProgramRunResult {
    outputs: Record<string, unknown>;
    /** Names of top-level outputs that are secret. */
    secretOutputs: string[];
}

/** The program threw (a bad config, a failed step); `cause` is what it threw. */
export class ProgramFailure extends Error {
    constructor(readonly cause: unknown) {
        super(cause instanceof Error ? cause.message : String(cause));
    }
}

export function isSecretValue(value: any): boolean {
    return !!value && typeof value === "object" && value[SECRET_SIG] === SECRET_VALUE;
}

/** Inputs with every secret wrapper removed. */
export function unwrapSecrets(value: any): any {
    if (Array.isArray(value)) return value.map(unwrapSecrets);
    if (value && typeof value === "object") {
        if (isSecretValue(value)) return unwrapSecrets(value.value);
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unwrapSecrets(v)]));
    }
    return value;
}

/** The `config:` of Pulumi.<stack>.yaml as raw strings (arrays and objects as JSON), keys without the project prefix. */
export function loadStackFile(stack: string): Record<string, string> {
    const doc = parse(fs.readFileSync(path.join(PROJECT_ROOT, `Pulumi.${stack}.yaml`), "utf8")) as { config?: Record<string, unknown> };
    const out: Record<string, string> = {};
    for (const [key, value] of Object.entries(doc.config ?? {})) {
        const short = key.startsWith(`${PROJECT}:`) ? key.slice(PROJECT.length + 1) : key;
        out[short] = typeof value === "string" ? value : JSON.stringify(value);
    }
    return out;
}

/** How a preview shows an output whose value is known only after the update (the CLI prints `output<string>`). */
export const UNKNOWN_OUTPUT = "<known after up>";

/** Resolves Outputs nested anywhere in a value; an unknown one (a preview) becomes UNKNOWN_OUTPUT. */
export async function resolveDeep(value: unknown): Promise<unknown> {
    if (pulumi.Output.isInstance(value)) {
        // apply() never calls back on an unknown value: ask first, or a preview would wait forever.
        const known = await (value as unknown as { isKnown: Promise<boolean> }).isKnown;
        if (!known) return UNKNOWN_OUTPUT;
        return resolveDeep(await new Promise(r => (value as pulumi.Output<unknown>).apply(r)));
    }
    if (Array.isArray(value)) return Promise.all(value.map(resolveDeep));
    if (value && typeof value === "object") {
        return Object.fromEntries(await Promise.all(Object.entries(value).map(async ([k, v]) => [k, await resolveDeep(v)])));
    }
    return value;
}

/**
 * Environment variables the program reads credentials from (config/stackConfig.ts). A mocked run
 * sees only the ones it is given, never the developer's own.
 */
export const CREDENTIAL_ENV: readonly string[] = Object.values(ENV_FALLBACK);

export interface MockedRun {
    stack: string;
    /** The stack's configuration as the CLI builds it (local/cliConfig.ts). */
    config: CliConfig;
    /** Credential variables of the environment the program runs in (see CREDENTIAL_ENV). */
    env?: Record<string, string>;
    preview: boolean;
    mocks: ProgramMocks;
    /** Every registration, as it happens (also those whose mock fails). */
    onRegister?: (r: Registration & { urn?: string }) => void;
    /**
     * Failures the mocks recorded. Outputs that depend on a failed resource
     * never resolve, so the run checks these before it reads outputs.
     */
    failures?: () => Error[];
    /** Resolves when a run with failures has settled (the SDK's queue never drains then); stops when aborted. */
    settledAfterFailure?: (stop: AbortSignal) => Promise<void>;
}

/**
 * Installs the mocks, with each registration's resource options (which the mocks API does not pass
 * on) read from the request the SDK sends to its monitor.
 */
async function installMocks(o: MockedRun): Promise<void> {
    const pending = new Map<string, ResourceOptionsSeen>();
    await pulumi.runtime.setMocks(
        {
            newResource: args => {
                const options = pending.get(`${args.type}::${args.name}`)!;
                return o.mocks.newResource({ type: args.type, name: args.name, rawInputs: args.inputs, options });
            },
            call: args => args.inputs,
        },
        PROJECT,
        o.stack,
        o.preview,
    );
    const monitor = settings.getMonitor();
    const register = monitor.registerResource.bind(monitor);
    monitor.registerResource = (req, cb) => {
        const options: ResourceOptionsSeen = {
            parent: req.getParent(),
            dependsOn: req.getDependenciesList(),
            ignoreChanges: req.getIgnorechangesList(),
            deletedWith: req.getDeletedwith(),
            deleteBeforeReplace: req.getDeletebeforereplace(),
            protect: req.getProtect(),
            provider: req.getProvider(),
            additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
        };
        pending.set(`${req.getType()}::${req.getName()}`, options);
        return register(req, (err, resp) => {
            o.onRegister?.({ type: req.getType(), name: req.getName(), rawInputs: {}, options, urn: resp?.getUrn() });
            cb(err, resp);
        });
    };
}

/** The stack's outputs with every Output resolved, and the names of the secret ones. */
async function resolveOutputs(outputs: Record<string, unknown>): Promise<ProgramRunResult> {
    const resolved: Record<string, unknown> = {};
    const secretOutputs: string[] = [];
    try {
        for (const [key, value] of Object.entries(outputs)) {
            resolved[key] = await resolveDeep(value);
            if (pulumi.Output.isInstance(value) && (await pulumi.isSecret(value))) secretOutputs.push(key);
        }
    } catch (e) {
        throw new ProgramFailure(e);
    }
    return { outputs: resolved, secretOutputs };
}

export async function runProgramWithMocks(o: MockedRun): Promise<ProgramRunResult> {
    await installMocks(o);
    // What the CLI hands over in PULUMI_CONFIG and PULUMI_CONFIG_SECRET_KEYS.
    pulumi.runtime.setAllConfig(o.config.config, o.config.secretKeys);
    const saved = Object.fromEntries(CREDENTIAL_ENV.map(v => [v, process.env[v]]));
    for (const v of CREDENTIAL_ENV) {
        if (o.env?.[v] !== undefined) process.env[v] = o.env[v];
        else delete process.env[v];
    }
    try {
        // eslint-disable-next-line @typescript-eslint/no-require-imports
        const program = require(path.join(PROJECT_ROOT, "index.ts")) as () => Promise<Record<string, unknown>>;
        let outputs: Record<string, unknown>;
        try {
            outputs = await program();
        } catch (e) {
            await settings.waitForRPCs().catch(() => undefined);
            throw new ProgramFailure(e);
        }
        const drained = settings.waitForRPCs().catch(() => undefined);
        const stop = new AbortController();
        await (o.settledAfterFailure ? Promise.race([drained, o.settledAfterFailure(stop.signal)]) : drained);
        stop.abort();
        const failed = o.failures?.() ?? [];
        if (failed.length > 0) {
            // What waits on the failed resource stays pending, as in a real update: not a leak to report at exit.
            debuggable.leakedPromises();
            throw new ProgramFailure(failed.length === 1 ? failed[0] : new Error(failed.map(f => f.message).join("\n\n")));
        }
        return await resolveOutputs(outputs);
    } finally {
        for (const [k, v] of Object.entries(saved)) {
            if (v !== undefined) process.env[k] = v;
            else delete process.env[k];
        }
    }
}
