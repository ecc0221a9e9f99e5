/**
 * OpenStack's resources on the local engine: ports and security group rules (checked by the
 * Neutron stand-in, local/neutron.ts), instances booted as local hosts, and floating IPs attached
 * as public addresses.
 */
import * as crypto from "crypto";
import type { Registration } from "./program";
import { NeutronError } from "./neutron";
import { EngineContext, GATEWAY, ResourceRecord, SERVER_GROUP, sha, StepAction, SUBNET, withoutIgnored } from "./engineState";

/** A port: checked by Neutron, recorded with its fixed address, and its host's firewall brought up to date. */
export async function applyPort(e: EngineContext, key: string, r: Registration, inputs: Record<string, any>, prev: ResourceRecord | undefined, started: number) {
    if (!e.o.preview) e.neutron.check(r.type, r.name, inputs);
    const ip = inputs.fixedIps?.[0]?.ipAddress;
    if (!ip) throw new Error(`local cloud: port ${r.name} needs a fixed address (the program always sets one)`);
    const res = e.plain(key, r, inputs, prev, started);
    e.state.resources[key].host = ip;
    await e.enforceSecurityGroups();
    return res;
}

/** A security group rule: checked by Neutron (knowing the rules that exist) and enforced on the hosts. */
export async function applyRule(e: EngineContext, key: string, r: Registration, inputs: Record<string, any>, prev: ResourceRecord | undefined, started: number) {
    // Every input of a rule forces a replacement (Pulumi creates the new one first).
    const replacing = prev !== undefined && prev.inputsHash !== sha(withoutIgnored(inputs, r.options.ignoreChanges));
    if (!e.o.preview) e.neutron.check(r.type, r.name, inputs, { replacing, deleteBeforeReplace: r.options.deleteBeforeReplace });
    const res = e.plain(key, r, inputs, prev, started);
    await e.enforceSecurityGroups();
    return res;
}

/** An instance: a local host booted with its port's address, its keypair and its user data; a new flavor reboots it. */
export async function instance(e: EngineContext, key: string, r: Registration, inputs: Record<string, any>, prev: ResourceRecord | undefined, started: number) {
    const portId = inputs.networks?.[0]?.port;
    const port = e.find(p => p.type === "openstack:networking/port:Port" && p.id === portId);
    if (!port?.host) throw new Error(`local cloud: instance ${r.name} is not attached to a known port (${portId})`);
    if (!e.o.preview) checkSchedulerHints(e, r.name, inputs);
    // What rebuilds an instance on OpenStack; ignoreChanges: ["imageName"] keeps the image name out.
    // schedulerHints too (the provider forces a new instance), counted only when set so that
    // instances recorded before they were modelled stay the same.
    const rebuilt = [inputs.userData, inputs.keyPair, inputs.networks, inputs.name];
    const hash = sha(inputs.schedulerHints?.length ? [...rebuilt, inputs.schedulerHints] : rebuilt);
    const hostName: string = inputs.name;
    const running = e.cloud?.hosts().some(h => h.name === hostName && h.running);
    if (prev && prev.inputsHash === hash && (running || e.o.preview)) {
        if (prev.outputs.flavorName !== undefined && prev.outputs.flavorName !== inputs.flavorName) {
            // A new flavor is a resize: the same disk, one reboot.
            if (!e.o.preview) {
                await e.requireCloud().rebootHost(hostName);
                e.record(key, { ...prev, outputs: { ...prev.outputs, flavorName: inputs.flavorName } });
                await e.enforceSecurityGroups();
            }
            e.step(r.type, r.name, "update", started);
            return { id: prev.id, state: { ...inputs, accessIpV4: port.host } };
        }
        e.step(r.type, r.name, "same", started);
        return { id: prev.id, state: { ...inputs, accessIpV4: port.host } };
    }
    const action: StepAction = !prev ? "create" : prev.inputsHash !== hash ? "replace" : "update";
    if (e.o.preview) {
        e.step(r.type, r.name, action, started);
        return { id: prev?.id ?? `${r.name}-new`, state: { ...inputs, accessIpV4: port.host } };
    }
    const cloud = e.requireCloud();
    if (prev && cloud.hosts().some(h => h.name === hostName)) await cloud.removeHost(hostName);
    const keypair = e.find(k => k.type === "openstack:compute/keypair:Keypair" && k.outputs.name === inputs.keyPair);
    const publicKeys = keypair ? [String(keypair.outputs.publicKey).trim()] : [];
    const id = `${r.name}-${crypto.randomUUID().slice(0, 8)}`;
    e.launched.add(hostName);
    // DHCP hands the subnet's resolvers to the instance.
    const subnet = e.find(s => s.type === SUBNET);
    await cloud.bootHost({
        name: hostName,
        privateIp: port.host,
        dnsNameservers: subnet?.outputs.dnsNameservers,
        userData: inputs.userData,
        vendorData: e.o.vendorData?.(hostName),
        // NoCloud hands these to the default user, as OpenStack's keypair does.
        metaData: `instance-id: ${id}\nlocal-hostname: ${hostName}\npublic-keys:\n${publicKeys.map(k => `  - ${k}`).join("\n")}\n`,
    });
    e.record(key, { type: r.type, name: r.name, inputsHash: hash, id, outputs: { accessIpV4: port.host, flavorName: inputs.flavorName }, host: hostName });
    await e.enforceSecurityGroups();
    const fip = floatingIpOfPort(e, portId);
    if (fip) {
        // associated before the instance existed: the router NATed it meanwhile (see associate)
        await cloud.releaseFloatingNat(fip.ip);
        delete e.state.resources[fip.key].outputs.nat;
        await cloud.attachPublicIp(hostName, fip.ip);
        e.state.resources[fip.key].host = hostName;
        e.save();
    }
    e.step(r.type, r.name, action, started);
    return { id, state: { ...inputs, accessIpV4: port.host } };
}

