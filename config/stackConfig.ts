/**
 * The one place where stack configuration is parsed, defaulted, derived and
 * validated. `parseStackConfig` is pure (raw strings in, typed settings out)
 * so every rule is unit-tested without Pulumi; config/read.ts feeds it from
 * the Pulumi runtime.
 */
import * as fs from "fs";
import * as path from "path";
import { capacityModel, CapacityModel, overloadLimits, OverloadLimits, rateLoad, RateLoad, rateModel, RateModel, rateShortfall, RateTargets, RESERVED_FDS } from "./capacity";
import { MEASURED_RATES, RatesProvenance } from "./rates";
import { compareVersions, defaultWorkerCount, FLAVORS, Platform, PLATFORMS } from "./catalog";
import { KeyDeclaration, ProjectDeclarations } from "./declarations";
import { blockSize, formatIpv4, nthAddress, overlaps, parseCidr, parseIpv4, isPrivateCidr } from "./ipv4";
import { defaultEndpoint, endpointMismatch, ENDPOINT_NAMES, ENDPOINTS, isRegionName, OvhEndpoint } from "./regions";
import { Secret } from "./secret";

export type AppKind = "wsgi" | "asgi";
export type LbMethod = "least_conn" | "round_robin" | "ip_hash";
export type TlsMode = "selfSigned" | "provided" | "letsencrypt";

export interface NetworkPlan {
    vlanId: number;
    cidr: string;
    prefixLength: number;
    /** First address of the subnet: the OVH gateway. */
    gatewayIp: string;
    gatewayModel: string;
    dnsNameservers: string[];
    /** DHCP pool: the second half of the subnet. Nodes use fixed addresses below it. */
    allocationPool: { start: string; end: string };
    lbIp: string;
    appIps: string[];
    /** The monitoring node's address (monitoringNode): the last fixed address, so scaling the app tier never moves it. */
    monitoringIp?: string;
}

export interface TlsSettings {
    mode: TlsMode;
    certificate?: string;
    privateKey?: Secret;
    letsencryptEmail?: string;
}

export interface StackConfig {
    project: string;
    stack: string;
    production: boolean;
    targetConcurrency: number;
    ovh: { endpoint: OvhEndpoint; serviceName: string; applicationKey: string; applicationSecret: Secret; consumerKey: Secret };
    openstack: { authUrl: string; region: string; tenantId: string; userName: string; password: Secret };
    network: NetworkPlan;
    ssh: {
        user: string;
        /** Normalised, distinct: where SSH to the load balancer may come from. */
        adminCidrs: string[];
        /** Where this `up` runs from when that is not an admin network (CI runners); never one of adminCidrs. */
        deployerCidrs: string[];
    };
    platform: Platform & { image: string };
    lb: {
        flavor: string;
        vcpus: number;
        workerProcesses: number;
        workerConnections: number;
        workerOpenFiles: number;
        listenBacklog: number;
        method: LbMethod;
        upstreamKeepalive: number;
        upstreamKeepaliveTimeout: number;
        proxyConnectTimeout: number;
        proxyReadTimeout: number;
        clientMaxBodySize: string;
        domain?: string;
        hstsMaxAge: number;
        /** Private-only listener for stub_status and the exporters. */
        statusPort: number;
        tls: TlsSettings;
        staticFiles?: { urlPath: string; dir: string };
    };
    app: {
        name: string;
        kind: AppKind;
        /** Absolute path of the app's source directory. */
        dir: string;
        /** True when dir is the bundled sample app. */
        sample: boolean;
        module: string;
        port: number;
        env?: Secret;
        healthPath: string;
        /** gunicorn access log to journald (the LB's JSON log already records every request). */
        accessLog: boolean;
        releasesKept: number;
        releasePin?: string;
        rolloutBatchSize: number;
        /** Seconds a node's health gate waits for the new workers before rolling back. */
        gateTimeout: number;
        /**
         * Seconds a drain lasts if the node's admit step never runs (its change failed): longer than
         * a node's change can take, then the LB returns the node once it is healthy.
         */
        drainLeaseSeconds: number;
        nodeCount: number;
        flavor: string;
        vcpus: number;
    };
    gunicorn: {
        workers: number;
        workerClass: string;
        /** gevent only; uvicorn workers have no such cap. */
        workerConnections?: number;
        backlog: number;
        timeout: number;
        gracefulTimeout: number;
        keepalive: number;
        maxRequests: number;
        maxRequestsJitter: number;
        /** LimitNOFILE of the app service. */
        openFiles: number;
    };
    monitoring: MonitoringSettings;
    kernel: {
        somaxconn: number;
        synBacklog: number;
        netdevBacklog: number;
        localPortRange: [number, number];
        fileMax: number;
        nrOpen: number;
    };
    capacity: CapacityModel;
    /** What the vCPUs carry (config/rates.ts), the rate targets and the load they mean. */
    rates: { targets: RateTargets; model: RateModel; load: RateLoad; appRequestsPerCore?: number; measured: RatesProvenance };
    /** The limits nginx answers overload with (503 + Retry-After), sized from the model. */
    overload: OverloadLimits;
    /** Settings that are allowed but probably not what the user wants. */
    warnings: string[];
}

