import * as pulumi from "@pulumi/pulumi";
import * as openstack from "@pulumi/openstack";
import * as tls from "@pulumi/tls";
import * as command from "@pulumi/command";
import { StackConfig } from "../config/types";
import { BundleFile } from "../provisioning/render/bundle";
import { renderCloudInit } from "../provisioning/render/cloudInit";
import { bootstrap, Connection, ensurePackages, PushTarget, pushKernel } from "../provisioning/push";

/** How the program reaches a host: the deployer key and, for private hosts, the bastion. */
export interface HostAccess {
    user: string;
    /** The deployer's private key (secret). */
    privateKey: pulumi.Input<string>;
    keyPairName: pulumi.Input<string>;
}

/** Where a node of the stack goes: its stack, the private network, its security group, the deployer's access. */
export interface NodePlacement {
    config: StackConfig;
    networkId: pulumi.Input<string>;
    subnet: pulumi.Resource & { id: pulumi.Output<string> };
    /** The network's OVH gateway: nothing on the subnet reaches outside it before the gateway exists. */
    gateway: pulumi.Resource;
    securityGroupId: pulumi.Input<string>;
    access: HostAccess;
}

export interface Bastion {
    connection: pulumi.Output<Connection>;
    /** Ready to relay SSH (its own bootstrap done; for a pair, both LBs' and the public address's association). */
    ready: pulumi.Resource[];
}

/** What a load balancer of a pair gets beyond a single LB (components/loadBalancer.ts). */
export interface PairMember {
    /** The pair's one host key: the public address reaches either LB, so both must show the same key. */
    hostKey: tls.PrivateKey;
    /** The anti-affinity server group: the two never share a hypervisor. */
    serverGroupId: pulumi.Input<string>;
    /** The virtual address this host's port may answer for (Neutron drops it otherwise). */
    vip: string;
    /** keepalived's bootstrap configuration for cloud-init (components/loadBalancer.ts renders it). */
    keepalivedConf: string;
}

export interface HostArgs {
    region: string;
    flavor: string;
    image: string;
    networkId: pulumi.Input<string>;
    subnet: pulumi.Resource & { id: pulumi.Output<string> };
    /**
     * The instance boots only once it exists: on OVH a private instance has no route (and no DNS)
     * outside the subnet before the gateway, and cloud-init's first-boot package install runs
     * once per instance, so a node booted earlier stays broken until it is rebuilt.
     */
    gateway: pulumi.Resource;
    fixedIp: string;
    securityGroupIds: pulumi.Input<string>[];
    access: HostAccess;
    /** Installed by cloud-init: must not depend on settings that change (user data changes rebuild a VM). */
    packages: string[];
    /** Installed over SSH only (what some configurations add). */
    extraPackages?: string[];
    appUser?: string;
    kernelFiles: BundleFile[];
    /**
     * The only public address of a stack: a floating IP from Ext-Net (allocated and associated after
     * the gateway). `protect`: Pulumi refuses to delete or replace it (production stacks).
     * `portId`: associated with that port (a pair's VIP port) instead of this host's; the host is then
     * reached at its private address through the public one (whichever LB holds it relays).
     */
    publicIp?: { pool: string; protect: boolean; portId?: pulumi.Input<string> };
    /** Private hosts are reached through the load balancer. */
    bastion?: Bastion;
    /** A load balancer of a pair (lbCount 2). */
    pair?: PairMember;
}

/**
 * One VM: its port on the private network, a host key generated here (so
 * every connection pins it), the instance, and its base provisioning
 * (hostctl, cloud-init done, packages, kernel settings).
 */