/**
 * A floating IP belongs to a port. On an instance's port it becomes the host's eth1 (now, or when
 * the instance boots): the local model, which differs from OpenStack (local/routerNat.ts). On a
 * port no instance uses (a VIP port) the router NATs it 1:1 to the port's fixed address, as
 * OpenStack does for every floating IP.
 */
export async function associate(e: EngineContext, key: string, r: Registration, inputs: Record<string, any>, prev: ResourceRecord | undefined, started: number) {
    // Neutron: a floating IP reaches a port only through a router on its subnet (OVH: the gateway).
    if (!e.o.preview && !Object.values(e.state.resources).some(g => g.type === GATEWAY) ) {
        throw new NeutronError(
            404,
            `External network Ext-Net is not reachable from the subnet of port ${inputs.portId}. Therefore, cannot associate Port ${inputs.portId} with a Floating IP (${r.name}: create the network's gateway first)`,
        );
    }
    const hash = sha([inputs.floatingIp, inputs.portId]);
    const instance = instanceOnPort(e, inputs.portId);
    const portIp: string | undefined = e.find(p => p.type === "openstack:networking/port:Port" && p.id === inputs.portId)?.host;
    const natted = () => e.cloud?.floatingNats().some(n => n.publicIp === inputs.floatingIp && n.privateIp === portIp);
    const attached = instance ? e.cloud?.hosts().find(h => h.name === instance.host)?.publicIp === inputs.floatingIp : natted();
    if (prev && prev.inputsHash === hash && (attached || e.o.preview)) {
        e.step(r.type, r.name, "same", started);
        return { id: prev.id, state: inputs };
    }
    if (!e.o.preview) {
        const cloud = e.requireCloud();
        // a moved association: the address leaves where it was first
        const movedFrom = prev?.host && (prev.host !== instance?.host || prev.outputs.floatingIp !== inputs.floatingIp) ? prev.host : undefined;
        if (movedFrom && cloud.hosts().some(h => h.name === movedFrom && h.publicIp === prev?.outputs.floatingIp)) await cloud.detachPublicIp(movedFrom);
        if (prev?.outputs.nat) await cloud.releaseFloatingNat(prev.outputs.floatingIp);
        const outputs: Record<string, any> = { portId: inputs.portId, floatingIp: inputs.floatingIp };
        if (instance?.host) {
            await cloud.attachPublicIp(instance.host, inputs.floatingIp);
        } else if (portIp) {
            const { conntrackMax } = await cloud.natFloatingIp(inputs.floatingIp, portIp);
            if (conntrackMax.after !== conntrackMax.before) e.o.log(`raised net.netfilter.nf_conntrack_max from ${conntrackMax.before} to ${conntrackMax.after} (the router's NAT tracks every connection)`);
            outputs.nat = portIp;
        }
        e.record(key, { type: r.type, name: r.name, inputsHash: hash, id: r.name, outputs, host: instance?.host });
    }
    e.step(r.type, r.name, prev ? "update" : "create", started);
    return { id: r.name, state: inputs };
}

export function instanceOnPort(e: EngineContext, portId: string): ResourceRecord | undefined {
    const port = e.find(p => p.type === "openstack:networking/port:Port" && p.id === portId);
    return port && e.find(i => i.type === "openstack:compute/instance:Instance" && i.outputs.accessIpV4 === port.host);
}

/** The floating IP associated with a port, if any. */
export function floatingIpOfPort(e: EngineContext, portId: string): { key: string; ip: string } | undefined {
    const entry = Object.entries(e.state.resources).find(
        ([, a]) => a.type === "openstack:networking/floatingIpAssociate:FloatingIpAssociate" && a.outputs.portId === portId,
    );
    return entry && { key: entry[0], ip: entry[1].outputs.floatingIp };
}

/** Nova's server group policies (compute API, os-server-groups). */
export const SERVER_GROUP_POLICIES = ["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"] as const;

/**
 * A server group (Nova): recorded, with its policy checked as Nova checks it. On this machine
 * every host shares one kernel: (anti-)affinity has no physical meaning here, it is only kept
 * so that instances naming the group are checked as Nova would.
 */
export function serverGroup(e: EngineContext, key: string, r: Registration, inputs: Record<string, any>, prev: ResourceRecord | undefined, started: number) {
    const policies: unknown[] = inputs.policies ?? (inputs.policy !== undefined ? [inputs.policy] : []);
    if (policies.length !== 1 || !SERVER_GROUP_POLICIES.includes(policies[0] as (typeof SERVER_GROUP_POLICIES)[number])) {
        throw new Error(
            `Nova 400: Invalid input for field/attribute policies of server group ${r.name}: ${JSON.stringify(policies)} (exactly one of ${SERVER_GROUP_POLICIES.join(", ")})`,
        );
    }
    return e.plain(key, r, inputs, prev, started);
}

/** Nova refuses an instance whose scheduler hint names a server group that does not exist. */
function checkSchedulerHints(e: EngineContext, name: string, inputs: Record<string, any>): void {
    for (const hint of inputs.schedulerHints ?? []) {
        if (hint.group === undefined) continue;
        if (!e.find(g => g.type === SERVER_GROUP && g.id === hint.group)) {
            throw new Error(`Nova 404: Instance group ${hint.group} could not be found. (instance ${name})`);
        }
    }
}