/** Exporters on every node, and the optional Prometheus node. */
export interface MonitoringSettings {
    ports: typeof MONITORING_PORTS;
    scrapeIntervalSeconds: number;
    alerts: {
        /** 5xx responses over all responses (0-1) above which an alert fires. */
        errorRatio: number;
        /** 95th percentile of the upstream response time, in seconds, above which an alert fires. */
        latencyP95Seconds: number;
    };
    /** Absent unless monitoringNode is on. */
    node?: { flavor: string; ip: string; retentionDays: number };
}

/** Raw values as Pulumi hands them over: strings (JSON for arrays), plus which are secret. */
export interface RawConfig {
    values: Record<string, string>;
    secretKeys: ReadonlySet<string>;
}

export interface ParseContext {
    declarations: ProjectDeclarations;
    stack: string;
    env: Record<string, string | undefined>;
    /** Where the bundled sample app lives. */
    sampleAppDir: string;
}

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

/** Headroom over the target concurrency when sizing connection limits. */
export const HEADROOM = 1.2;
/** Port of the LB's private listener (stub_status); kept out of the ephemeral range. */
export const LB_STATUS_PORT = 8080;
/**
 * Where the monitoring pieces listen (each on its node's private address; statsd on loopback). The
 * Debian packages' own defaults, so an operator finds them where the exporters' docs say.
 */
export const MONITORING_PORTS = {
    nodeExporter: 9100,
    nginxExporter: 9113,
    /** mtail on the load balancer: metrics parsed from nginx's JSON access log. */
    mtail: 3903,
    /** pycluster-statsd-exporter on app nodes: gunicorn's statsd metrics for Prometheus. */
    statsdExporter: 9102,
    /** UDP, loopback only: where gunicorn sends statsd. */
    statsd: 9125,
    prometheus: 9090,
} as const;
/** Ports the LB listens on inside the ephemeral range: kept out of it (net.ipv4.ip_local_reserved_ports). */
export const LB_RESERVED_PORTS = [LB_STATUS_PORT, MONITORING_PORTS.nodeExporter, MONITORING_PORTS.nginxExporter, MONITORING_PORTS.mtail];
const LOCAL_PORT_RANGE: [number, number] = [1024, 65535];
/** OVH flavors give RAM in GB. */
const GB = 1e9;
const RESERVED_USERS = new Set(["root", "daemon", "bin", "sys", "nobody", "www-data", "nginx", "debian", "ubuntu", "sshd", "systemd-network"]);
const SECRET_KEYS = ["ovhApplicationSecret", "ovhConsumerKey", "openstackPassword", "appEnv", "tlsPrivateKey"];
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
class Reader {
    readonly problems: string[] = [];
    /** Every key looked at, so tests can check Pulumi.yaml declares exactly what is read. */
    readonly read = new Set<string>();

