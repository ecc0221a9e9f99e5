/**
 * Runs the real program (index.ts) under Pulumi's mocks against a fake cloud
 * that answers the way OVH/OpenStack would (ids, OpenStack UUIDs, addresses),
 * and records every resource with its inputs and options.
 */
import * as fs from "fs";
import * as path from "path";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { CliConfig, cliStackConfig } from "../../local/cliConfig";
import { CloudMakers, created } from "../../local/fakeCloud";
import { FakeNeutron } from "../../local/neutron";
import {
    isSecretValue,
    loadStackFile,
    PROJECT,
    PROJECT_ROOT,
    ProgramFailure as RunFailure,
    ResourceOptionsSeen,
    runProgramWithMocks,
    unwrapSecrets,
} from "../../local/program";

export { loadStackFile, PROJECT };
export const isWrappedSecret = isSecretValue;

export interface RecordedResource {
    type: string;
    name: string;
    urn: string;
    /** Inputs with secrets unwrapped. */
    inputs: Record<string, any>;
    /** Inputs as the engine got them: secrets still wrapped. */
    rawInputs: Record<string, any>;
    options: ResourceOptionsSeen;
}

export interface ProgramRun {
    resources: RecordedResource[];
    outputs: Record<string, unknown>;
    /** Names of top-level outputs that are secret. */
    secretOutputs: string[];
    byType(type: string): RecordedResource[];
}

/** Credentials that satisfy validation, as stack config keys; none of them reaches a real API. */
export const TEST_CREDENTIALS: Record<string, string> = {
    serviceName: "0123456789abcdef0123456789abcdef",
    ovhApplicationKey: "test-app-key",
    ovhApplicationSecret: "test-app-secret-6f1c",
    ovhConsumerKey: "test-consumer-key-9a2e",
    openstackUserName: "user-test",
    openstackPassword: "test-openstack-password-41d7",
};
export const TEST_SECRET_KEYS = ["ovhApplicationSecret", "ovhConsumerKey", "openstackPassword"];

/** The credentials as stack configuration, the secret ones set with --secret (the other path the README gives). */
export const CONFIG_CREDENTIALS = {
    set: Object.fromEntries(Object.entries(TEST_CREDENTIALS).filter(([k]) => !TEST_SECRET_KEYS.includes(k))),
    setSecret: Object.fromEntries(Object.entries(TEST_CREDENTIALS).filter(([k]) => TEST_SECRET_KEYS.includes(k))),
};

/** The same credentials where the README puts them first: in the environment of `pulumi up`. */
export const TEST_ENV: Record<string, string> = {
    OVH_CLOUD_PROJECT_SERVICE: TEST_CREDENTIALS.serviceName,
    OVH_APPLICATION_KEY: TEST_CREDENTIALS.ovhApplicationKey,
    OVH_APPLICATION_SECRET: TEST_CREDENTIALS.ovhApplicationSecret,
    OVH_CONSUMER_KEY: TEST_CREDENTIALS.ovhConsumerKey,
    OS_USERNAME: TEST_CREDENTIALS.openstackUserName,
    OS_PASSWORD: TEST_CREDENTIALS.openstackPassword,
};

/**
 * A stack's configuration as `pulumi up` passes it: Pulumi.<stack>.yaml (or an empty stack file),
 * keys removed from it (`unset`), then `pulumi config set` as a user would type it: values that
 * are JSON lists with --path (structured), the rest as plain strings, the `secret` ones with --secret.
 */
export function stackConfig(
    stack: string,
    o: { set?: Record<string, string>; setSecret?: Record<string, string>; unset?: string[]; emptyStackFile?: boolean; fileOf?: string } = {},
): CliConfig {
    // `fileOf`: another stack's file under this stack's name (a copy of it, e.g. staging's as "eu-app").
    const file = path.join(PROJECT_ROOT, `Pulumi.${o.fileOf ?? stack}.yaml`);
    const doc = (o.emptyStackFile || !fs.existsSync(file) ? { config: {} } : parseYaml(fs.readFileSync(file, "utf8"))) as { config?: Record<string, unknown> };
    for (const key of o.unset ?? []) {
        delete doc.config?.[key];
        delete doc.config?.[`${PROJECT}:${key}`];
    }
    const set: Record<string, string> = {};
    const setObject: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(o.set ?? {})) {
        const list = v.startsWith("[") ? tryJson(v) : undefined;
        if (Array.isArray(list)) setObject[k] = list;
        else set[k] = v;
    }
    return cliStackConfig({ stack, stackFileText: stringifyYaml(doc), set, setObject, setSecret: o.setSecret });
}

function tryJson(text: string): unknown {
    try {
        return JSON.parse(text);
    } catch {
        return undefined;
    }
}

/** A documentation address (203.0.113.0/24) derived from the resource name: the same in every run. */
function fakePublicAddress(name: string): string {
    let h = 0;
    for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
    return `203.0.113.${10 + (h % 240)}`;
}

