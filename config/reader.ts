/**
 * Typed reads of a stack's raw configuration: each read records the key (so a
 * test can compare what is read with what Pulumi.yaml declares), applies the
 * declared default where the CLI did not pass one, falls back to the
 * environment for the credential keys, and turns a bad value into a problem
 * that names the key, the value and the fix. Problems are collected, not
 * thrown: the parse reports them all at once (ConfigError).
 */
import type { KeyDeclaration } from "./declarations";
import { Secret } from "./secret";
import type { ParseContext, RawConfig } from "./types";

/** Keys whose values never appear in a message. */
const SECRET_KEYS = ["ovhApplicationSecret", "ovhConsumerKey", "openstackPassword", "appEnv", "tlsPrivateKey"];

/** Every problem found, each naming the key, the value and the fix. */
export class ConfigError extends Error {
    constructor(readonly problems: string[], project: string, stack: string) {
        super(
            `Invalid configuration for stack "${stack}" (${problems.length} problem${problems.length > 1 ? "s" : ""}); ` +
                `nothing was created:\n` +
                problems.map(p => `  - ${p}`).join("\n") +
                `\nSet values with: pulumi config set [--secret] ${project}:<key> <value>`,
        );
        this.name = "ConfigError";
    }
}

/**
 * The keys that may come from the environment, deliberately only the account's credentials and
 * where they apply: the variables the ovh and openstack providers document, so a user exports
 * them once (or CI injects them) and keeps them out of the stack files. An empty stack value
 * (Pulumi.yaml's default "", which the CLI always passes) means "not set here". Everything that
 * shapes the cluster (region, network, sizes) is stack configuration only: a sourced openrc's
 * OS_REGION_NAME must never move a stack to another region.
 */
export const ENV_FALLBACK: Record<string, string> = {
    serviceName: "OVH_CLOUD_PROJECT_SERVICE",
    ovhEndpoint: "OVH_ENDPOINT",
    ovhApplicationKey: "OVH_APPLICATION_KEY",
    ovhApplicationSecret: "OVH_APPLICATION_SECRET",
    ovhConsumerKey: "OVH_CONSUMER_KEY",
    openstackAuthUrl: "OS_AUTH_URL",
    openstackUserName: "OS_USERNAME",
    openstackPassword: "OS_PASSWORD",
};

/** Reads typed values out of the raw map, recording a problem per bad value. */
export class Reader {
    readonly problems: string[] = [];

    /** `read`: collects every key looked at, so a test can check Pulumi.yaml declares exactly what is read. */
    constructor(
        private readonly raw: RawConfig,
        private readonly ctx: ParseContext,
        private readonly read = new Set<string>(),
    ) {}

    /** A problem that is about no single key's value. */
    problem(message: string): void {
        this.problems.push(message);
    }

    private decl(key: string): KeyDeclaration {
        this.read.add(key);
        const d = this.ctx.declarations.keys[key];
        if (!d) throw new Error(`internal: config key "${key}" is not declared in Pulumi.yaml`);
        return d;
    }

    /** The value as written (stack, else environment fallback), or undefined. */
    private lookup(key: string): string | undefined {
        this.read.add(key);
        const v = this.raw.values[key];
        const envName = ENV_FALLBACK[key];
        if (envName === undefined || (v !== undefined && v.trim() !== "")) return v;
        const fromEnv = this.ctx.env[envName];
        return fromEnv === undefined || fromEnv.trim() === "" ? v : fromEnv;
    }

    /** Shows a value in an error message, never a secret one. */
    show(key: string, value: unknown): string {
        if (SECRET_KEYS.includes(key)) return "(secret value hidden)";
        return JSON.stringify(value);
    }

    fail(key: string, value: unknown, message: string): void {
        this.problems.push(`${this.ctx.declarations.project}:${key} = ${this.show(key, value)}: ${message}`);
    }

    failMissing(key: string, message: string): void {
        const envName = ENV_FALLBACK[key];
        const where = envName ? ` (or the environment variable ${envName})` : "";
        this.problems.push(`${this.ctx.declarations.project}:${key} is not set: ${message}. Set it in Pulumi.${this.ctx.stack}.yaml${where}.`);
    }

    string(key: string): string {
        const v = this.lookup(key);
        if (v !== undefined) return v;
        const d = this.decl(key).default;
        return typeof d === "string" ? d : "";
    }

    /** A required string: config, environment, else a problem. */
    required(key: string, why: string): string {
        const v = this.string(key).trim();
        if (v === "") this.failMissing(key, why);
        return v;
    }

    secret(key: string, requiredWhy?: string): Secret | undefined {
        const inConfig = this.raw.values[key];
        if (inConfig !== undefined && inConfig !== "" && !this.raw.secretKeys.has(key)) {
            this.problems.push(
                `${this.ctx.declarations.project}:${key} is stored in plain text: it is a secret. ` +
                    `Re-set it with: pulumi config set --secret ${key} <value>`,
            );
        }
        const v = this.lookup(key);
        if (v === undefined || v === "") {
            if (requiredWhy) this.failMissing(key, requiredWhy);
            return undefined;
        }
        return new Secret(v);
    }

    integer(key: string, min: number, max: number, hint = ""): number {
        const d = this.decl(key).default;
        const v = this.lookup(key);
        if (v === undefined) {
            if (typeof d === "number") return d;
            this.failMissing(key, `an integer from ${min} to ${max} is required${hint}`);
            return min;
        }
        if (!/^-?\d+$/.test(v.trim())) {
            this.fail(key, v, `must be an integer from ${min} to ${max}${hint}`);
            return typeof d === "number" ? d : min;
        }
        const n = Number(v.trim());
        if (n < min || n > max) this.fail(key, n, `must be from ${min} to ${max}${hint}`);
        return n;
    }

    boolean(key: string): boolean {
        const v = this.lookup(key);
        const d = this.decl(key).default;
        if (v === undefined) return d === true;
        if (v !== "true" && v !== "false") {
            this.fail(key, v, "must be true or false");
            return d === true;
        }
        return v === "true";
    }

    stringArray(key: string, requiredWhy?: string): string[] {
        const v = this.lookup(key);
        const d = this.decl(key).default;
        if (v === undefined) {
            if (Array.isArray(d)) return d;
            if (requiredWhy) this.failMissing(key, requiredWhy);
            return [];
        }
        let parsed: unknown;
        try {
            parsed = JSON.parse(v);
        } catch {
            parsed = undefined;
        }
        if (!Array.isArray(parsed) || parsed.some(x => typeof x !== "string")) {
            this.fail(key, v, `must be a list of strings, e.g. pulumi config set --path '${key}[0]' <value>`);
            return [];
        }
        return parsed as string[];
    }

    oneOf<T extends string>(key: string, allowed: readonly T[]): T {
        const v = this.string(key);
        if (!(allowed as readonly string[]).includes(v)) {
            this.fail(key, v, `must be one of ${allowed.join(", ")}`);
            return allowed[0];
        }
        return v as T;
    }
}

