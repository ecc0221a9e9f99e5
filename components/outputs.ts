import * as pulumi from "@pulumi/pulumi";
import { StackConfig } from "../config/stackConfig";
import { Cluster } from "./cluster";

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
