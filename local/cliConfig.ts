/**
 * The stack configuration as the Pulumi CLI hands it to the program: the
 * stand-in for `pulumi up` / `preview` in the unit tests, the local rehearsal,
 * the e2e and the bench, so they all see what a real run sees.
 *
 * What it models (pulumi/pulumi sdk/go/common/workspace, `mergeConfig` and
 * `ValidateConfigValue`, CLI >= 3.44 with project-level config):
 * - the stack file's `config:` values, keys with or without the project prefix;
 *   scalars become strings ("20", "true"), lists and maps JSON ("object" values);
 *   `secure:` values are decrypted and handed over as secrets;
 * - `pulumi config set [--secret] key value` writes a string value (a list
 *   needs `--path 'key[0]'`), over the stack file;
 * - then, for every key the project declares: a key the stack does not set
 *   gets the declaration's `default` (a program sees it as a value: "" stays
 *   ""), a declared key without default that the stack does not set is an
 *   error ("Stack 'dev' is missing configuration value 'vlanId'"), and a
 *   value of an explicitly typed key must have that type (integer as Go's
 *   strconv.Atoi reads it, boolean "true"/"false", string, array of the item
 *   type); `secret: true` keys must be encrypted. The first type error stops
 *   the run before the program starts, as the CLI does.
 * The environment is not touched: the CLI passes it to the program unchanged.
 */
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";

/** A key of Pulumi.yaml's `config:` block, as the CLI reads it. */
interface Declaration {
    type?: "string" | "integer" | "boolean" | "array";
    items?: { type: string; items?: unknown };
    default?: unknown;
    value?: unknown;
    secret?: boolean;
}

export interface ProjectFile {
    name: string;
    config: Record<string, Declaration>;
}

/** A value as the stack holds it: plain or secure, a string or an object (JSON). */
interface StackValue {
    text: string;
    object: boolean;
    secure: boolean;
}

export interface CliConfigOptions {
    stack: string;
    /** Pulumi.yaml (default: the project's). */
    project?: ProjectFile;
    /** Pulumi.<stack>.yaml's text (default: read from the project directory; absent file = empty stack). */
    stackFileText?: string;
    /** `pulumi config set key value`: plain string values over the stack file. */
    set?: Record<string, string>;
    /** `pulumi config set --path 'key[0]' ...` and friends: structured values (JSON). */
    setObject?: Record<string, unknown>;
    /** `pulumi config set --secret key value`. */
    setSecret?: Record<string, string>;
    /** Decrypts a `secure:` value of the stack file (the stack's secrets provider). */
    decrypt?: (ciphertext: string) => string;
}

export interface CliConfig {
    /** "project:key" -> value, what the program's runtime config holds (PULUMI_CONFIG). */
    config: Record<string, string>;
    /** The secret ones (PULUMI_CONFIG_SECRET_KEYS). */
    secretKeys: string[];
}

/** The CLI refused the stack's configuration; the program never ran. */
export class CliConfigError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "CliConfigError";
    }
}

export const PROJECT_ROOT = path.join(__dirname, "..");

export function loadProjectFile(file = path.join(PROJECT_ROOT, "Pulumi.yaml")): ProjectFile {
    const doc = parse(fs.readFileSync(file, "utf8")) as { name: string; config?: Record<string, unknown> };
    const config: Record<string, Declaration> = {};
    for (const [key, d] of Object.entries(doc.config ?? {})) {
        // The short form `key: value` is a default without a type.
        config[key] = d !== null && typeof d === "object" && !Array.isArray(d) ? (d as Declaration) : { default: d };
    }
    return { name: doc.name, config };
}

export function stackFilePath(stack: string): string {
    return path.join(PROJECT_ROOT, `Pulumi.${stack}.yaml`);
}

/** A scalar as Go's fmt %v prints it; anything else as JSON (an "object" value). */
function toStackValue(raw: unknown, secure = false): StackValue {
    if (raw === null || raw === undefined) return { text: "", object: false, secure };
    if (typeof raw === "object") return { text: JSON.stringify(raw), object: true, secure };
    return { text: String(raw), object: false, secure };
}

function namespaced(project: string, key: string): string {
    return key.includes(":") ? key : `${project}:${key}`;
}

