import { StackConfig } from "../config/types";
import { BundleFile } from "./render/bundle";
import { kernelFiles } from "./kernelFiles";
import { AGENT, hostctlCommand, hostPath, KEEPALIVED_INTERFACE_TOKEN, LB_VERDICT_URL_PATH } from "./hostContract";
import { PAIR_HEALTH_TIMING, renderKeepalivedConf, virtualRouterId } from "./render/keepalived";
import { stackRolloutPlan } from "./rollout";
import { renderNginxSite } from "./render/nginx";
import { renderNginxMain } from "./render/nginxMain";
import { renderDrainExpiryUnits } from "./render/systemd";
import { MONITORING_PACKAGES, monitoringPorts } from "./monitoringFiles";

/** Packages of the load balancer, in its cloud-init user data: the same for every configuration. */
export const LB_PACKAGES = ["nginx"];

/**
 * The user data's packages of a load balancer: a pair's LBs also install keepalived at first boot
 * (it must hold the public address before the program can reach them through it).
 */
export function lbPackages(cfg: StackConfig): string[] {
    return cfg.lb.count === 2 ? [...LB_PACKAGES, "keepalived"] : LB_PACKAGES;
}

/** The load balancers' own private addresses: the first LB's, then the second's (lbCount 2). */
export function lbAddresses(cfg: StackConfig): string[] {
    return cfg.network.pair ? [cfg.network.lbIp, cfg.network.pair.secondLbIp] : [cfg.network.lbIp];
}

/** The other LB of a pair (undefined with one LB). */
export function pairPeer(cfg: StackConfig, own: string): string | undefined {
    return cfg.network.pair ? lbAddresses(cfg).find(a => a !== own) : undefined;
}

/** What some configurations add, installed over SSH (a user data change would rebuild the VM). */
export function lbExtraPackages(cfg: StackConfig): string[] {
    return [...(cfg.lb.tls.mode === "letsencrypt" ? ["certbot"] : []), ...MONITORING_PACKAGES.lb];
}

export function lbKernelFiles(cfg: StackConfig): BundleFile[] {
    const expiry = renderDrainExpiryUnits(AGENT.file);
    return [
        ...kernelFiles(cfg, [80, 443, cfg.lb.statusPort, ...monitoringPorts(cfg, "lb")], ["nginx.service"], cfg.lb.workerOpenFiles),
        { name: "pycluster-drain-expiry.service", mode: 0o644, content: expiry.service },
        { name: "pycluster-drain-expiry.timer", mode: 0o644, content: expiry.timer },
    ];
}

/** Where nginx serves static files from, on the load balancer. */
export function staticRoot(cfg: StackConfig): string {
    return hostPath("staticRoot", { app: cfg.app.name });
}

export interface LbRuntime {
    publicIp: string;
    /** This load balancer's private address (its status listener): a pair's LBs differ only there. Default: the first LB's. */
    privateIp?: string;
    /** PEM certificate chain and key for the site (absent: managed on the host, letsencrypt). */
    certificate?: { certPem: string; keyPem: string };
}

export function lbNginxFiles(cfg: StackConfig, rt: LbRuntime): BundleFile[] {
    const lb = cfg.lb;
    const files: BundleFile[] = [
        {
            name: "nginx.conf",
            mode: 0o644,
            content: renderNginxMain({ workerProcesses: lb.workerProcesses, workerConnections: lb.workerConnections, workerOpenFiles: lb.workerOpenFiles }),
        },
        {
            name: "site.conf",
            mode: 0o644,
            content: renderNginxSite({
                appName: cfg.app.name,
                nginxVersion: cfg.platform.nginxVersion,
                upstreams: cfg.network.appIps.map(address => ({ address, port: cfg.app.port })),
                method: lb.method,
                keepalive: lb.upstreamKeepalive,
                keepaliveTimeout: lb.upstreamKeepaliveTimeout,
                connectTimeout: lb.proxyConnectTimeout,
                readTimeout: lb.proxyReadTimeout,
                clientMaxBodySize: lb.clientMaxBodySize,
                serverNames: lb.domain ? [lb.domain] : [rt.publicIp],
                hasDomain: lb.domain !== undefined,
                listenBacklog: lb.listenBacklog,
                hstsMaxAge: lb.hstsMaxAge,
                statusListen: { address: rt.privateIp ?? cfg.network.lbIp, port: lb.statusPort },
                statusAllow: [cfg.network.cidr, "127.0.0.1"],
                ...(cfg.network.pair ? { pairVerdict: { urlPath: LB_VERDICT_URL_PATH, file: hostPath("lbUpstreamVerdict") } } : {}),
                staticFiles: lb.staticFiles ? { urlPath: lb.staticFiles.urlPath, root: staticRoot(cfg) } : undefined,
                nextUpstreamTries: stackRolloutPlan(cfg).nextUpstreamTries,
                acmePeer: cfg.lb.tls.mode === "letsencrypt" ? pairPeer(cfg, rt.privateIp ?? cfg.network.lbIp) : undefined,
                overload: {
                    requestRate: cfg.overload.requestRate,
                    requestBurst: cfg.overload.requestBurst,
                    perNodeConnections: cfg.overload.perNodeConnections,
                    retryAfterSeconds: cfg.overload.retryAfterSeconds,
                },
            }),
        },
    ];
    if (rt.certificate) {
        files.push({ name: "tls/fullchain.pem", mode: 0o644, content: rt.certificate.certPem });
        files.push({ name: "tls/privkey.pem", mode: 0o600, content: rt.certificate.keyPem });
    }
    return files;
}

/** hostctl as keepalived runs it (as root already, an absolute interpreter, as script security requires). */
function agentScript(command: string): string {
    return command.replace(/^sudo python3 /, "/usr/bin/python3 ");
}

/**
 * keepalived.conf of one LB of the pair, with the interface left as the contract's token (hostctl and
 * the bootstrap fill in the NIC holding `own`). `bootstrap`: the addresses only, for cloud-init.
 */
export function lbKeepalivedConf(cfg: StackConfig, own: string, o: { bootstrap: boolean }): string {
    const pair = cfg.network.pair;
    if (!pair) throw new Error("internal: keepalived is for a pair of load balancers (lbCount 2)");
    const peer = pairPeer(cfg, own)!;
    const check = hostctlCommand("vrrp-check", { address: own, peer, "status-port": cfg.lb.statusPort });
    return renderKeepalivedConf({
        cluster: `${cfg.project}-${cfg.stack}`,
        virtualRouterId: virtualRouterId(`${cfg.project}-${cfg.stack}`),
        interface: KEEPALIVED_INTERFACE_TOKEN,
        ownAddress: own,
        peerAddress: peer,
        vip: pair.vip,
        prefixLength: cfg.network.prefixLength,
        ...(o.bootstrap ? {} : { health: { script: agentScript(check), ...PAIR_HEALTH_TIMING }, notifyScript: agentScript(hostctlCommand("vrrp-notify")) }),
    });
}

export function lbKeepalivedFiles(cfg: StackConfig, own: string): BundleFile[] {
    return [{ name: "keepalived.conf", mode: 0o644, content: lbKeepalivedConf(cfg, own, { bootstrap: false }) }];
}
