import * as pulumi from "@pulumi/pulumi";
import { ACTIVE_LOAD_BALANCERS, RateCeiling } from "../config/capacity";
import type { StackConfig } from "../config/types";
import { Cluster } from "./cluster";
import { Host } from "./host";
import { scrapeTargets } from "../provisioning/monitoringFiles";
import { renderKnownHosts, renderSshConfig, SshAccessOptions, sshCommand, sshSetupCommand, sshTunnelCommand } from "../provisioning/render/sshConfig";

/** Where sshKeySetup writes the stack's SSH files, named after project and stack. */
export function sshFiles(cfg: StackConfig) {
    const base = `~/.ssh/${cfg.project}-${cfg.stack}`;
    return { key: base, config: `${base}.config`, knownHosts: `${base}.known_hosts` };
}

/** The nodes as ssh reaches them, with the host keys every connection of the program pins. */
function sshAccess(cfg: StackConfig, cluster: Cluster): pulumi.Output<SshAccessOptions> {
    const files = sshFiles(cfg);
    const node = (host: Host, address: pulumi.Input<string>) =>
        pulumi.all([address, host.hostPublicKey]).apply(([a, hostPublicKey]) => ({ alias: host.name, address: a, hostPublicKey }));
    // A pair: the public address reaches whichever LB holds it (one host key for both); each LB by its own address behind it.
    const pair = cluster.lb.members.length > 1;
    const lbHosts = pair ? cluster.lb.members.map(m => m.host) : [];
    const privateHosts = [...lbHosts, ...cluster.apps.nodes.map(n => n.host), ...(cluster.monitoring ? [cluster.monitoring.host] : [])];
    const entry = pair
        ? pulumi.all([cluster.lbPublicIp, cluster.lb.host.hostPublicKey]).apply(([address, hostPublicKey]) => ({ alias: activeLbAlias(cfg), address, hostPublicKey }))
        : node(cluster.lb.host, cluster.lbPublicIp);
    return pulumi.all([entry, ...privateHosts.map(h => node(h, h.privateIp))]).apply(([lb, ...privateNodes]) => ({
        stack: `${cfg.project}-${cfg.stack}`,
        user: cfg.ssh.user,
        keyFile: files.key,
        knownHostsFile: files.knownHosts,
        lb,
        privateNodes,
    }));
}

/** A pair's ssh alias for the public address: whichever LB holds it. */
export function activeLbAlias(cfg: StackConfig): string {
    return `${cfg.project}-${cfg.stack}-lb-active`;
}

/** lbCount 2: both LBs by name and private address, the virtual address they share, and how to ask which holds it. */
function pairOutputs(cfg: StackConfig, cluster: Cluster, sshConfigFile: string) {
    const pair = cfg.network.pair;
    if (!pair) return {};
    return {
        lbs: cluster.lb.members.map(m => ({ name: m.host.name, privateIp: m.host.privateIp })),
        lbVip: pair.vip,
        // The public address answers from the LB that holds it: its hostname says which.
        lbHolderCommand: `${sshCommand(sshConfigFile, activeLbAlias(cfg))} hostname`,
        sshLbs: cluster.lb.members.map(m => sshCommand(sshConfigFile, m.host.name)),
    };
}

/** A release kept on an app node, as hostctl's `releases` lists it. */
export interface KeptRelease {
    id: string;
    /** When it was unpacked and checked (UTC, ISO 8601). */
    completed: string;
    current: boolean;
}

/** The kept releases of each app node, read after the node's change is in rotation. */
function releasesOutput(cluster: Cluster): pulumi.Output<Record<string, KeptRelease[]>> {
    return pulumi
        .all(cluster.apps.nodes.map(n => n.releases.stdout.apply(out => [n.host.name, parseReleases(out)] as const)))
        .apply(entries => Object.fromEntries(entries));
}

/** hostctl prints one JSON array; empty output (a preview, a mocked run) is no release yet. */
export function parseReleases(stdout: string): KeptRelease[] {
    const text = (stdout ?? "").trim();
    return text ? (JSON.parse(text) as KeptRelease[]) : [];
}

