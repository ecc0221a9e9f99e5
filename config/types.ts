/**
 * The typed settings of a stack, as config/stackConfig.ts produces them from
 * the raw configuration, and what that parse needs. Types only.
 */
import type { CapacityModel, OverloadLimits, RateLoad, RateModel, RateTargets } from "./capacity";
import type { Platform } from "./catalog";
import type { ProjectDeclarations } from "./declarations";
import type { MONITORING_PORTS } from "./ports";
import type { RatesProvenance } from "./rates";
import type { OvhEndpoint } from "./regions";
import type { Secret } from "./secret";

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
    /** lbCount 2: the second load balancer's address and the virtual address the pair shares (config/network.ts). */
    pair?: { secondLbIp: string; vip: string };
}

export interface TlsSettings {
    mode: TlsMode;
    certificate?: string;
    privateKey?: Secret;
    letsencryptEmail?: string;
    /** The ACME directory certbot uses (--server): Let's Encrypt production unless set. */
    letsencryptServer: string;
}

/** The domain's A record, managed in its zone at OVH (dnsZone set). */
export interface DnsRecordSettings {
    /** The zone at OVH, e.g. example.com. */
    zone: string;
    /** The domain's name inside the zone ("" for the zone's apex). */
    subdomain: string;
    ttl: number;
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
        /** 1, or 2: an active/backup pair sharing the public address (keepalived). Capacity counts one. */
        count: 1 | 2;
        flavor: string;
        vcpus: number;
        workerProcesses: number;
        workerConnections: number;
        workerOpenFiles: number;
        /** Accept queue per listening socket: about a second of the handshakes the LB's vCPUs carry (overloadLimits, config/capacity.ts). */
        listenBacklog: number;
        method: LbMethod;
        upstreamKeepalive: number;
        upstreamKeepaliveTimeout: number;
        proxyConnectTimeout: number;
        proxyReadTimeout: number;
        clientMaxBodySize: string;
        domain?: string;
        /** The domain's A record, when the program manages it (dnsZone). */
        dnsRecord?: DnsRecordSettings;
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
        /** Debian packages the app needs on its nodes (names checked, distinct). */
        packages: string[];
        port: number;
        env?: Secret;
        healthPath: string;
        /** gunicorn access log to journald (the LB's JSON log already records every request). */
        accessLog: boolean;
        releasesKept: number;
        releasePin?: string;
        rolloutBatchSize: number;
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
    /** gunicorn's per-request statsd to the node's exporter (monitoringAppStatsd): a cost per request, so opt-in. */
    appStatsd: boolean;
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
    /** What the parse may ask of the file system (config/files.ts): injected, so the parse stays pure. */
    files: FileView;
}

/** The questions about local files a configuration raises (does appDir exist, is the entry module in it). */
export interface FileView {
    isDirectory(path: string): boolean;
    isFile(path: string): boolean;
}