const fakeKey = (kind: string, name: string) => `-----BEGIN ${kind}-----\nFAKE-${kind.replace(/ /g, "-")}-${name}\n-----END ${kind}-----\n`;

/** The harness's makers: recognisable fake keys and certificates, documentation addresses. */
export const FAKE_MAKERS: CloudMakers = {
    publicAddress: fakePublicAddress,
    privateKey: (_algorithm, _curve, name) => ({
        privateKeyOpenssh: fakeKey("OPENSSH PRIVATE KEY", name),
        privateKeyPem: fakeKey("PRIVATE KEY", name),
        publicKeyPem: fakeKey("PUBLIC KEY", name),
        publicKeyOpenssh: `ssh-ed25519 AAAAFAKE${name.replace(/[^A-Za-z0-9]/g, "")}\n`,
    }),
    selfSignedCert: (_inputs, name) => fakeKey("CERTIFICATE", name),
};

/** What the fake cloud returns for each resource type (the table both fake clouds share). */
export function fakeState(type: string, name: string, inputs: Record<string, any>): { id: string; state: Record<string, any> } {
    const { id, outputs } = created(type, name, inputs, FAKE_MAKERS);
    return { id, state: outputs };
}

export interface RunOptions {
    stack: string;
    /** `pulumi config set` over Pulumi.<stack>.yaml (keys without the project prefix). */
    set?: Record<string, string>;
    /** `pulumi config set --secret`. */
    setSecret?: Record<string, string>;
    /** Keys removed from the stack file. */
    unset?: string[];
    /** The whole configuration, instead of the stack file with `set`. */
    config?: CliConfig;
    /** Credential variables in the environment (default TEST_ENV: the README's path). */
    env?: Record<string, string>;
    preview?: boolean;
}

/** The program threw; `resources` is what it had registered by then. */
export class ProgramFailure extends Error {
    constructor(
        readonly cause: unknown,
        readonly resources: RecordedResource[],
    ) {
        super(cause instanceof Error ? cause.message : String(cause));
    }
}

export async function runProgram(o: RunOptions): Promise<ProgramRun> {
    return withPlainStackTraces(() => runProgramUnderMocks(o));
}

/**
 * Pulumi records a stack trace for every promise it makes (runtime/debuggable.ts), and under tsx
 * each trace is mapped back through source maps: a third of a mocked run's CPU. While the program
 * runs, traces keep V8's own frames (positions in tsx's output); assertion failures outside keep
 * their mapped traces.
 */
async function withPlainStackTraces<T>(run: () => Promise<T>): Promise<T> {
    const previous = Error.prepareStackTrace;
    Error.prepareStackTrace = (error, frames) => `${error}\n${frames.map(f => `    at ${f}`).join("\n")}`;
    try {
        return await run();
    } finally {
        Error.prepareStackTrace = previous;
    }
}

async function runProgramUnderMocks(o: RunOptions): Promise<ProgramRun> {
    const resources: RecordedResource[] = [];
    // The fake cloud refuses what Neutron refuses (local/neutron.ts).
    const neutron = new FakeNeutron();
    const failures: Error[] = [];
    let lastActivity = Date.now();
    try {
        const { outputs, secretOutputs } = await runProgramWithMocks({
            stack: o.stack,
            config: o.config ?? stackConfig(o.stack, { set: o.set, setSecret: o.setSecret, unset: o.unset }),
            env: o.env ?? TEST_ENV,
            preview: o.preview ?? false,
            mocks: {
                newResource: r => {
                    const inputs = unwrapSecrets(r.rawInputs);
                    resources.push({ type: r.type, name: r.name, urn: "", inputs, rawInputs: r.rawInputs, options: r.options });
                    lastActivity = Date.now();
                    try {
                        neutron.check(r.type, r.name, inputs);
                    } catch (e) {
                        // As in a real update: the failed resource and what depends on it never complete.
                        failures.push(e as Error);
                        return new Promise(() => undefined);
                    }
                    return fakeState(r.type, r.name, inputs);
                },
            },
            failures: () => failures,
            settledAfterFailure: async stop => {
                while (!stop.aborted && !(failures.length > 0 && Date.now() - lastActivity > 300)) await new Promise(res => setTimeout(res, 50));
            },
            onRegister: r => {
                const found = resources.find(x => x.type === r.type && x.name === r.name);
                if (found && r.urn) found.urn = r.urn;
            },
        });
        return { resources, outputs, secretOutputs, byType: (type: string) => resources.filter(r => r.type === type) };
    } catch (e) {
        if (e instanceof RunFailure) throw new ProgramFailure(e.cause, resources);
        throw e;
    }
}

export const COMMAND = "command:remote:Command";
export const COPY = "command:remote:CopyToRemote";