/** What `pulumi stack output` shows: addresses, ready-to-paste SSH commands, and the effective settings. */
export function stackOutputs(cfg: StackConfig, cluster: Cluster) {
    const files = sshFiles(cfg);
    const access = sshAccess(cfg, cluster);
    return {
        url: cluster.url,
        lbPublicIp: cluster.lbPublicIp,
        lbPrivateIp: cluster.lbPrivateIp,
        ...pairOutputs(cfg, cluster, files.config),
        appPrivateIps: cluster.appPrivateIps,
        release: cluster.release.id,
        // Per app node, newest first: what `appRelease=<id>` can roll back to, without an SSH session.
        releases: releasesOutput(cluster),
        // Public keys and addresses only: not secret, so `pulumi stack output` prints them as they are.
        sshConfig: access.apply(renderSshConfig),
        sshKnownHosts: access.apply(renderKnownHosts),
        sshKeySetup: sshSetupCommand({
            pulumiStack: cfg.stack,
            keyFile: files.key,
            configFile: files.config,
            knownHostsFile: files.knownHosts,
            outputs: { privateKey: "sshPrivateKey", config: "sshConfig", knownHosts: "sshKnownHosts" },
        }),
        sshLb: sshCommand(files.config, cluster.lb.members.length > 1 ? activeLbAlias(cfg) : cluster.lb.host.name),
        sshApps: cluster.apps.nodes.map(n => sshCommand(files.config, n.host.name)),
        sshPrivateKey: cluster.sshPrivateKey,
        monitoring: monitoringOutputs(cfg, cluster, files.config),
        capacity: {
            // A pair is active/backup: one LB carries the traffic, so the model counts one (config/capacity.ts).
            activeLoadBalancers: ACTIVE_LOAD_BALANCERS,
            ceiling: cfg.capacity.ceiling,
            bindingLimit: `${cfg.capacity.binding.name}: ${cfg.capacity.binding.formula}`,
            targetConcurrency: cfg.targetConcurrency,
            limits: Object.fromEntries(cfg.capacity.limits.map(l => [l.name, l.requests])),
            rates: rateOutputs(cfg),
            overload: cfg.overload,
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
function monitoringOutputs(cfg: StackConfig, cluster: Cluster, sshConfigFile: string) {
    const exporters: Record<string, string[]> = {};
    for (const t of scrapeTargets(cfg)) (exporters[t.job] ??= []).push(`http://${t.address}:${t.port}/metrics`);
    const mon = cluster.monitoring;
    const port = cfg.monitoring.ports.prometheus;
    return {
        exporters,
        prometheus: mon
            ? {
                  url: mon.prometheusUrl,
                  // One hop: the LB's security group is the one Prometheus admits.
                  tunnel: sshTunnelCommand(sshConfigFile, cluster.lb.members.length > 1 ? activeLbAlias(cfg) : cluster.lb.host.name, mon.privateIp, port),
                  tunnelUrl: `http://localhost:${port}/`,
                  ssh: sshCommand(sshConfigFile, mon.host.name),
              }
            : null,
    };
}

/** What the vCPUs carry per second, from the measured per-core costs, against the stack's targets. */
function rateOutputs(cfg: StackConfig) {
    const r = cfg.rates;
    const ceiling = (c: RateCeiling, target: number) => ({
        ceiling: c.ceiling,
        bindingLimit: `${c.binding.name}: ${c.binding.formula}`,
        target: target || "not checked (0)",
        limits: Object.fromEntries(c.limits.map(l => [l.name, l.perSecond])),
    });
    return {
        requestsPerSecond: ceiling(r.model.requests, r.targets.requestsPerSecond),
        newConnectionsPerSecond: ceiling(r.model.newConnections, r.targets.newConnectionsPerSecond),
        atTargets: { lbCores: Number(r.load.lbCores.toFixed(2)), appCoresPerNode: r.load.appCoresPerNode === undefined ? "unknown app cost" : Number(r.load.appCoresPerNode.toFixed(2)) },
        appRequestsPerCore: r.appRequestsPerCore ?? "unknown: set appRequestsPerCore",
        measured: `${r.measured.date}, ${r.measured.machine} (${r.measured.source})`,
    };
}