    constructor(
        private readonly raw: RawConfig,
        private readonly ctx: ParseContext,
    ) {}

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

const HOSTNAME = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;
const EMAIL = /^[^@\s]+@[^@\s]+\.[^@\s]+$/;
const VERSION = /^\d+\.\d+(?:\.\d+)?$/;
const APP_MODULE = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(?:\(\))?$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The module file a `module:callable` entry point imports, relative to the app dir. */
export function entryModuleFiles(appModule: string): string[] {
    const modulePath = appModule.split(":")[0].split(".").join(path.sep);
    return [`${modulePath}.py`, path.join(modulePath, "__init__.py")];
}

/** Keys the last parse read (for the test that Pulumi.yaml declares exactly these). */
export let lastReadKeys: ReadonlySet<string> = new Set();

export function parseStackConfig(raw: RawConfig, ctx: ParseContext): StackConfig {
    const r = new Reader(raw, ctx);
    lastReadKeys = r.read;
    const { project } = ctx.declarations;
    const warnings: string[] = [];

    // Keys nobody reads are almost always typos of keys somebody meant to set.
    for (const key of Object.keys(raw.values)) {
        if (!(key in ctx.declarations.keys)) {
            const near = Object.keys(ctx.declarations.keys).find(k => k.toLowerCase() === key.toLowerCase());
            r.problems.push(`${project}:${key} is not a setting of this project${near ? ` (did you mean ${near}?)` : ""}. Remove it with: pulumi config rm ${key}`);
        }
    }

    // --- access ---
    const serviceName = r.required("serviceName", "the Public Cloud project id (32 hex characters) is required");
    if (serviceName && !/^[0-9a-f]{32}$/.test(serviceName)) {
        r.fail("serviceName", serviceName, "must be the Public Cloud project id: 32 lowercase hex characters (OVH Control Panel > Public Cloud > project)");
    }
    const region = r.string("region").trim();
    if (!isRegionName(region)) {
        const hint = isRegionName(region.toUpperCase()) ? ` (region names are upper case: ${region.toUpperCase()})` : "";
        r.fail("region", region, `must be an OpenStack region such as GRA11, SBG5, BHS5, DE1, UK1, WAW1, EU-WEST-PAR or US-EAST-VA-1 (not a location like GRA)${hint}`);
    }
    // Empty (the default) = the endpoint of the region's accounts; OVH_ENDPOINT when exported.
    const endpointSetting = r.string("ovhEndpoint").trim();
    let endpoint: OvhEndpoint = defaultEndpoint(region);
    if (endpointSetting !== "") {
        if (!(ENDPOINT_NAMES as string[]).includes(endpointSetting)) r.fail("ovhEndpoint", endpointSetting, `must be one of ${ENDPOINT_NAMES.join(", ")} (or empty: from the region)`);
        else endpoint = endpointSetting as OvhEndpoint;
    }
    const mismatch = isRegionName(region) ? endpointMismatch(region, endpoint) : undefined;
    if (mismatch) r.fail("ovhEndpoint", endpoint, mismatch);
    const applicationKey = r.required("ovhApplicationKey", "an OVH API application key is required (https://api.ovh.com/createToken)");
    const applicationSecret = r.secret("ovhApplicationSecret", "the OVH API application secret is required") ?? new Secret("");
    const consumerKey = r.secret("ovhConsumerKey", "the OVH API consumer key is required") ?? new Secret("");
    let authUrl = r.string("openstackAuthUrl").trim();
    if (authUrl === "") authUrl = ENDPOINTS[endpoint].keystone;
    else if (!/^https:\/\/[^\s/]+\/.*$/.test(authUrl)) r.fail("openstackAuthUrl", authUrl, `must be an https:// Keystone URL such as ${ENDPOINTS[endpoint].keystone}`);
    const userName = r.required("openstackUserName", "an OpenStack user of the project is required (Public Cloud > Users & Roles)");
    const password = r.secret("openstackPassword", "the OpenStack user's password is required") ?? new Secret("");

    // --- platform ---
    const image = r.string("image").trim();
    if (image === "") r.fail("image", image, `must name an image, e.g. "Debian 12"`);
    const known = PLATFORMS[image];
    const platformOverride = (key: "sshUser" | "nginxVersion" | "gunicornVersion", fallback: string | undefined): string => {
        const v = r.string(key).trim();
        if (v !== "") {
            if (key !== "sshUser" && !VERSION.test(v)) r.fail(key, v, "must be a version such as 1.22.1");
            if (key === "sshUser" && !/^[a-z_][a-z0-9_-]*$/.test(v)) r.fail(key, v, "must be a Linux user name such as debian");
            return v;
        }
        if (fallback === undefined && image !== "") {
            r.fail("image", image, `is not a known image (${Object.keys(PLATFORMS).join(", ")}): also set ${key}`);
        }
        return fallback ?? "";
    };
    const platform = {
        image,
        sshUser: platformOverride("sshUser", known?.sshUser),
        nginxVersion: platformOverride("nginxVersion", known?.nginxVersion),
        gunicornVersion: platformOverride("gunicornVersion", known?.gunicornVersion),
        asgiWorkerClass: known?.asgiWorkerClass ?? "uvicorn.workers.UvicornWorker",
    };
    if (platform.nginxVersion && VERSION.test(platform.nginxVersion) && compareVersions(platform.nginxVersion, "1.18.0") < 0) {
        r.fail("nginxVersion", platform.nginxVersion, "nginx older than 1.18 is not supported (TLS 1.3 and upstream zones are assumed)");
    }
    if (platform.gunicornVersion && VERSION.test(platform.gunicornVersion) && compareVersions(platform.gunicornVersion, "20.0.0") < 0) {
        r.fail("gunicornVersion", platform.gunicornVersion, "gunicorn older than 20.0 is not supported");
    }

    const vcpusOf = (flavorKey: "lbFlavor" | "appFlavor", vcpuKey: "lbVcpus" | "appVcpus"): { flavor: string; vcpus: number } => {
        const flavor = r.string(flavorKey).trim();
        const override = r.integer(vcpuKey, 0, 512);
        if (!/^[a-z0-9][a-z0-9.-]*$/.test(flavor)) r.fail(flavorKey, flavor, "must be an OVH flavor name such as b3-8, c3-16 or d2-4");
        const table = FLAVORS[flavor];
        if (override > 0) return { flavor, vcpus: override };
        if (!table) {
            if (flavor) r.fail(flavorKey, flavor, `is not in the built-in flavor table: set ${vcpuKey} to its vCPU count`);
            return { flavor, vcpus: 1 };
        }
        return { flavor, vcpus: table.vcpus };
    };

    // --- the production rules and the app tier size ---
    const production = r.boolean("production") || ["prod", "production"].includes(ctx.stack);
    const nodeCount = r.integer("appNodeCount", 1, 200);
    if (production && nodeCount < 2) {
        r.fail("appNodeCount", nodeCount, "a production stack needs at least 2 app nodes, so one can fail or be updated while the other serves");
    }

    const monitoringNode = r.boolean("monitoringNode");

    // --- network ---
    const vlanId = r.integer("vlanId", 2, 4000, " (each stack sharing the vRack needs its own)");
    const cidrText = r.string("subnetCidr");
    const cidr = parseCidr(cidrText);
    let network: NetworkPlan | undefined;
    if (!cidr) {
        r.fail("subnetCidr", cidrText, "must be an IPv4 network in CIDR notation with zero host bits, e.g. 10.10.0.0/24");
    } else if (!isPrivateCidr(cidr)) {
        r.fail("subnetCidr", cidrText, "must be a private (RFC 1918) range: inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16");
    } else {
        // Gateway = .1, fixed node addresses from .2 through the first half, DHCP the second half.
        const size = blockSize(cidr);
        const half = Math.floor(size / 2);
        const fixedRoom = half - 2;
        const needed = 1 + nodeCount + (monitoringNode ? 1 : 0);
        if (cidr.prefixLength > 29 || fixedRoom < needed) {
            r.fail(
                "subnetCidr",
                cidrText,
                `has room for ${Math.max(0, fixedRoom)} fixed node addresses (the first half after the gateway) but the stack needs ${needed} ` +
                    `(1 load balancer + ${nodeCount} app nodes${monitoringNode ? " + 1 monitoring node" : ""}): use a larger subnet, e.g. /24`,
            );
        } else {
            network = {
                vlanId,
                cidr: cidr.text,
                prefixLength: cidr.prefixLength,
                gatewayIp: nthAddress(cidr, 1),
                gatewayModel: "",
                dnsNameservers: [],
                allocationPool: { start: nthAddress(cidr, half), end: nthAddress(cidr, size - 2) },
                lbIp: nthAddress(cidr, 2),
                appIps: Array.from({ length: nodeCount }, (_, i) => nthAddress(cidr, 3 + i)),
                monitoringIp: monitoringNode ? nthAddress(cidr, half - 1) : undefined,
            };
        }
    }
    // Every address and CIDR is normalised once here and only the normalised text is used after:
    // Neutron answers 400 to " 203.0.113.10/32" or "172.0.0.0/08" in the middle of an `up`.
    const dnsNameservers: string[] = [];
    for (const ns of r.stringArray("dnsNameservers")) {
        const address = parseIpv4(ns);
        if (address === undefined) r.fail("dnsNameservers", ns, "each resolver must be an IPv4 address");
        else if (dnsNameservers.includes(formatIpv4(address))) r.fail("dnsNameservers", ns, "is listed twice (Neutron refuses duplicate resolvers): remove one");
        else dnsNameservers.push(formatIpv4(address));
    }
    const gatewayModel = r.oneOf("gatewayModel", ["s", "m", "l", "xl", "2xl"] as const);

    const allowSshFromAnywhere = r.boolean("allowSshFromAnywhere");
    const sshSources = (key: "adminCidrs" | "deployerCidrs", entries: string[]): string[] => {
        const out: string[] = [];
        for (const text of entries) {
            const c = parseCidr(text);
            if (!c) {
                r.fail(key, text, "each entry must be an IPv4 CIDR with zero host bits, e.g. 203.0.113.7/32");
            } else if (c.prefixLength === 0 && !allowSshFromAnywhere) {
                r.fail(key, text, "opens SSH to the whole internet: list your own addresses, or set allowSshFromAnywhere to true to accept the risk");
            } else if (cidr && c.prefixLength > 0 && overlaps(c, cidr)) {
                r.fail(key, text, `overlaps subnetCidr ${cidr.text}: admin access comes from outside, through the load balancer's public address`);
            } else if (out.includes(c.text)) {
                r.fail(key, text, `lists ${c.text} twice: each entry becomes a security group rule, and Neutron refuses a duplicate rule; remove one`);
            } else {
                out.push(c.text);
            }
        }
        return out;
    };
    const adminCidrs = sshSources("adminCidrs", r.stringArray("adminCidrs", "list where SSH to the load balancer may come from, including the machine running `pulumi up` (e.g. [\"203.0.113.7/32\"])"));
    if (adminCidrs.length === 0 && r.problems.every(p => !p.includes(":adminCidrs"))) {
        r.fail("adminCidrs", [], "must list at least one CIDR: the program provisions the hosts over SSH from where `pulumi up` runs");
    }
    // The machine running this `up` when it is not an admin network (a CI runner): an address
    // already admitted needs no rule of its own (and a second identical rule would be refused).
    const deployerCidrs = sshSources("deployerCidrs", r.stringArray("deployerCidrs")).filter(c => !adminCidrs.includes(c));

    // --- app ---
    const lbHost = vcpusOf("lbFlavor", "lbVcpus");
    const appHost = vcpusOf("appFlavor", "appVcpus");
    const appName = r.string("appName");
    if (!/^[a-z][a-z0-9-]{0,30}$/.test(appName)) {
        r.fail("appName", appName, "must be 1-31 characters: a lowercase letter, then lowercase letters, digits or dashes (it names a system user and a unit)");
    } else if (RESERVED_USERS.has(appName)) {
        r.fail("appName", appName, "is a system account name; choose another name for the app's user");
    }
    const kind = r.oneOf("appKind", ["wsgi", "asgi"] as const);
    const appDirSetting = r.string("appDir").trim();
    const sample = appDirSetting === "";
    const appDir = sample ? ctx.sampleAppDir : path.resolve(appDirSetting);
    let appModule = r.string("appModule").trim();
    if (sample) {
        if (appModule === "") appModule = kind === "asgi" ? "app:asgi_application" : "app:application";
    } else if (!fs.existsSync(appDir) || !fs.statSync(appDir).isDirectory()) {
        r.fail("appDir", appDirSetting, `is not a directory (resolved to ${appDir}): point it at your app's source tree`);
    } else if (appModule === "") {
        r.failMissing("appModule", "the entry point of the app in appDir is required, e.g. myapp.wsgi:application");
    }
    if (appModule !== "") {
        if (!APP_MODULE.test(appModule)) {
            r.fail("appModule", appModule, "must be module:callable, e.g. myapp.wsgi:application");
        } else if (fs.existsSync(appDir) && !entryModuleFiles(appModule).some(f => fs.existsSync(path.join(appDir, f)))) {
            r.fail("appModule", appModule, `its module is not in appDir: expected ${entryModuleFiles(appModule).join(" or ")} under ${appDir}`);
        }
    }
    const appPort = r.integer("appPort", 1024, 65535, " (the app runs unprivileged)");
    if (appPort === LB_STATUS_PORT) r.fail("appPort", appPort, `is reserved for the status listener; choose another port`);
    const monitoringPort = Object.entries(MONITORING_PORTS).find(([, port]) => port === appPort);
    if (monitoringPort) r.fail("appPort", appPort, `is where the monitoring listens (${monitoringPort[0]}); choose another port, e.g. 8000`);
    const env = r.secret("appEnv");
    if (env) {
        let parsed: unknown;
        try {
            parsed = JSON.parse(env.reveal());
        } catch {
            parsed = undefined;
        }
        if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
            r.fail("appEnv", env, `must be a JSON object of variables, e.g. {"DB_PASSWORD":"..."}`);
        } else {
            for (const [k, v] of Object.entries(parsed)) {
                if (!ENV_NAME.test(k)) r.fail("appEnv", env, `variable name ${JSON.stringify(k)} is not a valid environment variable name`);
                if (!["string", "number", "boolean"].includes(typeof v)) r.fail("appEnv", env, `variable ${k} must be a string, number or boolean`);
                if (typeof v === "string" && /[\n\r\0]/.test(v)) r.fail("appEnv", env, `variable ${k} contains a newline or NUL, which an env file cannot hold`);
            }
        }
    }
    const healthPath = r.string("healthPath");
    if (!/^\/[A-Za-z0-9._~\/-]*$/.test(healthPath)) r.fail("healthPath", healthPath, "must be a URL path starting with /, e.g. /healthz");
    const accessLog = r.boolean("appAccessLog");
    const releasesKept = r.integer("releasesKept", 2, 50, " (at least 2, to roll back)");
    const pin = r.string("appRelease").trim();
    if (pin !== "" && !/^[0-9a-f]{12}$/.test(pin)) r.fail("appRelease", pin, "must be a release id (12 hex characters) from the `releases` stack output, or empty");
    const rolloutBatchSize = r.integer("rolloutBatchSize", 1, 200);
    if (rolloutBatchSize > nodeCount) r.fail("rolloutBatchSize", rolloutBatchSize, `is larger than appNodeCount (${nodeCount}): a rollout would take every node at once`);
    else if (production && rolloutBatchSize >= nodeCount) r.fail("rolloutBatchSize", rolloutBatchSize, `would update every node of a production stack at once; use at most ${nodeCount - 1}`);

