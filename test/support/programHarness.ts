/**
 * Runs the real program (index.ts) under Pulumi's mocks against a fake cloud
 * that answers the way OVH/OpenStack would (ids, OpenStack UUIDs, addresses),
 * and records every resource with its inputs and options.
 */
import {
    isSecretValue,
    loadStackFile,
    PROJECT,
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

/** A documentation address (203.0.113.0/24) derived from the resource name: the same in every run. */
function fakePublicAddress(name: string): string {
    let h = 0;
    for (const c of name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
    return `203.0.113.${10 + (h % 240)}`;
}
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
            return { id, state: { ...inputs, address: fakePublicAddress(name) } };
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
    try {
        const { outputs, secretOutputs } = await runProgramWithMocks({
            stack: o.stack,
            config: o.config ?? { ...loadStackFile(o.stack), ...TEST_CREDENTIALS },
            secretKeys: o.secretKeys ?? TEST_SECRET_KEYS,
            preview: o.preview ?? false,
            mocks: {
                newResource: r => {
                    const inputs = unwrapSecrets(r.rawInputs);
                    resources.push({ type: r.type, name: r.name, urn: "", inputs, rawInputs: r.rawInputs, options: r.options });
                    return fakeState(r.type, r.name, inputs);
                },
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
