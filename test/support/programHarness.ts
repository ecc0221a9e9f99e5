/**
 * Runs the real program (index.ts) under Pulumi's mocks and records every
 * resource it registers, with its inputs and its options. A fake cloud that
 * answers the way OVH/OpenStack would (ids, OpenStack UUIDs, addresses).
 */
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import * as pulumi from "@pulumi/pulumi";

// Internal SDK functions the public typings leave out.
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
    getAdditionalsecretoutputsList(): string[];
}
interface RegisterResponse {
    getUrn(): string;
}

export const PROJECT = "pycluster";
export const ROOT = path.join(__dirname, "..", "..");
const SECRET_SIG = "4dabf18193072939515e22adb298388d";

export interface RecordedResource {
    type: string;
    name: string;
    urn: string;
    /** Inputs with secrets unwrapped. */
    inputs: Record<string, any>;
    /** Inputs as the engine got them: secrets still wrapped. */
    rawInputs: Record<string, any>;
    options: { parent: string; dependsOn: string[]; ignoreChanges: string[]; deletedWith: string; additionalSecretOutputs: string[] };
}

export interface ProgramRun {
    resources: RecordedResource[];
    outputs: Record<string, unknown>;
    /** Names of top-level outputs that are secret. */
    secretOutputs: string[];
    byType(type: string): RecordedResource[];
}

/** Credentials that satisfy validation; none of them reaches a real API. */
export const TEST_CREDENTIALS: Record<string, string> = {
    serviceName: "0123456789abcdef0123456789abcdef",
    ovhApplicationKey: "test-app-key",
    ovhApplicationSecret: "test-app-secret-6f1c",
    ovhConsumerKey: "test-consumer-key-9a2e",
    openstackUserName: "user-test",
    openstackPassword: "test-openstack-password-41d7",
};
export const TEST_SECRET_KEYS = ["ovhApplicationSecret", "ovhConsumerKey", "openstackPassword"];

/** The `config:` of Pulumi.<stack>.yaml as raw strings (arrays and objects as JSON), keys without the project prefix. */
export function loadStackFile(stack: string): Record<string, string> {
    const doc = parse(fs.readFileSync(path.join(ROOT, `Pulumi.${stack}.yaml`), "utf8")) as { config?: Record<string, unknown> };
    const out: Record<string, string> = {};
    for (const [key, value] of Object.entries(doc.config ?? {})) {
        const short = key.startsWith(`${PROJECT}:`) ? key.slice(PROJECT.length + 1) : key;
        out[short] = typeof value === "string" ? value : JSON.stringify(value);
    }
    return out;
}

function unwrapSecrets(value: any): any {
    if (Array.isArray(value)) return value.map(unwrapSecrets);
    if (value && typeof value === "object") {
        if (value[SECRET_SIG] === "1b47061264138c4ac30d75fd1eb44270") return unwrapSecrets(value.value);
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unwrapSecrets(v)]));
    }
    return value;
}

export function isWrappedSecret(value: any): boolean {
    return !!value && typeof value === "object" && value[SECRET_SIG] === "1b47061264138c4ac30d75fd1eb44270";
}

let counter = 0;
const fakeKey = (kind: string, name: string) => `-----BEGIN ${kind}-----\nFAKE-${kind.replace(/ /g, "-")}-${name}\n-----END ${kind}-----\n`;

/** What the fake cloud returns for each resource type. */
export function fakeState(type: string, name: string, inputs: Record<string, any>): { id: string; state: Record<string, any> } {
    const id = `${name}-id`;
    switch (type) {
        case "ovh:CloudProject/networkPrivate:NetworkPrivate":
            return { id: `pn-1000_${inputs.vlanId}`, state: { ...inputs, regionsOpenstackIds: Object.fromEntries((inputs.regions ?? []).map((r: string) => [r, `os-net-uuid-${r}`])) } };
        case "ovh:CloudProject/networkPrivateSubnetV2:NetworkPrivateSubnetV2":
            return { id: `os-subnet-uuid-${name}`, state: inputs };
        case "openstack:networking/port:Port":
            return { id: `os-port-uuid-${name}`, state: { ...inputs, allFixedIps: (inputs.fixedIps ?? []).map((f: any) => f.ipAddress) } };
        case "openstack:networking/floatingIp:FloatingIp":
            return { id, state: { ...inputs, address: `203.0.113.${50 + counter++}` } };
        case "openstack:networking/secGroup:SecGroup":
            return { id: `sg-uuid-${name}`, state: inputs };
        case "tls:index/privateKey:PrivateKey":
            return {
                id,
                state: {
                    ...inputs,
                    privateKeyOpenssh: fakeKey("OPENSSH PRIVATE KEY", name),
                    privateKeyPem: fakeKey("PRIVATE KEY", name),
                    publicKeyOpenssh: `ssh-ed25519 AAAAFAKE${name.replace(/[^A-Za-z0-9]/g, "")}\n`,
                },
            };
        case "tls:index/selfSignedCert:SelfSignedCert":
            return { id, state: { ...inputs, certPem: fakeKey("CERTIFICATE", name) } };
        default:
            return { id, state: inputs };
    }
}