    // --- sizing ---
    const targetConcurrency = r.integer("targetConcurrency", 1, 10_000_000);
    const maxOpenFiles = r.integer("maxOpenFiles", 4096, 1 << 30);
    const perProcessConnections = maxOpenFiles - RESERVED_FDS;
    const headroomed = Math.ceil(targetConcurrency * HEADROOM);

    // nginx: a proxied request holds two connections; add workers when one process cannot hold its share.
    const lbWorkerSetting = r.integer("lbWorkerProcesses", 0, 256);
    const lbWorkers = lbWorkerSetting || Math.max(lbHost.vcpus, Math.ceil((2 * headroomed) / perProcessConnections));
    const lbWorkerConnections = Math.max(1024, Math.ceil((2 * headroomed) / lbWorkers));
    const lbWorkerOpenFiles = Math.min(maxOpenFiles, lbWorkerConnections + RESERVED_FDS);

    const workerSetting = r.integer("gunicornWorkers", 0, 512);
    const baseWorkers = defaultWorkerCount(appHost.vcpus);
    const workers = workerSetting || Math.max(baseWorkers, Math.ceil(headroomed / (nodeCount * perProcessConnections)));
    if (workerSetting > 4 * baseWorkers) {
        warnings.push(
            `gunicornWorkers = ${workerSetting} is far above (2 x ${appHost.vcpus} vCPU) + 1 = ${baseWorkers}: every worker is a full Python process ` +
                `(tens of MB each) and gevent workers already hold thousands of connections each. Prefer fewer workers with more worker_connections.`,
        );
    }
    const connectionSetting = r.integer("gunicornWorkerConnections", 0, 1_000_000);
    let workerConnections: number | undefined;
    if (kind === "wsgi") {
        workerConnections = connectionSetting || Math.max(1000, Math.ceil(headroomed / (nodeCount * workers)));
        if (workerConnections > perProcessConnections) {
            r.fail("gunicornWorkerConnections", workerConnections, `exceeds what one process may open (maxOpenFiles ${maxOpenFiles} - ${RESERVED_FDS}); add workers instead`);
        }
    } else if (connectionSetting) {
        warnings.push(`gunicornWorkerConnections is ignored for asgi apps: uvicorn workers do not cap connections per worker`);
    }
    const perWorkerShare = workerConnections ?? Math.ceil(headroomed / (nodeCount * workers));
    const appOpenFiles = Math.min(maxOpenFiles, perWorkerShare + 1024);