export class Host extends pulumi.ComponentResource {
    /** The instance's name, also its hostname. */
    readonly name: string;
    readonly instance: openstack.compute.Instance;
    readonly port: openstack.networking.Port;
    readonly privateIp: string;
    readonly publicIp?: pulumi.Output<string>;
    /** A pair's first LB: the connection to the public address, whichever LB holds it (the bastion of every other host). */
    readonly publicConnection?: pulumi.Output<Connection>;
    /** The floating IP's association (after it, the public address can answer). */
    readonly publicAssociation?: pulumi.Resource;
    /** Secret: holds the deployer's private key. */
    readonly connection: pulumi.Output<Connection>;
    readonly hostPublicKey: pulumi.Output<string>;
    readonly target: PushTarget;
    /** Base provisioning done: everything else on this host waits for it. */
    readonly ready: command.remote.Command;
    /** hostctl is installed and cloud-init finished (enough to relay SSH as a bastion). */
    readonly booted: command.remote.Command;

    constructor(name: string, args: HostArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pycluster:host:Host", name, {}, opts);
        this.name = name;
        this.privateIp = args.fixedIp;

        const hostKey = args.pair?.hostKey ?? new tls.PrivateKey(`${name}-hostkey`, { algorithm: "ED25519" }, { parent: this });
        this.hostPublicKey = hostKey.publicKeyOpenssh.apply(k => k.trim());

        this.port = this.privatePort(name, args);
        this.instance = this.createInstance(name, args, hostKey);

        const waitFor: pulumi.Resource[] = [this.instance];
        if (args.publicIp) {
            const { address, association } = this.publicAddress(name, args);
            this.publicIp = address;
            this.publicAssociation = association;
            waitFor.push(association);
        }
        if (args.bastion) waitFor.push(...args.bastion.ready);
        const access = { user: args.access.user, privateKey: args.access.privateKey, hostKey: this.hostPublicKey };
        // A pair's LB is reached through the public address: the relaying LB shows the same (pair) host key.
        const jump = this.publicIp && args.publicIp?.portId ? (this.publicConnection = sshConnection({ ...access, host: this.publicIp, dialErrorLimit: -1 })) : args.bastion?.connection;

        const connect = (dialErrorLimit: number) =>
            sshConnection({ ...access, host: jump ? this.privateIp : (this.publicIp ?? this.privateIp), bastion: jump, dialErrorLimit });
        this.connection = connect(10);
        this.target = {
            name,
            connection: this.connection,
            // A new VM refuses SSH until it has booted: keep dialing (bounded by the step's timeout).
            bootConnection: connect(-1),
            instance: this.instance,
            parent: this,
            triggers: [this.instance.id],
        };

        this.booted = bootstrap(this.target, waitFor);
        const packages = ensurePackages(this.target, [...args.packages, ...(args.extraPackages ?? [])], [this.booted]);
        this.ready = pushKernel(this.target, args.kernelFiles, [packages]);

        this.registerOutputs({ privateIp: this.privateIp, publicIp: this.publicIp, hostPublicKey: this.hostPublicKey });
    }

    /** The host's port on the private network, with its fixed address and security groups. */
    private privatePort(name: string, args: HostArgs): openstack.networking.Port {
        return new openstack.networking.Port(
            `${name}-port`,
            {
                name: `${name}-port`,
                region: args.region,
                networkId: args.networkId,
                fixedIps: [{ subnetId: args.subnet.id, ipAddress: args.fixedIp }],
                securityGroupIds: args.securityGroupIds,
                // Explicit: on a network created without port security (older OVH networks) the
                // groups would otherwise be attached and silently not enforced.
                portSecurityEnabled: true,
                adminStateUp: true,
                // keepalived's address: without the pair entry Neutron's anti-spoofing drops its traffic.
                ...(args.pair ? { allowedAddressPairs: [{ ipAddress: args.pair.vip }] } : {}),
            },
            { parent: this, dependsOn: [args.subnet] },
        );
    }