/** Go's strconv.Atoi: optional sign, decimal digits, within 64 bits. */
function isAtoiInteger(text: string): boolean {
    if (!/^[+-]?\d+$/.test(text)) return false;
    const n = BigInt(text);
    return n >= -(2n ** 63n) && n < 2n ** 63n;
}

function fullTypeName(d: Declaration): string {
    const items = (i: Declaration["items"]): string => (i?.items ? `array<${items(i.items as Declaration["items"])}>` : i?.type ?? "");
    return d.type === "array" ? `array<${items(d.items)}>` : d.type ?? "";
}

function hasType(type: string | undefined, items: Declaration["items"], value: unknown): boolean {
    if (type === "string") return typeof value === "string";
    if (type === "integer") return (typeof value === "number" && Number.isInteger(value)) || (typeof value === "string" && isAtoiInteger(value));
    if (type === "boolean") return typeof value === "boolean" || value === "true" || value === "false";
    if (type === "array") return Array.isArray(value) && items !== undefined && value.every(v => hasType(items.type, items.items as Declaration["items"], v));
    return true;
}

/** `'a'`, `'a' and 'b'`, `'a', 'b' and 'c'`, as the CLI lists missing keys. */
function listKeys(keys: string[]): string {
    const sorted = [...keys].sort().map(k => `'${k}'`);
    return sorted.length === 1 ? sorted[0] : `${sorted.slice(0, -1).join(", ")} and ${sorted[sorted.length - 1]}`;
}

/** The configuration the program receives for `stack`, or a CliConfigError as the CLI would print it. */
export function cliStackConfig(o: CliConfigOptions): CliConfig {
    const project = o.project ?? loadProjectFile();
    const file = o.stackFileText ?? (fs.existsSync(stackFilePath(o.stack)) ? fs.readFileSync(stackFilePath(o.stack), "utf8") : "");
    const doc = (parse(file) ?? {}) as { config?: Record<string, unknown> };
    const values = new Map<string, StackValue>();
    for (const [key, raw] of Object.entries(doc.config ?? {})) {
        const secure = raw !== null && typeof raw === "object" && !Array.isArray(raw) && Object.keys(raw).length === 1 && "secure" in raw;
        if (secure) {
            if (!o.decrypt) throw new CliConfigError(`Stack '${o.stack}': cannot decrypt the secure value of '${key}' (no secrets provider)`);
            values.set(namespaced(project.name, key), toStackValue(o.decrypt(String((raw as { secure: unknown }).secure)), true));
        } else {
            values.set(namespaced(project.name, key), toStackValue(raw));
        }
    }
    for (const [key, v] of Object.entries(o.set ?? {})) values.set(namespaced(project.name, key), { text: v, object: false, secure: false });
    for (const [key, v] of Object.entries(o.setObject ?? {})) values.set(namespaced(project.name, key), toStackValue(v));
    for (const [key, v] of Object.entries(o.setSecret ?? {})) values.set(namespaced(project.name, key), { text: v, object: false, secure: true });

    const missing: string[] = [];
    for (const key of Object.keys(project.config).sort()) {
        const d = project.config[key];
        const full = namespaced(project.name, key);
        const stackValue = values.get(full);
        const fallback = d.default !== undefined ? d.default : d.value;
        if (stackValue === undefined) {
            if (fallback === undefined) {
                if (full.startsWith(`${project.name}:`)) missing.push(key);
                continue;
            }
            values.set(full, toStackValue(fallback));
            continue;
        }
        if (d.type === undefined) continue;
        if (d.secret && !stackValue.secure) throw new CliConfigError(`Stack '${o.stack}' with configuration key '${key}' must be encrypted as it's secret`);
        const content = stackValue.object ? JSON.parse(stackValue.text) : stackValue.text;
        if (!hasType(d.type, d.items, content)) {
            throw new CliConfigError(`Stack '${o.stack}' with configuration key '${key}' must be of type '${fullTypeName(d)}'`);
        }
    }
    if (missing.length > 0) throw new CliConfigError(`Stack '${o.stack}' is missing configuration value${missing.length > 1 ? "s" : ""} ${listKeys(missing)}`);

    const config: Record<string, string> = {};
    const secretKeys: string[] = [];
    for (const [key, v] of [...values.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
        config[key] = v.text;
        if (v.secure) secretKeys.push(key);
    }
    return { config, secretKeys };
}
