import { shellQuote } from "./quote";

/**
 * The command lines the program runs on hosts, as values (the program decides
 * where and when). Each calls hostctl, which stages, validates, switches and
 * checks; file contents travel on stdin, never on the command line.
 */
export const HOSTCTL_DIR = "/usr/local/lib/pycluster";
export const HOSTCTL = `${HOSTCTL_DIR}/hostctl.py`;

type Args = Record<string, string | number | undefined>;

function hostctl(subcommand: string, args: Args = {}, positional: string[] = []): string {
    const flags = Object.entries(args)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `--${k} ${shellQuote(String(v))}`);
    return ["sudo", "python3", HOSTCTL, subcommand, ...flags, ...positional.map(shellQuote)].join(" ");
}

/** Install hostctl (its source on stdin), then wait until cloud-init has finished. */
export function bootstrapCommand(): string {
    return [
        `sudo install -d -m 0755 ${HOSTCTL_DIR}`,
        `sudo tee ${HOSTCTL}.new >/dev/null`,
        `sudo chmod 0755 ${HOSTCTL}.new`,
        `sudo mv ${HOSTCTL}.new ${HOSTCTL}`,
        hostctl("wait-boot"),
    ].join(" && ");
}

export const packagesCommand = (packages: string[]) => hostctl("packages", {}, packages);
export const kernelCommand = () => hostctl("kernel");
/** New upstream servers enter drained (on a lease) until their node's admit step. */
export const nginxCommand = (healthPath: string, leaseSeconds: number) => hostctl("nginx", { "health-path": healthPath, lease: leaseSeconds });

export function releaseArchivePath(app: string, release: string): string {
    return `/var/tmp/pycluster-${app}-${release}.tar.gz`;
}

export const releaseCommand = (o: { app: string; release: string; user: string }) =>
    hostctl("release", { app: o.app, id: o.release, user: o.user });

export interface AppCommandOptions {
    /** Stage and validate only (gunicorn --check-config, systemd-analyze verify); switch nothing. */
    checkOnly?: boolean;
    /** No other node could take the traffic (a tier of one): change without draining. */
    noDrain?: boolean;
    app: string;
    release: string;
    user: string;
    module: string;
    bind: string;
    healthPath: string;
    workers: number;
    keep: number;
    gateTimeout: number;
}

export function appCommand(o: AppCommandOptions): string {
    const flags = {
        app: o.app,
        release: o.release,
        user: o.user,
        module: o.module,
        bind: o.bind,
        "health-path": o.healthPath,
        workers: o.workers,
        keep: o.keep,
        "gate-timeout": o.gateTimeout,
    };
    return hostctl("app", flags, [...(o.checkOnly ? ["--check-only"] : []), ...(o.noDrain ? ["--no-drain"] : [])]);
}

/**
 * Take a node out of rotation (on a lease: if its admit step never runs, the LB returns it once the
 * lease expired and it is healthy) or back in.
 */
export function upstreamCommand(action: "drain" | "undrain", server: string, lease?: { seconds: number; healthUrl: string }): string {
    return action === "drain"
        ? hostctl("upstream", { server, lease: lease?.seconds, health: lease?.healthUrl }, [action])
        : hostctl("upstream", { server }, [action]);
}

export interface GateOptions {
    /** Host header to send (checking the site through nginx by its server name). */
    hostHeader?: string;
    /** Accept the site's own certificate (self-signed, or issued for the domain). */
    insecure?: boolean;
}

export function gateCommand(url: string, timeoutSeconds: number, o: GateOptions = {}): string {
    return hostctl("gate", { url, timeout: timeoutSeconds, "host-header": o.hostHeader }, o.insecure ? ["--insecure"] : []);
}

/**
 * On the load balancer, after a node passed its own gate: take it into rotation,
 * check the LB reaches its health endpoint, then check the site answers through nginx.
 */
export function admitCommand(o: { server: string; nodeHealthUrl: string; siteHost: string; healthPath: string; failTimeout: number }): string {
    return [
        upstreamCommand("undrain", o.server),
        gateCommand(o.nodeHealthUrl, 60),
        gateCommand(`https://127.0.0.1${o.healthPath}`, 60, { hostHeader: o.siteHost, insecure: true }),
        // Then until nginx itself counts the node as alive again (it skips a node for fail_timeout after errors).
        hostctl("upstream", { server: o.server, "fail-timeout": o.failTimeout }, ["settle"]),
    ].join(" && ");
}

export const statusCommand = (app: string) => hostctl("status", { app });

/** Install the monitoring bundle (stdin); each `service=url` must answer 200 afterwards, or the change is undone. */
export const monitoringCommand = (endpoints: { service: string; url: string }[]) =>
    hostctl("monitoring", {}, endpoints.map(e => `${e.service}=${e.url}`));

export function staticArchivePath(app: string, id: string): string {
    return `/var/tmp/pycluster-static-${app}-${id}.tar.gz`;
}

export const staticCommand = (o: { app: string; id: string }) => hostctl("static", { app: o.app, id: o.id });

export interface LetsencryptOptions {
    domain: string;
    email: string;
    webroot: string;
    /** The ACME directory URL (certbot's --server). */
    server: string;
    /** The load balancer's public address: the step first checks that the domain resolves to it. */
    address: string;
    /** The stack manages the A record (dnsZone): wait this long for it to resolve. 0: check once. */
    waitSeconds: number;
    managedRecord: boolean;
}

/** certbot on the load balancer, once the domain resolves to it; fails with what to do while it does not. */
export const letsencryptCommand = (o: LetsencryptOptions) =>
    hostctl(
        "letsencrypt",
        { domain: o.domain, email: o.email, webroot: o.webroot, server: o.server, "expect-address": o.address, wait: o.waitSeconds || undefined },
        o.managedRecord ? ["--managed-record"] : [],
    );
