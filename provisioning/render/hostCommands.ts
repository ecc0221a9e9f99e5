import { AGENT, hostctlCommand, hostPath } from "../hostContract";

/**
 * The command lines the program runs on hosts outside a rollout (provisioning/rollout.ts has the
 * rollout's), as values: the program decides where and when. Each calls hostctl, which stages,
 * validates, switches and checks; file contents travel on stdin, never on the command line.
 */

/** Install hostctl (its zipapp, base64 on stdin), then wait until cloud-init has finished. */
export function bootstrapCommand(): string {
    return [
        `sudo install -d -m 0755 ${AGENT.dir}`,
        `base64 -d | sudo tee ${AGENT.file}.new >/dev/null`,
        `sudo chmod 0755 ${AGENT.file}.new`,
        `sudo mv ${AGENT.file}.new ${AGENT.file}`,
        hostctlCommand("wait-boot"),
    ].join(" && ");
}

export const packagesCommand = (packages: string[]) => hostctlCommand("packages", {}, packages);
export const kernelCommand = () => hostctlCommand("kernel");
/** How one of a pair's LBs takes an nginx change: see lbRolloutSteps. */
export interface NginxPairPass {
    /** Validate only while this LB holds the public address (its peer changes first). */
    deferIfHolder: boolean;
    /** nginx's status page on this LB: it must answer after the switch, or the previous configuration returns. */
    checkUrl: string;
    /**
     * The site through this LB's nginx (https on loopback, `siteHost` as SNI and Host): if it answers
     * 200 before the switch, it must after, or the previous configuration returns. What moving the
     * address to the changed LB would prove, without dropping the holder's connections.
     */
    siteUrl: string;
    siteHost: string;
}

/** New upstream servers enter drained (on a lease) until their node's admit step. */
export const nginxCommand = (healthPath: string, leaseSeconds: number, pair?: NginxPairPass) =>
    hostctlCommand("nginx", {
        "health-path": healthPath,
        lease: leaseSeconds,
        "defer-if-holder": pair?.deferIfHolder,
        "check-url": pair?.checkUrl,
        "site-url": pair?.siteUrl,
        "site-host": pair?.siteHost,
    });

/** A pair's LB: install keepalived.conf (stdin), the interface holding `address` filled in, validated, reloaded. */
export const keepalivedCommand = (address: string) => hostctlCommand("keepalived", { address });

export const releaseArchivePath = (app: string, release: string) => hostPath("releaseArchive", { app, release });
export const releaseCommand = (o: { app: string; release: string; user: string }) => hostctlCommand("release", o);
export const releasesCommand = (app: string) => hostctlCommand("releases", { app });

/** Install the monitoring bundle (stdin); each `service=url` must answer 200 afterwards, or the change is undone. */
export const monitoringCommand = (endpoints: { service: string; url: string }[]) =>
    hostctlCommand("monitoring", {}, endpoints.map(e => `${e.service}=${e.url}`));

export const staticArchivePath = (app: string, release: string) => hostPath("staticArchive", { app, release });
export const staticCommand = (o: { app: string; release: string }) => hostctlCommand("static", o);

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
    hostctlCommand("letsencrypt", {
        domain: o.domain,
        email: o.email,
        webroot: o.webroot,
        server: o.server,
        "expect-address": o.address,
        wait: o.waitSeconds || undefined,
        "managed-record": o.managedRecord,
    });