    const backlog = r.integer("gunicornBacklog", 64, 65535);
    const timeout = r.integer("gunicornTimeout", 1, 3600);
    const gracefulTimeout = r.integer("gunicornGracefulTimeout", 1, 3600);
    const upstreamKeepaliveTimeout = r.integer("upstreamKeepaliveTimeout", 1, 3600);
    const keepaliveSetting = r.integer("gunicornKeepalive", 0, 3600);
    const keepalive = keepaliveSetting || upstreamKeepaliveTimeout + 15;
    if (keepaliveSetting && keepaliveSetting <= upstreamKeepaliveTimeout) {
        r.fail(
            "gunicornKeepalive",
            keepaliveSetting,
            `must be longer than upstreamKeepaliveTimeout (${upstreamKeepaliveTimeout}): otherwise gunicorn closes idle connections nginx is about to reuse, and clients get 502s. Use ${upstreamKeepaliveTimeout + 15} or 0 (derived)`,
        );
    }
    const maxRequests = r.integer("gunicornMaxRequests", 0, 100_000_000);
    const maxRequestsJitter = r.integer("gunicornMaxRequestsJitter", 0, 100_000_000);
    if (maxRequests > 0 && maxRequestsJitter >= maxRequests) {
        r.fail("gunicornMaxRequestsJitter", maxRequestsJitter, `must be smaller than gunicornMaxRequests (${maxRequests})`);
    }

