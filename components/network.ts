import * as pulumi from "@pulumi/pulumi";
import * as ovh from "@ovhcloud/pulumi-ovh";

export interface PrivateNetworkArgs {
    serviceName: string;
    region: string;
    vlanId: number;
    cidr: string;
    gatewayIp: string;
    allocationPool: { start: string; end: string };
    dnsNameservers: string[];
    gatewayModel: string;
}

/**
 * The vRack private network of a stack: network, subnet and the OVH gateway
 * that gives private-only nodes outbound access (package mirrors).
 */
export class PrivateNetwork extends pulumi.ComponentResource {
    /** OpenStack UUID of the network in the region: what subnets, ports and the gateway need (not OVH's pn-… id). */
    readonly openstackNetworkId: pulumi.Output<string>;
    readonly subnet: ovh.cloudproject.NetworkPrivateSubnetV2;
    readonly gateway: ovh.cloudproject.Gateway;

    constructor(name: string, args: PrivateNetworkArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pycluster:network:PrivateNetwork", name, {}, opts);
        const network = new ovh.cloudproject.NetworkPrivate(
            name,
            { serviceName: args.serviceName, name, regions: [args.region], vlanId: args.vlanId },
            { parent: this },
        );
        this.openstackNetworkId = network.regionsOpenstackIds.apply(ids => {
            const id = ids?.[args.region];
            if (!id) throw new Error(`private network ${name} has no OpenStack id in region ${args.region} (got: ${JSON.stringify(ids)})`);
            return id;
        });
        this.subnet = new ovh.cloudproject.NetworkPrivateSubnetV2(
            `${name}-subnet`,
            {
                serviceName: args.serviceName,
                networkId: this.openstackNetworkId,
                region: args.region,
                name: `${name}-subnet`,
                cidr: args.cidr,
                dhcp: true,
                enableGatewayIp: true,
                gatewayIp: args.gatewayIp,
                dnsNameservers: args.dnsNameservers,
                allocationPools: [args.allocationPool],
            },
            { parent: this },
        );
        this.gateway = new ovh.cloudproject.Gateway(
            `${name}-gateway`,
            {
                serviceName: args.serviceName,
                name: `${name}-gateway`,
                model: args.gatewayModel,
                region: args.region,
                networkId: this.openstackNetworkId,
                subnetId: this.subnet.id,
            },
            { parent: this },
        );
        this.registerOutputs({ openstackNetworkId: this.openstackNetworkId, subnetId: this.subnet.id, gatewayId: this.gateway.id });
    }
}