    /** The VM on its port, booted with cloud-init (host key, packages) once the gateway exists. */
    private createInstance(name: string, args: HostArgs, hostKey: tls.PrivateKey): openstack.compute.Instance {
        const userData = cloudInitUserData(args, hostKey);
        return new openstack.compute.Instance(
            name,
            {
                name,
                region: args.region,
                flavorName: args.flavor,
                imageName: args.image,
                keyPair: args.access.keyPairName,
                networks: [{ port: this.port.id }],
                userData,
                ...(args.pair ? { schedulerHints: [{ group: args.pair.serverGroupId }] } : {}),
            },
            // Image names move to newer builds: never rebuild (and wipe) a node because of that.
            { parent: this, ignoreChanges: ["imageName"], dependsOn: [args.gateway] },
        );
    }

    /** The stack's only public address: a floating IP from Ext-Net on this host's port, both after the gateway. */
    private publicAddress(name: string, args: HostArgs): { address: pulumi.Output<string>; association: pulumi.Resource } {
        // DNS points at this address, and a new one means a DNS change and a new certificate check:
        // a renamed description must not touch it, and on production `protect` makes deleting or
        // replacing it (a region or pool change, `destroy`) an explicit decision
        // (`pulumi state unprotect <urn>` first). retainOnDelete would not keep the address: it only
        // leaves the old IP allocated (and billed) outside the stack while a replacement gets a new one.
        const fip = new openstack.networking.FloatingIp(
            `${name}-fip`,
            { pool: args.publicIp!.pool, region: args.region, description: `${name} public address` },
            { parent: this, dependsOn: [args.gateway], ignoreChanges: ["description"], protect: args.publicIp!.protect },
        );
        // Neutron refuses to associate a floating IP with a port whose subnet has no router yet.
        const association = new openstack.networking.FloatingIpAssociate(
            `${name}-fip-association`,
            { floatingIp: fip.address, portId: args.publicIp!.portId ?? this.port.id, region: args.region },
            { parent: this, dependsOn: [args.gateway] },
        );
        return { address: fip.address, association };
    }
}

/** cloud-init's user data: installs the host key, the packages and (for a pair's LB) keepalived's bootstrap. */
function cloudInitUserData(args: HostArgs, hostKey: tls.PrivateKey): pulumi.Output<string> {
    // Holds the host's private key: secret in state whatever the provider declares.
    return pulumi.secret(
        pulumi
            .all([hostKey.privateKeyOpenssh, hostKey.publicKeyOpenssh])
            .apply(([privateOpenssh, publicOpenssh]) =>
                renderCloudInit({
                    hostKey: { privateOpenssh, publicOpenssh },
                    packages: args.packages,
                    appUser: args.appUser,
                    keepalivedBootstrap: args.pair ? { conf: args.pair.keepalivedConf, ownAddress: args.fixedIp } : undefined,
                }),
            ),
    );
}

/**
 * How a step reaches a host: its address, pinned host key and the deployer's key (secret), through
 * the bastion's connection for private hosts. `dialErrorLimit` -1 keeps dialing (a booting VM).
 */
export function sshConnection(o: {
    host: pulumi.Input<string>;
    user: string;
    privateKey: pulumi.Input<string>;
    hostKey: pulumi.Input<string>;
    bastion?: pulumi.Output<Connection>;
    dialErrorLimit: number;
}): pulumi.Output<Connection> {
    return pulumi.secret(
        pulumi.all([o.host, o.privateKey, o.hostKey, o.bastion]).apply(([host, privateKey, hostKey, bastion]): Connection => ({
            host,
            port: 22,
            user: o.user,
            privateKey,
            hostKey,
            dialErrorLimit: o.dialErrorLimit,
            perDialTimeout: 15,
            ...(bastion
                ? {
                      proxy: {
                          host: bastion.host,
                          port: bastion.port,
                          user: bastion.user,
                          privateKey: bastion.privateKey,
                          hostKey: bastion.hostKey,
                          dialErrorLimit: o.dialErrorLimit,
                          perDialTimeout: 15,
                      },
                  }
                : {}),
        })),
    );
}
