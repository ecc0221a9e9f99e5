import * as pulumi from "@pulumi/pulumi";
import * as openstack from "@pulumi/openstack";

export interface LbPairArgs {
    region: string;
    networkId: pulumi.Input<string>;
    subnet: pulumi.Resource & { id: pulumi.Output<string> };
    /** The LB group: the VIP port takes the same rules as the LBs (web from anywhere, SSH from admins). */
    securityGroupId: pulumi.Input<string>;
    /** The pair's shared private address (config/network.ts). */
    vip: string;
}

/**
 * What the two load balancers of a pair share (the standard OpenStack pattern for a virtual IP):
 * an anti-affinity server group, so they never run on the same hypervisor, and a port that only
 * reserves the virtual address on the subnet. No instance is ever attached to that port; the
 * floating IP is associated with it, and keepalived on whichever LB holds the address answers for it.
 */
export class LbPair extends pulumi.ComponentResource {
    readonly serverGroup: openstack.compute.ServerGroup;
    readonly vipPort: openstack.networking.Port;
    readonly vip: string;

    constructor(name: string, args: LbPairArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pycluster:lb:LbPair", name, {}, opts);
        this.vip = args.vip;
        this.serverGroup = new openstack.compute.ServerGroup(
            `${name}-anti-affinity`,
            { name: `${name}-anti-affinity`, policies: ["anti-affinity"], region: args.region },
            { parent: this },
        );
        this.vipPort = new openstack.networking.Port(
            `${name}-vip-port`,
            {
                name: `${name}-vip-port`,
                region: args.region,
                networkId: args.networkId,
                fixedIps: [{ subnetId: args.subnet.id, ipAddress: args.vip }],
                securityGroupIds: [args.securityGroupId],
                portSecurityEnabled: true,
                adminStateUp: true,
            },
            { parent: this, dependsOn: [args.subnet] },
        );
        this.registerOutputs({ vip: this.vip, serverGroupId: this.serverGroup.id, vipPortId: this.vipPort.id });
    }
}
