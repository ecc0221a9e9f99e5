/**
 * OpenStack's resources on the local engine: ports and security group rules (checked by the
 * Neutron stand-in, local/neutron.ts), instances booted as local hosts, and floating IPs attached
 * as public addresses.
 */
import * as crypto from "crypto";
import type { Registration } from "./program";
import { NeutronError } from "./neutron";
import { EngineContext, GATEWAY, ResourceRecord, sha, StepAction, SUBNET, withoutIgnored } from "./engineState";

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
    // What rebuilds an instance on OpenStack; ignoreChanges: ["imageName"] keeps the image name out.
    const hash = sha([inputs.userData, inputs.keyPair, inputs.networks, inputs.name]);
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
        await cloud.attachPublicIp(hostName, fip.ip);
        e.state.resources[fip.key].host = hostName;
        e.save();
    }
    e.step(r.type, r.name, action, started);
    return { id, state: { ...inputs, accessIpV4: port.host } };
}

/** A floating IP belongs to a port: attached to its host now if the instance exists, else when it boots. */
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
    const attached = !instance || e.cloud?.hosts().find(h => h.name === instance.host)?.publicIp === inputs.floatingIp;
    if (prev && prev.inputsHash === hash && (attached || e.o.preview)) {
        e.step(r.type, r.name, "same", started);
        return { id: prev.id, state: inputs };
    }
    if (!e.o.preview) {
        e.record(key, { type: r.type, name: r.name, inputsHash: hash, id: r.name, outputs: { portId: inputs.portId, floatingIp: inputs.floatingIp }, host: instance?.host });
        if (instance?.host) await e.requireCloud().attachPublicIp(instance.host, inputs.floatingIp);
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
