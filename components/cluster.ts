import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as openstack from "@pulumi/openstack";
import * as tls from "@pulumi/tls";
import { StackConfig } from "../config/types";
import { names } from "../lib/conventions";
import { buildAppArchive } from "../provisioning/archive";
import { AppRelease } from "./appNode";
import { AppTier } from "./appTier";
import { Bastion, HostAccess, NodePlacement } from "./host";
import { LoadBalancer } from "./loadBalancer";
import { MonitoringNode } from "./monitoringNode";
import { PrivateNetwork, PrivateNetworkArgs } from "./network";
import { ClusterSecurityGroups, ClusterSecurityGroupsArgs } from "./securityGroups";

export interface ClusterArgs {
    config: StackConfig;
    /** Where release archives are built (kept out of git). */
    buildDir: string;
}

/** The whole stack: network, security groups, the load balancer and the app tier, in that order. */
export class Cluster extends pulumi.ComponentResource {
    readonly url: pulumi.Output<string>;
    readonly lbPublicIp: pulumi.Output<string>;
    readonly lbPrivateIp: string;
    readonly appPrivateIps: string[];
    /** The deployer key for SSH to every node (secret). */
    readonly sshPrivateKey: pulumi.Output<string>;
    readonly release: AppRelease;
    readonly lb: LoadBalancer;
    readonly apps: AppTier;
    /** Prometheus (monitoringNode on). */
    readonly monitoring?: MonitoringNode;

    constructor(name: string, args: ClusterArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pycluster:cluster:Cluster", name, {}, opts);
        const cfg = args.config;

        const access = this.deployerAccess(name, cfg);
        this.sshPrivateKey = access.privateKey;
        const network = new PrivateNetwork(`${name}-net`, networkArgs(cfg), { parent: this });
        const groups = new ClusterSecurityGroups(name, securityGroupArgs(cfg), { parent: this });

        const placement = (securityGroupId: pulumi.Input<string>): NodePlacement => ({
            config: cfg,
            networkId: network.openstackNetworkId,
            subnet: network.subnet,
            gateway: network.gateway,
            securityGroupId,
            access,
        });

        const appChecksKnown: ((check: pulumi.Resource) => void)[] = [];
        const appChecks = Array.from({ length: cfg.app.nodeCount }, () => new Promise<pulumi.Resource>(resolve => appChecksKnown.push(resolve)));
        this.lb = new LoadBalancer(
            names.loadBalancer(name),
            {
                ...placement(groups.lb.id),
                appChecks,
                cluster: name,
                staticFiles: cfg.lb.staticFiles ? buildAppArchive(`${cfg.app.name}-static`, cfg.lb.staticFiles.dir, args.buildDir) : undefined,
            },
            { parent: this },
        );

        this.release = appRelease(cfg, args.buildDir);

        // Private nodes are reached through the load balancer (a pair: the public address) once it relays SSH.
        const bastion: Bastion = this.lb.bastion;
        this.apps = new AppTier(
            names.appTier(name),
            {
                ...placement(groups.app.id),
                bastion,
                lb: { members: this.lb.members.map(m => ({ target: m.host.target, nginx: m.nginx })), siteHost: this.lb.siteHost },
                release: this.release,
                fingerprintKey: this.sshPrivateKey,
            },
            { parent: this },
        );
        this.apps.nodes.forEach((n, i) => appChecksKnown[i](n.check));

        if (cfg.monitoring.node && groups.monitoring) {
            this.monitoring = new MonitoringNode(
                names.monitoring(name),
                { ...placement(groups.monitoring.id), bastion },
                { parent: this },
            );
        }

        this.url = this.lb.url;
        this.lbPublicIp = this.lb.publicIp;
        this.lbPrivateIp = cfg.network.lbIp;
        this.appPrivateIps = this.apps.privateIps;
        this.registerOutputs({ url: this.url, lbPublicIp: this.lbPublicIp, appPrivateIps: this.appPrivateIps });
    }

    /** The deployer's key (the program's SSH identity on every node) and its OpenStack keypair. */
    private deployerAccess(name: string, cfg: StackConfig): HostAccess & { privateKey: pulumi.Output<string> } {
        const deployerKey = new tls.PrivateKey(`${name}-deployer-key`, { algorithm: "ED25519" }, { parent: this });
        const keyPair = new openstack.compute.Keypair(
            `${name}-keypair`,
            { name: `${name}-deployer`, publicKey: deployerKey.publicKeyOpenssh.apply(k => k.trim()), region: cfg.openstack.region },
            { parent: this },
        );
        return { user: cfg.ssh.user, privateKey: pulumi.secret(deployerKey.privateKeyOpenssh), keyPairName: keyPair.name };
    }
}

function networkArgs(cfg: StackConfig): PrivateNetworkArgs {
    const n = cfg.network;
    return {
        serviceName: cfg.ovh.serviceName,
        region: cfg.openstack.region,
        vlanId: n.vlanId,
        cidr: n.cidr,
        gatewayIp: n.gatewayIp,
        allocationPool: n.allocationPool,
        dnsNameservers: n.dnsNameservers,
        gatewayModel: n.gatewayModel,
    };
}

function securityGroupArgs(cfg: StackConfig): ClusterSecurityGroupsArgs {
    return {
        region: cfg.openstack.region,
        adminCidrs: cfg.ssh.adminCidrs,
        deployerCidrs: cfg.ssh.deployerCidrs,
        appPort: cfg.app.port,
        statusPort: cfg.lb.statusPort,
        privateCidr: cfg.network.cidr,
        lbPair: cfg.lb.count === 2,
        monitoring: { node: cfg.monitoring.node !== undefined, ports: cfg.monitoring.ports },
    };
}

/** The release the app nodes run: the app directory packed now, or an earlier release pinned by id (already on the nodes). */
function appRelease(cfg: StackConfig, buildDir: string): AppRelease {
    if (cfg.app.releasePin) return { id: cfg.app.releasePin };
    const archive = buildAppArchive(cfg.app.name, cfg.app.dir, buildDir);
    return { id: archive.id, archive };
}

/** Release archives go under the project, next to Pulumi.yaml. */
export const DEFAULT_BUILD_DIR = path.join(__dirname, "..", ".pycluster", "releases");
