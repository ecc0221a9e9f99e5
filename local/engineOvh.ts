/**
 * OVH's resources on the local engine: the private network's gateway and the DNS zone's records
 * (the subnet, the network and the rest are plain records, see engine.ts).
 */
import type { Registration } from "./program";
import { checkZoneRecord, recordName } from "./ovhDomain";
import { DEFAULT_GATEWAY_CREATE_MS, EngineContext, ResourceRecord, sha, stripSecrets } from "./engineState";

/** The longest an instance created alongside the gateway may take to finish its first boot. */
const FIRST_BOOT_LIMIT_MS = 240_000;

/**
 * The private network's OVH gateway: created after a while (OVH: minutes), and only then does
 * the subnet reach the outside. Removed, it cuts the subnet off again.
 */
export async function gateway(e: EngineContext, key: string, r: Registration, inputs: Record<string, any>, prev: ResourceRecord | undefined, started: number) {
    const hash = sha(inputs);
    if (prev && prev.inputsHash === hash && (e.o.preview || e.cloud?.gatewayOpen !== false)) {
        e.step(r.type, r.name, "same", started);
        return { id: prev.id, state: inputs };
    }
    if (!e.o.preview) {
        // An OVH gateway takes minutes, an instance about one: whatever instance is being created
        // meanwhile runs its first boot (cloud-init's one package install included) without it.
        await new Promise(res => setTimeout(res, e.o.gatewayCreateMs ?? DEFAULT_GATEWAY_CREATE_MS));
        const cloud = e.cloud;
        const deadline = Date.now() + FIRST_BOOT_LIMIT_MS;
        while (cloud && Date.now() < deadline && [...e.launched].some(h => cloud.hosts().some(x => x.name === h) && !cloud.cloudInitFinished(h))) {
            await new Promise(res => setTimeout(res, 500));
        }
        await e.cloud?.openGateway();
        e.record(key, { type: r.type, name: r.name, inputsHash: hash, id: prev?.id ?? `${r.name}-id`, outputs: stripSecrets(inputs) });
    }
    e.step(r.type, r.name, prev ? "update" : "create", started);
    return { id: prev?.id ?? `${r.name}-id`, state: inputs };
}

/**
 * A record in a zone of the local internet's DNS (local/ovhDomain.ts says what the API accepts).
 * A changed zone, name or type is a new record (the provider replaces it); a changed target or
 * TTL updates it in place.
 */
export async function zoneRecord(e: EngineContext, key: string, r: Registration, inputs: Record<string, any>, prev: ResourceRecord | undefined, started: number) {
    const hash = sha([inputs.zone, inputs.subdomain ?? "", inputs.fieldtype, inputs.target, inputs.ttl]);
    const name = recordName(inputs.zone, inputs.subdomain);
    const present = e.cloud?.dnsRecords().some(d => d.id === prev?.id && d.name === name && d.value === inputs.target);
    if (prev && prev.inputsHash === hash && (present || e.o.preview)) {
        e.step(r.type, r.name, "same", started);
        return { id: prev.id, state: inputs };
    }
    const replace = prev !== undefined && prev.outputs.name !== name;
    const id = prev && !replace ? prev.id : String(100_000 + ++e.state.seq);
    if (!e.o.preview) {
        const cloud = e.requireCloud();
        checkZoneRecord(inputs, cloud.internet?.zones ?? []);
        if (replace) cloud.deleteDnsRecord(prev.id);
        cloud.putDnsRecord({ id, name, type: inputs.fieldtype, value: inputs.target, ttl: inputs.ttl || 3600 });
        e.record(key, { type: r.type, name: r.name, inputsHash: hash, id, outputs: { ...stripSecrets(inputs), name } });
    }
    e.step(r.type, r.name, !prev ? "create" : replace ? "replace" : "update", started);
    return { id, state: inputs };
}