    // --- load balancer ---
    const method = r.oneOf("lbMethod", ["least_conn", "round_robin", "ip_hash"] as const);
    const upstreamKeepalive = r.integer("upstreamKeepalive", 0, 100_000);
    const proxyConnectTimeout = r.integer("proxyConnectTimeout", 1, 75, " (nginx caps it at 75)");
    const proxyReadTimeout = r.integer("proxyReadTimeout", 1, 86_400);
    const clientMaxBodySize = r.string("clientMaxBodySize");
    if (!/^\d+[kKmMgG]?$/.test(clientMaxBodySize)) r.fail("clientMaxBodySize", clientMaxBodySize, "must be an nginx size such as 10m, 512k or 0 (no limit)");
    const domain = r.string("domain").trim().toLowerCase();
    if (domain !== "" && !HOSTNAME.test(domain)) r.fail("domain", domain, "must be a fully qualified host name such as www.example.com");
    const hstsMaxAge = r.integer("hstsMaxAge", 0, 10 * 365 * 86400);

    const tlsMode = r.oneOf("tlsMode", ["selfSigned", "provided", "letsencrypt"] as const);
    const tls: TlsSettings = { mode: tlsMode };
    const certificate = r.string("tlsCertificate").trim();
    const privateKey = r.secret("tlsPrivateKey");
    if (tlsMode === "provided") {
        if (!/^-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----$/.test(certificate)) {
            if (certificate === "") r.failMissing("tlsCertificate", "tlsMode provided needs the PEM certificate chain (pulumi config set tlsCertificate < fullchain.pem)");
            else r.fail("tlsCertificate", certificate.slice(0, 40) + "...", "must be a PEM certificate chain (-----BEGIN CERTIFICATE----- ...)");
        }
        if (!privateKey) r.failMissing("tlsPrivateKey", "tlsMode provided needs the PEM private key (pulumi config set --secret tlsPrivateKey < privkey.pem)");
        else if (!/^-----BEGIN (?:RSA |EC |)PRIVATE KEY-----[\s\S]+-----END (?:RSA |EC |)PRIVATE KEY-----$/.test(privateKey.reveal().trim())) {
            r.fail("tlsPrivateKey", privateKey, "must be a PEM private key (-----BEGIN PRIVATE KEY----- ...)");
        }
        tls.certificate = certificate;
        tls.privateKey = privateKey;
    }
    const email = r.string("letsencryptEmail").trim();
    if (tlsMode === "letsencrypt") {
        if (domain === "") r.failMissing("domain", "tlsMode letsencrypt needs the public host name that points at the load balancer");
        if (!EMAIL.test(email)) r.fail("letsencryptEmail", email, "tlsMode letsencrypt needs a valid account e-mail for expiry notices");
        tls.letsencryptEmail = email;
    } else if (email !== "" && !EMAIL.test(email)) {
        r.fail("letsencryptEmail", email, "must be a valid e-mail address (it is only used with tlsMode letsencrypt)");
    }
    if (production && tlsMode === "selfSigned") {
        r.fail("tlsMode", tlsMode, "a production stack needs a certificate browsers trust: use provided or letsencrypt");
    }

