/**
 * What the cloud answers when a resource is created: its id and the outputs the
 * providers compute (an OpenStack UUID per region for an OVH network, a port's
 * fixed IPs, a floating IP's address, the keys of tls.PrivateKey...). The one
 * table the unit-test harness (fake keys, documentation addresses) and the local
 * engine (real keys, the local cloud's addresses) both answer from; each brings
 * its own way to make keys, certificates and public addresses.
 */

export interface PrivateKeyOutputs {
    privateKeyPem: string;
    privateKeyOpenssh: string;
    publicKeyPem: string;
    publicKeyOpenssh: string;
}

/** How a fake cloud makes what cannot be a constant. */
export interface CloudMakers {
    /** A floating IP's address. */
    publicAddress(name: string): string;
    privateKey(algorithm: string, ecdsaCurve: string | undefined, name: string): PrivateKeyOutputs;
    /** tls.SelfSignedCert's certPem. */
    selfSignedCert(inputs: Record<string, any>, name: string): string;
}

export interface Created {
    id: string;
    outputs: Record<string, any>;
}

type Answer = (name: string, inputs: Record<string, any>, make: CloudMakers) => Created;

/** Per resource type, what the provider returns on create (inputs echoed, plus its computed outputs). */
export const CREATED: Readonly<Record<string, Answer>> = {
    // OVH's pn-<service>_<vlan> id; OpenStack-side the network has a UUID per region.
    "ovh:CloudProject/networkPrivate:NetworkPrivate": (_name, i) => ({
        id: `pn-1000_${i.vlanId}`,
        outputs: { ...i, regionsOpenstackIds: Object.fromEntries((i.regions ?? []).map((r: string) => [r, `os-net-uuid-${r}`])) },
    }),
    "ovh:CloudProject/networkPrivateSubnetV2:NetworkPrivateSubnetV2": (name, i) => ({ id: `os-subnet-uuid-${name}`, outputs: i }),
    "openstack:networking/port:Port": (name, i) => ({
        id: `os-port-uuid-${name}`,
        outputs: { ...i, allFixedIps: (i.fixedIps ?? []).map((f: { ipAddress?: string }) => f.ipAddress) },
    }),
    "openstack:networking/secGroup:SecGroup": (name, i) => ({ id: `sg-uuid-${name}`, outputs: i }),
    // Nova's server group: its UUID, the inputs echoed (members are not tracked).
    "openstack:compute/serverGroup:ServerGroup": (name, i) => ({ id: `os-servergroup-uuid-${name}`, outputs: i }),
    "openstack:networking/floatingIp:FloatingIp": (name, i, make) => ({ id: `fip-${name}`, outputs: { ...i, address: make.publicAddress(name) } }),
    "tls:index/privateKey:PrivateKey": (name, i, make) => ({ id: name, outputs: { ...i, ...make.privateKey(i.algorithm, i.ecdsaCurve, name) } }),
    "tls:index/selfSignedCert:SelfSignedCert": (name, i, make) => ({ id: name, outputs: { ...i, certPem: make.selfSignedCert(i, name) } }),
};

/** The answer for any resource: the table's, else the inputs echoed under `<name>-id`. */
export function created(type: string, name: string, inputs: Record<string, any>, make: CloudMakers): Created {
    const answer = CREATED[type];
    return answer ? answer(name, inputs, make) : { id: `${name}-id`, outputs: inputs };
}
