import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { AppArchive } from "../provisioning/archive";
import { APP_PACKAGES, appKernelFiles, appLayout, appNodeFiles } from "../provisioning/appFiles";
import { BundleFile, renderBundle } from "../provisioning/render/bundle";
import { admitCommand, appCommand, AppCommandOptions, stackRolloutPlan } from "../provisioning/rollout";
import { appMonitoring, MONITORING_PACKAGES } from "../provisioning/monitoringFiles";
import { installRelease, listReleases, onLoadBalancer, PushTarget, pushApp, pushMonitoring, uploadRelease } from "../provisioning/push";
import { Bastion, Host, NodePlacement } from "./host";

/** What an app node's rollout needs from the load balancers (one, or a pair: each admits the node). */
export interface LbHandle {
    members: {
        target: PushTarget;
        /** The nginx configuration push: the upstream exists once it has run. */
        nginx: pulumi.Resource;
    }[];
    siteHost: pulumi.Output<string>;
}

export interface AppRelease {
    id: string;
    /** Absent when the stack pins an earlier release that is already on the hosts. */
    archive?: AppArchive;
}

export interface AppNodeArgs extends NodePlacement {
    index: number;
    bastion: Bastion;
    lb: LbHandle;
    release: AppRelease;
    /** Keys the change fingerprints (secret; never leaves the program). */
    fingerprintKey: pulumi.Output<string>;
}

export interface RolloutArgs {
    /** The previous batch: this node changes only once those nodes are back in rotation. */
    after: pulumi.Resource[];
    /** Every node's validation of the change: no node changes before all of them passed. */
    checks: pulumi.Resource[];
}

/** HMAC of content that may hold secrets: safe to show in a plan, changes when the content does. */
function fingerprint(key: pulumi.Output<string>, parts: pulumi.Input<string>[]): pulumi.Output<string> {
    return pulumi.unsecret(
        pulumi.all([key, ...parts]).apply(([k, ...ps]) => crypto.createHmac("sha256", k).update(ps.join("\0")).digest("hex").slice(0, 16)),
    );
}

/**
 * One private app node: its host, its release (unpacked ahead of the rollout)
 * and its gunicorn service. A change is first validated on every node
 * and smoke-booted on every node (`check`), then, node by node: the node drains
 * itself (refuses new connections; nginx retries elsewhere), switches, passes
 * its health gate (or rolls back) and takes traffic again; the LB then checks
 * it too. No nginx reload is involved, so no client connection is cut.
 */
export class AppNode extends pulumi.ComponentResource {
    readonly host: Host;
    /** The change staged and validated on this node, nothing switched. */
    readonly check: command.remote.Command;
    /** Set by rollOut. */
    app!: command.remote.Command;
    /** Back in rotation and healthy through the load balancer: the next batch may start. */
    admitted!: command.remote.Command;
    /** Set by rollOut: the releases kept on the node once its change is in rotation (stdout: JSON). */
    releases!: command.remote.Command;
    /** Node exporter and pycluster-statsd-exporter (gunicorn's workers), on the private address. */
    readonly monitoring: command.remote.Command;

    private readonly server: string;
    private readonly healthUrl: string;
    private readonly options: AppCommandOptions;
    private readonly files: pulumi.Output<BundleFile[]>;
    private readonly change: pulumi.Output<string>;

    constructor(
        name: string,
        private readonly args: AppNodeArgs,
        opts?: pulumi.ComponentResourceOptions,
    ) {
        super("pycluster:app:AppNode", name, {}, opts);
        const cfg = args.config;
        const ip = cfg.network.appIps[args.index];
        this.host = new Host(
            name,
            {
                region: cfg.openstack.region,
                flavor: cfg.app.flavor,
                image: cfg.platform.image,
                networkId: args.networkId,
                subnet: args.subnet,
                gateway: args.gateway,
                fixedIp: ip,
                securityGroupIds: [args.securityGroupId],
                access: args.access,
                packages: APP_PACKAGES,
                // What the app needs comes over SSH like the rest: before its release is checked, never in user data.
                extraPackages: [...MONITORING_PACKAGES.app, ...cfg.app.packages],
                appUser: cfg.app.name,
                kernelFiles: appKernelFiles(cfg),
                bastion: args.bastion,
            },
            { parent: this },
        );

        // Releases are unpacked on every node in parallel; only the switch is rolled out in order.
        const upload = args.release.archive ? [uploadRelease(this.host.target, cfg.app.name, args.release.archive, [this.host.ready])] : [];
        const release = installRelease(this.host.target, { app: cfg.app.name, release: args.release.id, user: cfg.app.name }, [this.host.ready, ...upload]);

        const envText = cfg.app.env ? pulumi.secret(cfg.app.env.reveal()) : pulumi.output("{}");
        this.files = envText.apply(text => appNodeFiles(cfg, { nodeIp: ip, env: JSON.parse(text) }));
        this.server = `${ip}:${cfg.app.port}`;
        this.healthUrl = `http://${this.server}${cfg.app.healthPath}`;
        const plan = stackRolloutPlan(cfg);
        this.options = {
            app: cfg.app.name,
            release: args.release.id,
            user: cfg.app.name,
            module: cfg.app.module,
            bind: this.server,
            healthPath: cfg.app.healthPath,
            workers: cfg.gunicorn.workers,
            keep: cfg.app.releasesKept,
            gateTimeout: plan.gateTimeout,
            noDrain: !plan.drain,
        };
        // Everything the node is about to receive: the admit step runs exactly when it changes.
        this.change = fingerprint(args.fingerprintKey, [appCommand(this.options), this.files.apply(renderBundle)]);
        // Independent of the rollout: gunicorn sends statsd whether or not the exporter listens yet.
        this.monitoring = pushMonitoring(this.host.target, appMonitoring(cfg, ip), [this.host.ready]);
        this.check = pushApp(this.host.target, { ...this.options, checkOnly: true }, this.files, cfg.app.env !== undefined, [release]);
    }

    /** The node's place in the rollout: switch (the node drains itself meanwhile), then admit. */
    rollOut(r: RolloutArgs): void {
        const cfg = this.args.config;
        const lb = this.args.lb;
        this.app = pushApp(this.host.target, this.options, this.files, cfg.app.env !== undefined, [this.check, ...r.checks, ...r.after]);
        // On each LB in turn: a node new to the upstream is admitted there; every change is gated from it too.
        // Re-runs when either VM is replaced (a new LB starts with every node drained).
        const admit = lb.siteHost.apply(siteHost => admitCommand({ server: this.server, nodeHealthUrl: this.healthUrl, siteHost, healthPath: cfg.app.healthPath }));
        let previous: pulumi.Resource = this.app;
        lb.members.forEach((m, i) => {
            const suffix = i === 0 ? "lb" : `lb-${i + 1}`;
            const lbSide: PushTarget = { ...m.target, name: `${this.host.target.name}-${suffix}`, parent: this, triggers: [...m.target.triggers, this.host.instance.id] };
            previous = onLoadBalancer(lbSide, "admit", admit, this.change, [previous, m.nginx]);
        });
        this.admitted = previous as command.remote.Command;
        this.releases = listReleases(this.host.target, cfg.app.name, this.change, [this.admitted]);
        this.registerOutputs({ privateIp: this.host.privateIp, release: this.args.release.id, unit: appLayout(cfg.app.name).unit });
    }
}
