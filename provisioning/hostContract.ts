/**
 * The program's side of the contract with hostctl (provisioning/host/hostctl/contract.json, which the
 * agent loads too): where things live on a host, which file names a bundle may carry and where they
 * go, and the command lines of hostctl's subcommands. A command line is checked against the contract
 * when it is built, so the program can only ask for a subcommand and flags the agent has.
 */
import CONTRACT_JSON from "./host/hostctl/contract.json";
import { shellQuote } from "../lib/shell";

interface FlagSpec {
    type: "string" | "int" | "float" | "flag";
    required?: boolean;
    default?: string | number;
}

interface CommandSpec {
    flags: Record<string, FlagSpec>;
    positional?: { name: string; nargs?: string; choices?: string[] };
}

const CONTRACT = CONTRACT_JSON as unknown as {
    agent: { dir: string; file: string };
    bundle: { header: string; namePattern: string };
    keepalived: { interfaceToken: string; verdictUrlPath: string };
    paths: Record<string, string>;
    files: Record<string, Record<string, string | { path: string; service?: string; services?: string[]; reloadable?: boolean }>>;
    retired: Record<string, { service: string; replacedBy: string; paths: string[] }[]>;
    commands: Record<string, CommandSpec>;
};

/** Where hostctl is installed (one zipapp file) and the directory it lives in. */
export const AGENT = CONTRACT.agent;

/** What hostctl replaces, in a keepalived.conf, with the interface holding the host's private address. */
export const KEEPALIVED_INTERFACE_TOKEN = CONTRACT.keepalived.interfaceToken;

/**
 * Where an LB of the pair publishes, on its status listener, whether its health check reaches an
 * upstream (the file lbUpstreamVerdict): the peer's check reads it before letting go of the address.
 */
export const LB_VERDICT_URL_PATH = CONTRACT.keepalived.verdictUrlPath;

/** The bundle format's first line and the file names it allows. */
export const BUNDLE = { header: CONTRACT.bundle.header, name: new RegExp(CONTRACT.bundle.namePattern) };

export type HostPathName =
    | "releaseArchive"
    | "staticArchive"
    | "appBase"
    | "appReleases"
    | "appVenvs"
    | "appCurrent"
    | "appPython"
    | "appEtc"
    | "appConfig"
    | "appEnv"
    | "appPrevious"
    | "appUnit"
    | "staticBase"
    | "staticRoot"
    | "acmeWebroot"
    | "nginxDir"
    | "nginxConf"
    | "nginxSite"
    | "nginxSiteConf"
    | "nginxErrorLog"
    | "nginxClosingFlag"
    | "drainLeases"
    | "letsencryptLive"
    | "renewalHook"
    | "keepalivedConf"
    | "keepalivedBootstrap"
    | "vrrpState"
    | "vrrpMetrics"
    | "lbUpstreamVerdict"
    | "nodeExporterTextfiles";

/** A path of the contract with its {placeholders} filled in (every placeholder must be given). */
export function hostPath(name: HostPathName, values: Record<string, string> = {}): string {
    const template = CONTRACT.paths[name];
    if (template === undefined) throw new Error(`internal: no host path ${name} in the contract`);
    return fill(template, values);
}

function fill(template: string, values: Record<string, string>): string {
    return template.replace(/\{(\w+)\}/g, (_, key: string) => {
        if (values[key] === undefined) throw new Error(`internal: ${template} needs a value for {${key}}`);
        return values[key];
    });
}

export type BundleKind = "kernel" | "nginx" | "app" | "monitoring" | "keepalived";

/** The destination of every file a bundle of this kind may carry (placeholders filled in). */
export function bundleDestinations(kind: BundleKind, values: Record<string, string> = {}): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, dest] of Object.entries(CONTRACT.files[kind])) out[fill(name, values)] = fill(typeof dest === "string" ? dest : dest.path, values);
    return out;
}

export type Flags = Record<string, string | number | boolean | undefined>;

/**
 * `sudo python3 <agent> <subcommand> --flag value ... positional...`, each word shell-quoted. Throws
 * when the subcommand or a flag is not in the contract, a required flag is missing, a value has the
 * wrong type, or a positional argument breaks the contract.
 */
export function hostctlCommand(subcommand: string, flags: Flags = {}, positional: string[] = []): string {
    const spec = CONTRACT.commands[subcommand];
    if (!spec) throw new Error(`internal: hostctl has no subcommand ${subcommand}`);
    const words = ["sudo", "python3", AGENT.file, subcommand];
    for (const [flag, value] of Object.entries(flags)) {
        const f = spec.flags[flag];
        if (!f) throw new Error(`internal: hostctl ${subcommand} has no flag --${flag}`);
        if (value === undefined || value === false) continue;
        if (f.type === "flag") {
            if (value !== true) throw new Error(`internal: hostctl ${subcommand} --${flag} is a switch`);
            words.push(`--${flag}`);
            continue;
        }
        if ((f.type === "int" && !Number.isInteger(value)) || (f.type === "float" && typeof value !== "number")) {
            throw new Error(`internal: hostctl ${subcommand} --${flag} takes a number, got ${JSON.stringify(value)}`);
        }
        words.push(`--${flag}`, shellQuote(String(value)));
    }
    for (const [flag, f] of Object.entries(spec.flags)) {
        if (f.required && flags[flag] === undefined) throw new Error(`internal: hostctl ${subcommand} needs --${flag}`);
    }
    const p = spec.positional;
    if (!p && positional.length > 0) throw new Error(`internal: hostctl ${subcommand} takes no positional arguments`);
    if (p?.nargs === "+" && positional.length === 0) throw new Error(`internal: hostctl ${subcommand} needs at least one ${p.name}`);
    if (p && !p.nargs && positional.length !== 1) throw new Error(`internal: hostctl ${subcommand} takes one ${p.name}`);
    for (const value of positional) {
        if (p?.choices && !p.choices.includes(value)) throw new Error(`internal: hostctl ${subcommand} ${p.name} must be one of ${p.choices.join(", ")}`);
    }
    return [...words, ...positional.map(shellQuote)].join(" ");
}

/** Every subcommand and its flags, as the contract has them (for the test that hostctl's parser agrees). */
export function contractCommands(): Record<string, string[]> {
    return Object.fromEntries(Object.entries(CONTRACT.commands).map(([name, spec]) => [name, Object.keys(spec.flags).sort()]));
}