export interface RunOptions {
    stack: string;
    /** Raw config values (keys without the project prefix); defaults to Pulumi.<stack>.yaml + TEST_CREDENTIALS. */
    config?: Record<string, string>;
    secretKeys?: string[];
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
    const resources: RecordedResource[] = [];
    const pending = new Map<string, RecordedResource["options"]>();
    await pulumi.runtime.setMocks(
        {
            newResource: args => {
                const { id, state } = fakeState(args.type, args.name, unwrapSecrets(args.inputs));
                resources.push({
                    type: args.type,
                    name: args.name,
                    urn: "",
                    inputs: unwrapSecrets(args.inputs),
                    rawInputs: args.inputs,
                    options: pending.get(`${args.type}::${args.name}`)!,
                });
                return { id, state };
            },
            call: args => args.inputs,
        },
        PROJECT,
        o.stack,
        o.preview ?? false,
    );
    const monitor = settings.getMonitor();
    const register = monitor.registerResource.bind(monitor);
    monitor.registerResource = (req, cb) => {
        pending.set(`${req.getType()}::${req.getName()}`, {
            parent: req.getParent(),
            dependsOn: req.getDependenciesList(),
            ignoreChanges: req.getIgnorechangesList(),
            deletedWith: req.getDeletedwith(),
            additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
        });
        return register(req, (err, resp) => {
            const r = resources.find(x => x.type === req.getType() && x.name === req.getName());
            if (r && resp) r.urn = resp.getUrn();
            cb(err, resp);
        });
    };

    const config = o.config ?? { ...loadStackFile(o.stack), ...TEST_CREDENTIALS };
    const secretKeys = o.secretKeys ?? TEST_SECRET_KEYS;
    pulumi.runtime.setAllConfig(
        Object.fromEntries(Object.entries(config).map(([k, v]) => [`${PROJECT}:${k}`, v])),
        secretKeys.map(k => `${PROJECT}:${k}`),
    );

    // The program must not see the developer's own cloud credentials.
    for (const v of ["OVH_ENDPOINT", "OVH_APPLICATION_KEY", "OVH_APPLICATION_SECRET", "OVH_CONSUMER_KEY", "OVH_CLOUD_PROJECT_SERVICE", "OS_AUTH_URL", "OS_USERNAME", "OS_PASSWORD"]) {
        delete process.env[v];
    }
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const program = require(path.join(ROOT, "index.ts")) as () => Promise<Record<string, unknown>>;
    let outputs: Record<string, unknown>;
    try {
        outputs = await program();
    } catch (e) {
        await settings.waitForRPCs();
        throw new ProgramFailure(e, resources);
    }
    const resolved: Record<string, unknown> = {};
    const secretOutputs: string[] = [];
    for (const [key, value] of Object.entries(outputs)) {
        resolved[key] = await resolveDeep(value);
        if (pulumi.Output.isInstance(value) && (await pulumi.isSecret(value))) secretOutputs.push(key);
    }
    await settings.waitForRPCs();
    return { resources, outputs: resolved, secretOutputs, byType: (type: string) => resources.filter(r => r.type === type) };
}

/** Resolves Outputs nested anywhere in a value. */
export async function resolveDeep(value: unknown): Promise<unknown> {
    if (pulumi.Output.isInstance(value)) return resolveDeep(await new Promise(r => (value as pulumi.Output<unknown>).apply(r)));
    if (Array.isArray(value)) return Promise.all(value.map(resolveDeep));
    if (value && typeof value === "object") {
        return Object.fromEntries(await Promise.all(Object.entries(value).map(async ([k, v]) => [k, await resolveDeep(v)])));
    }
    return value;
}

export const COMMAND = "command:remote:Command";
export const COPY = "command:remote:CopyToRemote";