    const staticUrlPath = r.string("staticUrlPath").trim();
    const staticDirSetting = r.string("staticDir").trim();
    let staticFiles: StackConfig["lb"]["staticFiles"];
    if (staticUrlPath !== "" || staticDirSetting !== "") {
        if (!/^\/(?:[A-Za-z0-9._~-]+\/)+$/.test(staticUrlPath)) {
            r.fail("staticUrlPath", staticUrlPath, "must be a URL prefix that starts and ends with /, e.g. /static/ (and needs staticDir)");
        }
        const dir = path.resolve(appDir, staticDirSetting);
        if (staticDirSetting === "" || path.isAbsolute(staticDirSetting) || !dir.startsWith(appDir + path.sep)) {
            r.fail("staticDir", staticDirSetting, "must be a directory inside appDir, given relative to it (e.g. static), and needs staticUrlPath");
        } else if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
            r.fail("staticDir", staticDirSetting, `is not a directory: ${dir} does not exist`);
        }
        staticFiles = { urlPath: staticUrlPath, dir };
    }

    // --- monitoring ---
    const monitoringFlavor = r.string("monitoringFlavor").trim();
    const retentionDays = r.integer("monitoringRetentionDays", 1, 3650);
    const scrapeIntervalSeconds = r.integer("monitoringScrapeInterval", 1, 300);
    const errorRatePercent = r.integer("alertErrorRatePercent", 1, 100);
    const latencyP95Ms = r.integer("alertLatencyP95Ms", 1, 600_000);
    if (monitoringNode && !/^[a-z0-9][a-z0-9.-]*$/.test(monitoringFlavor)) {
        r.fail("monitoringFlavor", monitoringFlavor, "must be an OVH flavor name such as d2-4 or b3-8 (the monitoring node runs Prometheus)");
    }
    if (latencyP95Ms > proxyReadTimeout * 1000) {
        r.fail("alertLatencyP95Ms", latencyP95Ms, `is longer than proxyReadTimeout (${proxyReadTimeout} s): nginx gives up on a request before the alert could fire; use at most ${proxyReadTimeout * 1000}`);
    }
    const monitoring: MonitoringSettings = {
        ports: MONITORING_PORTS,
        scrapeIntervalSeconds,
        alerts: { errorRatio: errorRatePercent / 100, latencyP95Seconds: latencyP95Ms / 1000 },
    };

    // --- the kernel, sized from the same numbers ---
    const somaxconn = Math.min(65535, Math.max(4096, backlog, Math.ceil(targetConcurrency / 4)));
    const kernel = {
        somaxconn,
        synBacklog: somaxconn,
        netdevBacklog: 16384,
        localPortRange: LOCAL_PORT_RANGE,
        fileMax: Math.max(2_097_152, 4 * maxOpenFiles),
        nrOpen: Math.max(1_048_576, maxOpenFiles),
    };

    // ===== capacity: concurrency, rates and overload limits (config/capacity.ts, config/rates.ts) =====
    const lbRam = FLAVORS[lbHost.flavor]?.ramGb;
    const appRam = FLAVORS[appHost.flavor]?.ramGb;
    const capacity = capacityModel({
        lbWorkers,
        lbWorkerConnections,
        lbWorkerOpenFiles,
        // The status port is reserved out of the LB's ephemeral range.
        lbEphemeralPorts: LOCAL_PORT_RANGE[1] - LOCAL_PORT_RANGE[0] + 1 - LB_RESERVED_PORTS.length,
        appNodes: nodeCount,
        appWorkersPerNode: workers,
        appWorkerConnections: workerConnections,
        appWorkerOpenFiles: appOpenFiles,
        appBacklog: backlog,
        // Memory only where the flavor table knows it (a vCPU override names no RAM).
        memory: lbRam !== undefined && appRam !== undefined && lbHost.vcpus === FLAVORS[lbHost.flavor]?.vcpus && appHost.vcpus === FLAVORS[appHost.flavor]?.vcpus
            ? { lbBytes: lbRam * GB, appNodeBytes: appRam * GB, rates: MEASURED_RATES }
            : undefined,
    });
    if (r.problems.length === 0 && capacity.ceiling < targetConcurrency) {
        r.fail(
            "targetConcurrency",
            targetConcurrency,
            `the cluster holds at most ${capacity.ceiling} concurrent requests, bound by ${capacity.binding.name} (${capacity.binding.formula}). ` +
                `Raise that limit (more app nodes, gunicornWorkers or gunicornWorkerConnections; lbWorkerProcesses; maxOpenFiles; larger flavors) or lower targetConcurrency`,
        );
    }
    const rateTargets = { requestsPerSecond: r.integer("targetRequestsPerSecond", 0, 100_000_000), newConnectionsPerSecond: r.integer("targetNewConnectionsPerSecond", 0, 100_000_000) };
    const appRateSetting = r.integer("appRequestsPerCore", 0, 10_000_000);
    // The measured cost is the bundled sample's; another app's is unknown until someone measures it.
    const appRequestsPerCore = appRateSetting || (sample ? MEASURED_RATES.sampleAppRequestsPerCore : undefined);
    const rateInputs = { lbVcpus: lbHost.vcpus, appNodes: nodeCount, appVcpus: appHost.vcpus, appWorkersPerNode: workers, appRequestsPerCore, rates: MEASURED_RATES };
    const rateLimitSetting = r.integer("lbRequestRateLimit", 0, 100_000_000);
    if (appRequestsPerCore === undefined && rateTargets.requestsPerSecond > 0) {
        r.failMissing("appRequestsPerCore", `targetRequestsPerSecond (${rateTargets.requestsPerSecond}) can only be checked against what one core of your app serves per second: measure it (npm run bench, or your own load test on one worker) and set it`);
    }
    const shortfall = r.problems.length === 0 ? rateShortfall(rateInputs, rateTargets, HEADROOM) : undefined;
    if (shortfall) r.fail(shortfall.key, rateTargets[shortfall.key === "targetRequestsPerSecond" ? "requestsPerSecond" : "newConnectionsPerSecond"], `${shortfall.reason}. Fix: ${shortfall.fix}`);
    if (rateLimitSetting > 0 && rateLimitSetting < Math.max(rateTargets.requestsPerSecond, rateTargets.newConnectionsPerSecond)) {
        r.fail("lbRequestRateLimit", rateLimitSetting, `is below the target rate (${Math.max(rateTargets.requestsPerSecond, rateTargets.newConnectionsPerSecond)}/s): the load balancer would refuse the traffic the stack is meant to carry; raise it or use 0 (from the capacity model)`);
    }
    const rates = { targets: rateTargets, model: rateModel(rateInputs), load: rateLoad(rateInputs, rateTargets), appRequestsPerCore, measured: MEASURED_RATES.provenance };
    const overload = overloadLimits({
        rates: rates.model,
        requestRateSetting: rateLimitSetting,
        appNodes: nodeCount,
        appWorkersPerNode: workers,
        appWorkerConnections: workerConnections,
        appWorkerOpenFiles: appOpenFiles,
        lbWorkers,
    });
    // ===== end of capacity =====

    if (r.problems.length > 0 || !network) throw new ConfigError(r.problems, project, ctx.stack);
    network.gatewayModel = gatewayModel;
    network.dnsNameservers = dnsNameservers;
    if (network.monitoringIp) monitoring.node = { flavor: monitoringFlavor, ip: network.monitoringIp, retentionDays };

    return {
        project,
        stack: ctx.stack,
        production,
        targetConcurrency,
        ovh: { endpoint, serviceName, applicationKey, applicationSecret, consumerKey },
        openstack: { authUrl, region, tenantId: serviceName, userName, password },
        network,
        ssh: { user: platform.sshUser, adminCidrs, deployerCidrs },
        platform,
        lb: {
            flavor: lbHost.flavor,
            vcpus: lbHost.vcpus,
            workerProcesses: lbWorkers,
            workerConnections: lbWorkerConnections,
            workerOpenFiles: lbWorkerOpenFiles,
            listenBacklog: somaxconn,
            method,
            upstreamKeepalive,
            upstreamKeepaliveTimeout,
            proxyConnectTimeout,
            proxyReadTimeout,
            clientMaxBodySize,
            domain: domain || undefined,
            hstsMaxAge,
            statusPort: LB_STATUS_PORT,
            tls,
            staticFiles,
        },
        app: {
            name: appName,
            kind,
            dir: appDir,
            sample,
            module: appModule,
            port: appPort,
            env,
            healthPath,
            accessLog,
            releasesKept,
            releasePin: pin || undefined,
            rolloutBatchSize,
            gateTimeout: Math.max(60, gracefulTimeout + 30),
            drainLeaseSeconds: Math.max(60, gracefulTimeout + 30) + 90,
            nodeCount,
            flavor: appHost.flavor,
            vcpus: appHost.vcpus,
        },
        gunicorn: {
            workers,
            workerClass: kind === "wsgi" ? "gevent" : platform.asgiWorkerClass,
            workerConnections,
            backlog,
            timeout,
            gracefulTimeout,
            keepalive,
            maxRequests,
            maxRequestsJitter,
            openFiles: appOpenFiles,
        },
        monitoring,
        kernel,
        capacity,
        rates,
        overload,
        warnings,
    };
}
