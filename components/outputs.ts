import * as pulumi from "@pulumi/pulumi";
import { StackConfig } from "../config/stackConfig";
import { Cluster } from "./cluster";
import { scrapeTargets } from "../provisioning/monitoringFiles";

/** What `pulumi stack output` shows: addresses, ready-to-paste SSH commands, and the effective settings. */
export function stackOutputs(cfg: StackConfig, cluster: Cluster) {
    const user = cfg.ssh.user;
    const keyFile = `~/.ssh/${cfg.project}-${cfg.stack}`;
    return {
        url: cluster.url,
        lbPublicIp: cluster.lbPublicIp,
        lbPrivateIp: cluster.lbPrivateIp,
        appPrivateIps: cluster.appPrivateIps,
        release: cluster.release.id,
        sshKeySetup: pulumi.interpolate`pulumi stack output --show-secrets sshPrivateKey > ${keyFile} && chmod 600 ${keyFile}`,
        sshLb: pulumi.interpolate`ssh -i ${keyFile} ${user}@${cluster.lbPublicIp}`,
        sshApps: cluster.appPrivateIps.map(
            ip => pulumi.interpolate`ssh -i ${keyFile} -J ${user}@${cluster.lbPublicIp} ${user}@${ip}`,
        ),
        sshPrivateKey: cluster.sshPrivateKey,
        monitoring: monitoringOutputs(cfg, cluster, keyFile),
        capacity: {
            ceiling: cfg.capacity.ceiling,
            bindingLimit: `${cfg.capacity.binding.name}: ${cfg.capacity.binding.formula}`,
            targetConcurrency: cfg.targetConcurrency,
            limits: Object.fromEntries(cfg.capacity.limits.map(l => [l.name, l.requests])),
        },
        settings: {
            region: cfg.openstack.region,
            image: cfg.platform.image,
            nginx: {
                version: cfg.platform.nginxVersion,
                workerProcesses: cfg.lb.workerProcesses,
                workerConnections: cfg.lb.workerConnections,
                workerRlimitNofile: cfg.lb.workerOpenFiles,
                method: cfg.lb.method,
                tls: cfg.lb.tls.mode,
            },
            gunicorn: {
                version: cfg.platform.gunicornVersion,
                nodes: cfg.app.nodeCount,
                flavor: cfg.app.flavor,
                workerClass: cfg.gunicorn.workerClass,
                workers: cfg.gunicorn.workers,
                workerConnections: cfg.gunicorn.workerConnections ?? null,
                backlog: cfg.gunicorn.backlog,
                keepalive: cfg.gunicorn.keepalive,
                limitNofile: cfg.gunicorn.openFiles,
            },
            kernel: cfg.kernel,
        },
    };
}

/**
 * Where the metrics are: every exporter by job (private addresses), and Prometheus with the SSH
 * tunnel through the load balancer that reaches it (null without the monitoring node).
 */
function monitoringOutputs(cfg: StackConfig, cluster: Cluster, keyFile: string) {
    const exporters: Record<string, string[]> = {};
    for (const t of scrapeTargets(cfg)) (exporters[t.job] ??= []).push(`http://${t.address}:${t.port}/metrics`);
    const mon = cluster.monitoring;
    const user = cfg.ssh.user;
    const port = cfg.monitoring.ports.prometheus;
    return {
        exporters,
        prometheus: mon
            ? {
                  url: mon.prometheusUrl,
                  tunnel: pulumi.interpolate`ssh -i ${keyFile} -N -L ${port}:${mon.privateIp}:${port} ${user}@${cluster.lbPublicIp}`,
                  tunnelUrl: `http://localhost:${port}/`,
                  ssh: pulumi.interpolate`ssh -i ${keyFile} -J ${user}@${cluster.lbPublicIp} ${user}@${mon.privateIp}`,
              }
            : null,
    };
}
