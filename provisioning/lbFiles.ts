import { StackConfig } from "../config/types";
import { BundleFile } from "./render/bundle";
import { kernelFiles } from "./kernelFiles";
import { AGENT, hostPath } from "./hostContract";
import { stackRolloutPlan } from "./rollout";
import { renderNginxMain, renderNginxSite } from "./render/nginx";
import { renderDrainExpiryUnits } from "./render/systemd";
import { MONITORING_PACKAGES, monitoringPorts } from "./monitoringFiles";

/** Packages of the load balancer, in its cloud-init user data: the same for every configuration. */
export const LB_PACKAGES = ["nginx"];

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
                statusListen: { address: cfg.network.lbIp, port: lb.statusPort },
                statusAllow: [cfg.network.cidr, "127.0.0.1"],
                staticFiles: lb.staticFiles ? { urlPath: lb.staticFiles.urlPath, root: staticRoot(cfg) } : undefined,
                nextUpstreamTries: stackRolloutPlan(cfg).nextUpstreamTries,
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
