import * as path from "path";
import { loadDeclarations } from "../../config/declarations";
import { parseStackConfig, RawConfig, StackConfig } from "../../config/stackConfig";

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

export function parse(
    overrides: Record<string, string | undefined> = {},
    o: { stack?: string; secretKeys?: string[]; env?: Record<string, string> } = {},
): StackConfig {
    const values: Record<string, string> = { ...VALID };
    for (const [k, v] of Object.entries(overrides)) {
        if (v === undefined) delete values[k];
        else values[k] = v;
    }
    const raw: RawConfig = { values, secretKeys: new Set(o.secretKeys ?? [...VALID_SECRETS, ...Object.keys(overrides).filter(k => ["appEnv", "tlsPrivateKey"].includes(k))]) };
    return parseStackConfig(raw, { declarations, stack: o.stack ?? "staging", env: o.env ?? {}, sampleAppDir: SAMPLE_APP });
}
