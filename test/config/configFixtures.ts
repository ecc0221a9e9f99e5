import * as path from "path";
import { loadDeclarations } from "../../config/declarations";
import { LOCAL_FILES } from "../../config/files";
import { projectValues } from "../../config/read";
import { RawConfig, StackConfig } from "../../config/types";
import { parseStackConfig } from "../../config/stackConfig";
import { stackConfig } from "../support/programHarness";

export const SAMPLE_APP = path.join(__dirname, "..", "..", "provisioning", "app", "sample");
export const declarations = loadDeclarations();

/** A complete, valid configuration: what a stack file plus secrets would give. */
export const VALID: Record<string, string> = {
    serviceName: "0123456789abcdef0123456789abcdef",
    ovhApplicationKey: "ak",
    ovhApplicationSecret: "as-secret",
    ovhConsumerKey: "ck-secret",
    openstackUserName: "user-x",
    openstackPassword: "os-password-secret",
    vlanId: "120",
    subnetCidr: "10.120.0.0/24",
    adminCidrs: JSON.stringify(["203.0.113.10/32"]),
};
export const VALID_SECRETS = ["ovhApplicationSecret", "ovhConsumerKey", "openstackPassword"];

/**
 * The settings of a stack whose file holds VALID plus `overrides` (undefined = not in the stack),
 * passed through the CLI stand-in as `pulumi up` would (so project defaults arrive as values, and
 * what the CLI refuses throws its CliConfigError), then parsed.
 */
export function parse(
    overrides: Record<string, string | undefined> = {},
    o: { stack?: string; secretKeys?: string[]; env?: Record<string, string>; read?: Set<string> } = {},
): StackConfig {
    const values: Record<string, string> = { ...VALID };
    for (const [k, v] of Object.entries(overrides)) {
        if (v === undefined) delete values[k];
        else values[k] = v;
    }
    const secretKeys = o.secretKeys ?? [...VALID_SECRETS, "appEnv", "tlsPrivateKey"];
    const stack = o.stack ?? "staging";
    const set = Object.fromEntries(Object.entries(values).filter(([k]) => !secretKeys.includes(k)));
    const setSecret = Object.fromEntries(Object.entries(values).filter(([k]) => secretKeys.includes(k)));
    const cli = stackConfig(stack, { set, setSecret, emptyStackFile: true });
    return parseStackConfig(projectValues(declarations.project, cli.config, k => cli.secretKeys.includes(k)), {
        declarations,
        stack,
        env: o.env ?? {},
        sampleAppDir: SAMPLE_APP,
        files: LOCAL_FILES,
    }, o.read);
}

/** The program's parser on raw values, without the CLI in front (what a run outside the CLI would see). */
export function parseRaw(values: Record<string, string>, secretKeys: string[] = VALID_SECRETS, env: Record<string, string> = {}): StackConfig {
    const raw: RawConfig = { values, secretKeys: new Set(secretKeys) };
    return parseStackConfig(raw, { declarations, stack: "staging", env, sampleAppDir: SAMPLE_APP, files: LOCAL_FILES });
}
