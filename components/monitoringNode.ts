import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { kernelFiles } from "../provisioning/kernelFiles";
import { MONITORING_PACKAGES, monitoringNodeMonitoring, monitoringPorts } from "../provisioning/monitoringFiles";
import { pushMonitoring } from "../provisioning/push";
import { Bastion, Host, NodePlacement } from "./host";

export interface MonitoringNodeArgs extends NodePlacement {
    bastion: Bastion;
}

/**
 * The optional monitoring node (monitoringNode): private only, reached through
 * the load balancer. Prometheus scrapes every exporter of the stack and
 * evaluates the alert rules; its configuration is validated with promtool on
 * the node before it replaces the running one.
 */
export class MonitoringNode extends pulumi.ComponentResource {
    readonly host: Host;
    readonly privateIp: string;
    /** Prometheus, configured and answering /-/ready. */
    readonly prometheus: command.remote.Command;
    readonly prometheusUrl: string;

    constructor(name: string, args: MonitoringNodeArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pycluster:monitoring:MonitoringNode", name, {}, opts);
        const cfg = args.config;
        const node = cfg.monitoring.node;
        if (!node) throw new Error("MonitoringNode needs monitoringNode on");
        this.privateIp = node.ip;
        this.host = new Host(
            name,
            {
                region: cfg.openstack.region,
                flavor: node.flavor,
                image: cfg.platform.image,
                networkId: args.networkId,
                subnet: args.subnet,
                gateway: args.gateway,
                fixedIp: node.ip,
                securityGroupIds: [args.securityGroupId],
                access: args.access,
                // Over SSH, like every node's monitoring packages: the user data never has to change for them.
                packages: [],
                extraPackages: MONITORING_PACKAGES.monitoring,
                kernelFiles: kernelFiles(cfg, monitoringPorts(cfg, "monitoring"), ["prometheus.service"]),
                bastion: args.bastion,
            },
            { parent: this },
        );
        this.prometheus = pushMonitoring(this.host.target, monitoringNodeMonitoring(cfg), [this.host.ready]);
        this.prometheusUrl = `http://${node.ip}:${cfg.monitoring.ports.prometheus}/`;
        this.registerOutputs({ privateIp: this.privateIp, prometheusUrl: this.prometheusUrl });
    }
}
