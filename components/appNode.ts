import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { StackConfig } from "../config/stackConfig";
import { AppArchive } from "../provisioning/archive";
import { appKernelFiles, appLayout, appNodeFiles, appPackages } from "../provisioning/appFiles";
import { renderBundle } from "../provisioning/render/bundle";
import { admitCommand } from "../provisioning/render/hostCommands";
import { installRelease, PushTarget, pushApp, setUpstream, uploadRelease } from "../provisioning/push";
import { Bastion, Host, HostAccess } from "./host";

/** What an app node's rollout needs from the load balancer. */
export interface LbHandle {
    target: PushTarget;
    /** The nginx configuration push: the upstream exists once it has run. */
    nginx: pulumi.Resource;
    siteHost: pulumi.Output<string>;
}

export interface AppRelease {
    id: string;
    /** Absent when the stack pins an earlier release that is already on the hosts. */
    archive?: AppArchive;
    /** Hash of the release's requirements (its venv), when known. */
    requirementsHash?: string;
}

export interface AppNodeArgs {
    config: StackConfig;
    index: number;
    networkId: pulumi.Input<string>;
    subnet: pulumi.Resource & { id: pulumi.Output<string> };
    securityGroupId: pulumi.Input<string>;
    access: HostAccess;
    bastion: Bastion;
    lb: LbHandle;
    release: AppRelease;
    /** Keys the change fingerprints (secret; never leaves the program). */
    fingerprintKey: pulumi.Output<string>;
    /** The previous rollout batch: this node changes only after those nodes are back in rotation. */
    after: pulumi.Resource[];
}

/** HMAC of content that may hold secrets: safe to show in a plan, changes when the content does. */
function fingerprint(key: pulumi.Output<string>, parts: pulumi.Input<string>[]): pulumi.Output<string> {
    return pulumi.unsecret(
        pulumi.all([key, ...parts]).apply(([k, ...ps]) => crypto.createHmac("sha256", k).update(ps.join("\0")).digest("hex").slice(0, 16)),
    );
}

/**
 * One private app node: its host, its release, and its gunicorn service,
 * changed in three steps: drained from the load balancer when the change
 * needs a restart, switched and health-gated on the node (rolled back on
 * failure), then admitted back after the LB itself sees it healthy.
 */
export class AppNode extends pulumi.ComponentResource {
    readonly host: Host;
    readonly app: command.remote.Command;
    /** Back in rotation and healthy through the load balancer: the next batch may start. */
    readonly admitted: command.remote.Command;

    constructor(name: string, args: AppNodeArgs, opts?: pulumi.ComponentResourceOptions) {
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
                fixedIp: ip,
                securityGroupIds: [args.securityGroupId],
                access: args.access,
                packages: appPackages(cfg),
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
        const files = envText.apply(text => appNodeFiles(cfg, { nodeIp: ip, env: JSON.parse(text) }));
        const unitAndEnv = files.apply(fs => fs.filter(f => f.name !== "gunicorn.conf.py").map(f => f.content).join("\0"));
        // A restart (so a drain) is due when the unit, the environment or the venv changes.
        const restartChange = fingerprint(args.fingerprintKey, [unitAndEnv, args.release.requirementsHash ?? args.release.id]);
        const server = `${ip}:${cfg.app.port}`;
        // Steps on the LB for this node re-run when either VM is replaced (a new LB starts with every node drained).
        const lbSide: PushTarget = { ...args.lb.target, name: `${name}-lb`, parent: this, triggers: [...args.lb.target.triggers, this.host.instance.id] };

        const drain = setUpstream(lbSide, "drain", "drain", server, restartChange, [args.lb.nginx, ...args.after]);
        const g = cfg.gunicorn;
        this.app = pushApp(
            this.host.target,
            {
                app: cfg.app.name,
                release: args.release.id,
                user: cfg.app.name,
                module: cfg.app.module,
                bind: server,
                healthPath: cfg.app.healthPath,
                workers: g.workers,
                keep: cfg.app.releasesKept,
                gateTimeout: Math.max(60, g.gracefulTimeout + 30),
            },
            files,
            cfg.app.env !== undefined,
            [release, drain, ...args.after],
        );
        const appChange = fingerprint(args.fingerprintKey, [this.app.create.apply(c => c ?? ""), files.apply(renderBundle)]);
        this.admitted = new command.remote.Command(
            `${name}-lb-admit`,
            {
                connection: args.lb.target.connection,
                create: pulumi.interpolate`${args.lb.siteHost.apply(siteHost =>
                    admitCommand({ server, nodeHealthUrl: `http://${server}${cfg.app.healthPath}`, siteHost, healthPath: cfg.app.healthPath }),
                )} # change ${appChange}`,
                addPreviousOutputInEnv: false,
                triggers: lbSide.triggers,
            },
            { parent: this, dependsOn: [this.app, args.lb.nginx], deletedWith: args.lb.target.instance },
        );
        this.registerOutputs({ privateIp: ip, release: args.release.id, unit: appLayout(cfg.app.name).unit });
    }
}
