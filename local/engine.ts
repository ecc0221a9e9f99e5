/**
 * A small deployment engine behind Pulumi's mocks, so the real program
 * stands up on local hosts: instances boot hosts, floating IPs attach public
 * addresses, tls keys are real keys, and remote commands run over real SSH
 * with their own connection (through the bastion for app nodes).
 *
 * Like the command provider, a command runs `create` when new, `update` (or
 * `create`) when its inputs changed, is replaced when its triggers change,
 * and runs nothing when they are unchanged. A state file per stack records
 * hashes of each resource's inputs (never the secret values themselves);
 * keys live in a separate root-only file, as Pulumi keeps secrets encrypted.
 * Resources the program no longer declares are deleted after the run.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import type { LocalCloud } from "./cloud";
import { runInNetns } from "./exec";
import { renderHostFirewall, SecurityRule } from "./firewall";
import { CloudMakers, created } from "./fakeCloud";
import { generatePrivateKey, selfSignedCert, SelfSignedCertInputs } from "./keys";
import { FakeNeutron, NeutronError } from "./neutron";
import { checkZoneRecord, recordName } from "./ovhDomain";
import { ProgramMocks, Registration, unwrapSecrets } from "./program";
import { copyToRemote, runCommand, SshConnection } from "./ssh";

export type StepAction = "create" | "update" | "replace" | "delete" | "same";

export interface StepRecord {
    type: string;
    name: string;
    action: StepAction;
    /** When the step started (epoch ms) and how long it took. */
    startedAt: number;
    ms: number;
    /** For commands: what ran on the host. */
    output?: string;
}

interface ResourceRecord {
    type: string;
    name: string;
    urn?: string;
    order: number;
    inputsHash: string;
    triggersHash?: string;
    id: string;
    /** Non-secret outputs, returned again when nothing changed. */
    outputs: Record<string, any>;
    deletedWith?: string;
    /** Instances: the local host. Ports: their address. */
    host?: string;
    deleteScript?: string;
}

interface EngineState {
    version: 1;
    stack: string;
    seq: number;
    resources: Record<string, ResourceRecord>;
}

const COMMAND = "command:remote:Command";
const COPY = "command:remote:CopyToRemote";

export interface EngineOptions {
    stack: string;
    /** NoCloud vendor-data for an instance (fault injection: e.g. a slow cloud-init). */
    vendorData?: (instanceName: string) => string | undefined;
    /** Where the state and key files live (the cloud's state directory). */
    stateDir: string;
    preview: boolean;
    log: (line: string) => void;
    /** How long creating the private network's gateway takes at least (OVH: "may take several minutes"). */
    gatewayCreateMs?: number;
}

export const DEFAULT_GATEWAY_CREATE_MS = 5000;
/** The longest an instance created alongside the gateway may take to finish its first boot. */
const FIRST_BOOT_LIMIT_MS = 240_000;
const GATEWAY = "ovh:CloudProject/gateway:Gateway";
const RULE = "openstack:networking/secGroupRule:SecGroupRule";
const SUBNET = "ovh:CloudProject/networkPrivateSubnetV2:NetworkPrivateSubnetV2";
const ZONE_RECORD = "ovh:Domain/zoneRecord:ZoneRecord";

const sha = (value: unknown) => crypto.createHash("sha256").update(JSON.stringify(value ?? null)).digest("hex");

export class LocalEngine {
    readonly steps: StepRecord[] = [];
    readonly failures: Error[] = [];
    private readonly seen = new Set<string>();
    private state: EngineState;
    private keys: Record<string, Record<string, string>>;
    private readonly stateFile: string;
    private readonly keysFile: string;
    /** Firewall updates, one after another. */
    private firewall: Promise<void> = Promise.resolve();
    /** What the networking API accepts (local/neutron.ts), knowing the rules that exist. */
    private readonly neutron = new FakeNeutron();
    /** Hosts whose instance creation started in this run: a gateway created alongside finishes after their first boot. */
    private readonly launched = new Set<string>();

    constructor(
        private readonly cloud: LocalCloud | undefined,
        private readonly o: EngineOptions,
    ) {
        this.stateFile = path.join(o.stateDir, `engine-${o.stack}.json`);
        this.keysFile = path.join(o.stateDir, `keys-${o.stack}.json`);
        this.state = readJson(this.stateFile) ?? { version: 1, stack: o.stack, seq: 0, resources: {} };
        this.keys = readJson(this.keysFile) ?? {};
        for (const rule of Object.values(this.state.resources).filter(r => r.type === RULE)) this.neutron.check(RULE, rule.name, rule.outputs);
    }

    /** Commands and uploads that ran (created, updated, replaced or deleted) in this engine's runs. */
    get remoteExecutions(): StepRecord[] {
        return this.steps.filter(s => (s.type === COMMAND || s.type === COPY) && s.action !== "same");
    }

    mocks(): ProgramMocks {
        return { newResource: r => this.register(r) };
    }

    /** Called with each registration's URN, so deletedWith (a URN) can be followed later. */
    noteUrn(type: string, name: string, urn: string | undefined): void {
        const rec = this.state.resources[`${type}::${name}`];
        if (rec && urn) rec.urn = urn;
    }

    /** Registrations being applied right now, and when the last one started or ended. */
    private inflight = 0;
    private lastActivity = Date.now();

    private async register(r: Registration): Promise<{ id: string; state: Record<string, any> }> {
        const key = `${r.type}::${r.name}`;
        this.seen.add(key);
        const inputs = unwrapSecrets(r.rawInputs);
        this.inflight++;
        this.lastActivity = Date.now();
        try {
            return await this.apply(key, r, inputs);
        } catch (e) {
            this.failures.push(e instanceof Error ? e : new Error(String(e)));
            // Parked, not rejected: what depends on this resource never runs (as in a real update),
            // and the SDK has no rejection to report from every dependent.
            return new Promise(() => undefined);
        } finally {
            this.inflight--;
            this.lastActivity = Date.now();
        }
    }

    /**
     * Resolves once the run has settled after a failure: nothing in flight and nothing new for a
     * second (resources that wait on a failed one never start). Never resolves when nothing failed.
     */
    async settledAfterFailure(stop: AbortSignal): Promise<void> {
        while (!stop.aborted) {
            if (this.failures.length > 0 && this.inflight === 0 && Date.now() - this.lastActivity > 1000) return;
            await new Promise(r => setTimeout(r, 100));
        }
    }

    private record(key: string, rec: Omit<ResourceRecord, "order">): void {
        const prev = this.state.resources[key];
        this.state.resources[key] = { ...rec, order: prev?.order ?? ++this.state.seq, urn: prev?.urn };
        this.save();
    }

    private save(): void {
        if (this.o.preview) return;
        writeJson(this.stateFile, this.state, 0o600);
        writeJson(this.keysFile, this.keys, 0o600);
    }

    private step(type: string, name: string, action: StepAction, started: number, output?: string): void {
        const s = { type, name, action, startedAt: started, ms: Date.now() - started, output };
        this.steps.push(s);
        if (action !== "same") this.o.log(`${this.o.preview ? "would " : ""}${action} ${name} (${type.split(":").pop()})${this.o.preview ? "" : ` ${s.ms} ms`}`);
    }

    private find(pred: (r: ResourceRecord) => boolean): ResourceRecord | undefined {
        return Object.values(this.state.resources).find(pred);
    }

    private async apply(key: string, r: Registration, inputs: Record<string, any>): Promise<{ id: string; state: Record<string, any> }> {
        const prev = this.state.resources[key];
        const started = Date.now();
        const deletedWith = r.options.deletedWith || undefined;
        switch (r.type) {
            case COMMAND:
                return this.command(key, r, inputs, prev, started, deletedWith);
            case COPY:
                return this.copy(key, r, inputs, prev, started, deletedWith);

            case "tls:index/privateKey:PrivateKey":
            case "tls:index/selfSignedCert:SelfSignedCert": {
                // Real keys and certificates, kept in the root-only key file (Pulumi keeps them encrypted in its state).
                const hash = sha(r.type === "tls:index/privateKey:PrivateKey" ? [inputs.algorithm, inputs.ecdsaCurve] : inputs);
                const made = this.keys[key] && prev?.inputsHash === hash ? undefined : created(r.type, r.name, inputs, this.makers(prev));
                if (made) {
                    const { algorithm: _a, ecdsaCurve: _c, ...computed } = made.outputs;
                    this.keys[key] = r.type === "tls:index/privateKey:PrivateKey" ? computed : { certPem: made.outputs.certPem };
                    this.record(key, { type: r.type, name: r.name, inputsHash: hash, id: made.id, outputs: {} });
                    this.step(r.type, r.name, prev ? "replace" : "create", started);
                }
                return { id: r.name, state: { ...inputs, ...this.keys[key] } };
            }
            case GATEWAY:
                return this.gateway(key, r, inputs, prev, started);
            case SUBNET:
                if (!this.o.preview) this.neutron.check(r.type, r.name, inputs);
                return this.plain(key, r, inputs, prev, started);
            case "openstack:networking/port:Port": {
                if (!this.o.preview) this.neutron.check(r.type, r.name, inputs);
                const ip = inputs.fixedIps?.[0]?.ipAddress;
                if (!ip) throw new Error(`local cloud: port ${r.name} needs a fixed address (the program always sets one)`);
                const res = this.plain(key, r, inputs, prev, started);
                this.state.resources[key].host = ip;
                await this.enforceSecurityGroups();
                return res;
            }
            case RULE: {
                // Every input of a rule forces a replacement (Pulumi creates the new one first).
                const replacing = prev !== undefined && prev.inputsHash !== sha(withoutIgnored(inputs, r.options.ignoreChanges));
                if (!this.o.preview) this.neutron.check(r.type, r.name, inputs, { replacing, deleteBeforeReplace: r.options.deleteBeforeReplace });
                const res = this.plain(key, r, inputs, prev, started);
                await this.enforceSecurityGroups();
                return res;
            }
            case "openstack:compute/instance:Instance":
                return this.instance(key, r, inputs, prev, started);
            case "openstack:networking/floatingIpAssociate:FloatingIpAssociate":
                return this.associate(key, r, inputs, prev, started);
            case ZONE_RECORD:
                return this.zoneRecord(key, r, inputs, prev, started);
            default:
                // Providers, components, keypairs, networks, floating IPs, security groups: bookkeeping
                // only, with the ids and outputs of the shared table (local/fakeCloud.ts).
                return this.plain(key, r, inputs, prev, started);
        }
    }

    /** How this cloud makes keys, certificates and public addresses; a floating IP keeps the address it has. */
    private makers(prev: ResourceRecord | undefined): CloudMakers {
        return {
            publicAddress: () => prev?.outputs.address ?? (this.cloud && !this.o.preview ? this.cloud.allocatePublicIp() : "198.51.100.250"),
            privateKey: (algorithm, curve) => generatePrivateKey(algorithm, curve),
            selfSignedCert: i => (this.o.preview ? "" : selfSignedCert(i as SelfSignedCertInputs)),
        };
    }

    /** A resource the cloud only keeps a record of: created or updated when its inputs change. */
    private plain(key: string, r: Registration, inputs: Record<string, any>, prev: ResourceRecord | undefined, started: number) {
        const hash = sha(withoutIgnored(inputs, r.options.ignoreChanges));
        if (prev && prev.inputsHash === hash) return { id: prev.id, state: { ...inputs, ...prev.outputs } };
        const made = created(r.type, r.name, inputs, this.makers(prev));
        const id = prev?.id ?? made.id;
        this.record(key, { type: r.type, name: r.name, inputsHash: hash, id, outputs: stripSecrets(made.outputs) });
        if (!r.type.startsWith("pulumi:providers:") && !r.type.startsWith("pycluster:")) this.step(r.type, r.name, prev ? "update" : "create", started);
        return { id, state: made.outputs };
    }

    private connection(c: Record<string, any>): SshConnection {
        return c as SshConnection;
    }

    private async command(key: string, r: Registration, inputs: Record<string, any>, prev: ResourceRecord | undefined, started: number, deletedWith?: string) {
        const hash = sha([inputs.create, inputs.update, inputs.delete, inputs.stdin, inputs.connection, inputs.environment]);
        const triggersHash = sha(inputs.triggers ?? []);
        const outputs = (stdout: string, stderr: string) => ({ ...inputs, stdout, stderr });
        if (prev && prev.inputsHash === hash && prev.triggersHash === triggersHash) {
            this.step(r.type, r.name, "same", started);
            return { id: prev.id, state: outputs(prev.outputs.stdout ?? "", prev.outputs.stderr ?? "") };
        }
        const action: StepAction = !prev ? "create" : prev.triggersHash !== triggersHash ? "replace" : "update";
        const script: string | undefined = action === "update" ? inputs.update ?? inputs.create : inputs.create;
        if (this.o.preview) {
            this.step(r.type, r.name, action, started);
            return { id: prev?.id ?? r.name, state: outputs("", "") };
        }
        let stdout = "";
        let stderr = "";
        if (script) {
            const result = await runCommand(this.connection(inputs.connection), script, inputs.stdin).catch((e: Error) => {
                throw new Error(`${r.name}: ${action} failed: ${e.message}`);
            });
            stdout = result.stdout;
            stderr = result.stderr;
            if (result.exitCode !== 0) {
                // As the command provider reports it: the command, its exit status and its output.
                throw new Error(`${r.name}: ${action} failed: Process exited with status ${result.exitCode}: running ${JSON.stringify(script)}:\n${stdout}${stderr}`);
            }
        }
        this.record(key, {
            type: r.type,
            name: r.name,
            inputsHash: hash,
            triggersHash,
            id: prev?.id ?? `${r.name}-${crypto.randomUUID().slice(0, 8)}`,
            outputs: { stdout, stderr },
            deletedWith,
            deleteScript: inputs.delete,
        });
        if (inputs.delete) this.keys[key] = { connection: JSON.stringify(inputs.connection) };
        this.step(r.type, r.name, action, started, `${stdout}${stderr}`.trim());
        return { id: this.state.resources[key].id, state: outputs(stdout, stderr) };
    }

    private async copy(key: string, r: Registration, inputs: Record<string, any>, prev: ResourceRecord | undefined, started: number, deletedWith?: string) {
        // Under mocks the source arrives as the FileAsset itself, its path a promise.
        const asset = r.rawInputs.source as { __pulumiAsset?: boolean; path?: Promise<string> | string };
        const sourcePath = asset?.__pulumiAsset ? await asset.path : undefined;
        if (typeof sourcePath !== "string") throw new Error(`local cloud: ${r.name}: only file assets are supported as CopyToRemote sources`);
        const source = { path: sourcePath };
        const content = crypto.createHash("sha256").update(fs.readFileSync(source.path)).digest("hex");
        const hash = sha([content, inputs.remotePath, inputs.connection]);
        const triggersHash = sha(inputs.triggers ?? []);
        if (prev && prev.inputsHash === hash && prev.triggersHash === triggersHash) {
            this.step(r.type, r.name, "same", started);
            return { id: prev.id, state: inputs };
        }
        const action: StepAction = !prev ? "create" : prev.triggersHash !== triggersHash ? "replace" : "update";
        if (!this.o.preview) {
            await copyToRemote(this.connection(inputs.connection), source.path, inputs.remotePath);
            this.record(key, { type: r.type, name: r.name, inputsHash: hash, triggersHash, id: prev?.id ?? r.name, outputs: {}, deletedWith });
        }
        this.step(r.type, r.name, action, started);
        return { id: r.name, state: inputs };
    }

    private async instance(key: string, r: Registration, inputs: Record<string, any>, prev: ResourceRecord | undefined, started: number) {
        const portId = inputs.networks?.[0]?.port;
        const port = this.find(p => p.type === "openstack:networking/port:Port" && p.id === portId);
        if (!port?.host) throw new Error(`local cloud: instance ${r.name} is not attached to a known port (${portId})`);
        // What rebuilds an instance on OpenStack; ignoreChanges: ["imageName"] keeps the image name out.
        const hash = sha([inputs.userData, inputs.keyPair, inputs.networks, inputs.name]);
        const hostName: string = inputs.name;
        const running = this.cloud?.hosts().some(h => h.name === hostName && h.running);
        if (prev && prev.inputsHash === hash && (running || this.o.preview)) {
            if (prev.outputs.flavorName !== undefined && prev.outputs.flavorName !== inputs.flavorName) {
                // A new flavor is a resize: the same disk, one reboot.
                if (!this.o.preview) {
                    await this.requireCloud().rebootHost(hostName);
                    this.record(key, { ...prev, outputs: { ...prev.outputs, flavorName: inputs.flavorName } });
                    await this.enforceSecurityGroups();
                }
                this.step(r.type, r.name, "update", started);
                return { id: prev.id, state: { ...inputs, accessIpV4: port.host } };
            }
            this.step(r.type, r.name, "same", started);
            return { id: prev.id, state: { ...inputs, accessIpV4: port.host } };
        }
        const action: StepAction = !prev ? "create" : prev.inputsHash !== hash ? "replace" : "update";
        if (this.o.preview) {
            this.step(r.type, r.name, action, started);
            return { id: prev?.id ?? `${r.name}-new`, state: { ...inputs, accessIpV4: port.host } };
        }
        const cloud = this.requireCloud();
        if (prev && cloud.hosts().some(h => h.name === hostName)) await cloud.removeHost(hostName);
        const keypair = this.find(k => k.type === "openstack:compute/keypair:Keypair" && k.outputs.name === inputs.keyPair);
        const publicKeys = keypair ? [String(keypair.outputs.publicKey).trim()] : [];
        const id = `${r.name}-${crypto.randomUUID().slice(0, 8)}`;
        this.launched.add(hostName);
        // DHCP hands the subnet's resolvers to the instance.
        const subnet = this.find(s => s.type === SUBNET);
        await cloud.bootHost({
            name: hostName,
            privateIp: port.host,
            dnsNameservers: subnet?.outputs.dnsNameservers,
            userData: inputs.userData,
            vendorData: this.o.vendorData?.(hostName),
            // NoCloud hands these to the default user, as OpenStack's keypair does.
            metaData: `instance-id: ${id}\nlocal-hostname: ${hostName}\npublic-keys:\n${publicKeys.map(k => `  - ${k}`).join("\n")}\n`,
        });
        this.record(key, { type: r.type, name: r.name, inputsHash: hash, id, outputs: { accessIpV4: port.host, flavorName: inputs.flavorName }, host: hostName });
        await this.enforceSecurityGroups();
        const fip = this.floatingIpOfPort(portId);
        if (fip) {
            await cloud.attachPublicIp(hostName, fip.ip);
            this.state.resources[fip.key].host = hostName;
            this.save();
        }
        this.step(r.type, r.name, action, started);
        return { id, state: { ...inputs, accessIpV4: port.host } };
    }

    /**
     * The private network's OVH gateway: created after a while (OVH: minutes), and only then does
     * the subnet reach the outside. Removed, it cuts the subnet off again.
     */
    private async gateway(key: string, r: Registration, inputs: Record<string, any>, prev: ResourceRecord | undefined, started: number) {
        const hash = sha(inputs);
        if (prev && prev.inputsHash === hash && (this.o.preview || this.cloud?.gatewayOpen !== false)) {
            this.step(r.type, r.name, "same", started);
            return { id: prev.id, state: inputs };
        }
        if (!this.o.preview) {
            // An OVH gateway takes minutes, an instance about one: whatever instance is being created
            // meanwhile runs its first boot (cloud-init's one package install included) without it.
            await new Promise(res => setTimeout(res, this.o.gatewayCreateMs ?? DEFAULT_GATEWAY_CREATE_MS));
            const cloud = this.cloud;
            const deadline = Date.now() + FIRST_BOOT_LIMIT_MS;
            while (cloud && Date.now() < deadline && [...this.launched].some(h => cloud.hosts().some(x => x.name === h) && !cloud.cloudInitFinished(h))) {
                await new Promise(res => setTimeout(res, 500));
            }
            await this.cloud?.openGateway();
            this.record(key, { type: r.type, name: r.name, inputsHash: hash, id: prev?.id ?? `${r.name}-id`, outputs: stripSecrets(inputs) });
        }
        this.step(r.type, r.name, prev ? "update" : "create", started);
        return { id: prev?.id ?? `${r.name}-id`, state: inputs };
    }

    /** A floating IP belongs to a port: attached to its host now if the instance exists, else when it boots. */
    private async associate(key: string, r: Registration, inputs: Record<string, any>, prev: ResourceRecord | undefined, started: number) {
        // Neutron: a floating IP reaches a port only through a router on its subnet (OVH: the gateway).
        if (!this.o.preview && !Object.values(this.state.resources).some(g => g.type === GATEWAY) ) {
            throw new NeutronError(
                404,
                `External network Ext-Net is not reachable from the subnet of port ${inputs.portId}. Therefore, cannot associate Port ${inputs.portId} with a Floating IP (${r.name}: create the network's gateway first)`,
            );
        }
        const hash = sha([inputs.floatingIp, inputs.portId]);
        const instance = this.instanceOnPort(inputs.portId);
        const attached = !instance || this.cloud?.hosts().find(h => h.name === instance.host)?.publicIp === inputs.floatingIp;
        if (prev && prev.inputsHash === hash && (attached || this.o.preview)) {
            this.step(r.type, r.name, "same", started);
            return { id: prev.id, state: inputs };
        }
        if (!this.o.preview) {
            this.record(key, { type: r.type, name: r.name, inputsHash: hash, id: r.name, outputs: { portId: inputs.portId, floatingIp: inputs.floatingIp }, host: instance?.host });
            if (instance?.host) await this.requireCloud().attachPublicIp(instance.host, inputs.floatingIp);
        }
        this.step(r.type, r.name, prev ? "update" : "create", started);
        return { id: r.name, state: inputs };
    }

    /**
     * A record in a zone of the local internet's DNS (local/ovhDomain.ts says what the API accepts).
     * A changed zone, name or type is a new record (the provider replaces it); a changed target or
     * TTL updates it in place.
     */
    private async zoneRecord(key: string, r: Registration, inputs: Record<string, any>, prev: ResourceRecord | undefined, started: number) {
        const hash = sha([inputs.zone, inputs.subdomain ?? "", inputs.fieldtype, inputs.target, inputs.ttl]);
        const name = recordName(inputs.zone, inputs.subdomain);
        const present = this.cloud?.dnsRecords().some(d => d.id === prev?.id && d.name === name && d.value === inputs.target);
        if (prev && prev.inputsHash === hash && (present || this.o.preview)) {
            this.step(r.type, r.name, "same", started);
            return { id: prev.id, state: inputs };
        }
        const replace = prev !== undefined && prev.outputs.name !== name;
        const id = prev && !replace ? prev.id : String(100_000 + ++this.state.seq);
        if (!this.o.preview) {
            const cloud = this.requireCloud();
            checkZoneRecord(inputs, cloud.internet?.zones ?? []);
            if (replace) cloud.deleteDnsRecord(prev.id);
            cloud.putDnsRecord({ id, name, type: inputs.fieldtype, value: inputs.target, ttl: inputs.ttl || 3600 });
            this.record(key, { type: r.type, name: r.name, inputsHash: hash, id, outputs: { ...stripSecrets(inputs), name } });
        }
        this.step(r.type, r.name, !prev ? "create" : replace ? "replace" : "update", started);
        return { id, state: inputs };
    }

    private instanceOnPort(portId: string): ResourceRecord | undefined {
        const port = this.find(p => p.type === "openstack:networking/port:Port" && p.id === portId);
        return port && this.find(i => i.type === "openstack:compute/instance:Instance" && i.outputs.accessIpV4 === port.host);
    }

    /** The floating IP associated with a port, if any. */
    private floatingIpOfPort(portId: string): { key: string; ip: string } | undefined {
        const entry = Object.entries(this.state.resources).find(
            ([, a]) => a.type === "openstack:networking/floatingIpAssociate:FloatingIpAssociate" && a.outputs.portId === portId,
        );
        return entry && { key: entry[0], ip: entry[1].outputs.floatingIp };
    }

    private requireCloud(): LocalCloud {
        if (!this.cloud) throw new Error("local cloud: no cloud to act on");
        return this.cloud;
    }

    /** After `up`: delete what the program no longer declares, newest first. */
    async finish(): Promise<void> {
        const gone = Object.entries(this.state.resources).filter(([k]) => !this.seen.has(k));
        await this.delete(gone.map(([k]) => k));
        await this.enforceSecurityGroups();
    }

    /**
     * Applies each running host's security groups as its firewall (see firewall.ts), from the
     * ports, groups and rules recorded so far. Runs again whenever one of them changes.
     */
    enforceSecurityGroups(): Promise<void> {
        if (!this.cloud || this.o.preview) return Promise.resolve();
        const cloud = this.cloud;
        this.firewall = this.firewall.then(async () => {
            const all = Object.values(this.state.resources);
            const ports = all.filter(r => r.type === "openstack:networking/port:Port");
            const rules = all.filter(r => r.type === "openstack:networking/secGroupRule:SecGroupRule");
            const members = (groupId: string) => ports.filter(p => (p.outputs.securityGroupIds ?? []).includes(groupId)).map(p => p.host!);
            for (const instance of all.filter(r => r.type === "openstack:compute/instance:Instance")) {
                const host = cloud.hosts().find(h => h.name === instance.host);
                const port = ports.find(p => p.host === instance.outputs.accessIpV4);
                if (!host?.running || !port) continue;
                const groups: string[] = port.outputs.securityGroupIds ?? [];
                const applicable: SecurityRule[] = rules
                    .filter(r => groups.includes(r.outputs.securityGroupId))
                    .map(r => ({ ...(r.outputs as SecurityRule), remoteAddresses: r.outputs.remoteGroupId ? members(r.outputs.remoteGroupId) : undefined }));
                await runInNetns(host.netns, ["nft", "-f", "-"], { input: renderHostFirewall(applicable) });
            }
        });
        return this.firewall;
    }

    /** `destroy`: delete everything this stack has, newest first. */
    async destroyAll(): Promise<void> {
        await this.delete(Object.keys(this.state.resources));
    }

    private async delete(keys: string[]): Promise<void> {
        const doomed = new Set(keys);
        const doomedUrns = new Set(keys.map(k => this.state.resources[k].urn).filter(Boolean));
        const ordered = keys.map(k => [k, this.state.resources[k]] as const).sort((a, b) => b[1].order - a[1].order);
        for (const [key, rec] of ordered) {
            const started = Date.now();
            if (this.o.preview) {
                this.step(rec.type, rec.name, "delete", started);
                continue;
            }
            if (rec.type === COMMAND && rec.deleteScript) {
                if (rec.deletedWith && doomedUrns.has(rec.deletedWith)) {
                    this.o.log(`skip delete of ${rec.name}: deleted with its instance`);
                } else {
                    const conn = JSON.parse(this.keys[key]?.connection ?? "null");
                    const result = await runCommand(conn, rec.deleteScript);
                    if (result.exitCode !== 0) throw new Error(`${rec.name}: delete failed (exit ${result.exitCode}):\n${result.stdout}${result.stderr}`);
                }
            } else if (rec.type === "openstack:networking/floatingIpAssociate:FloatingIpAssociate" && rec.host) {
                if (this.cloud?.hosts().some(h => h.name === rec.host && !doomedInstance(this.state, doomed, rec.host))) await this.cloud.detachPublicIp(rec.host);
            } else if (rec.type === "openstack:compute/instance:Instance" && rec.host) {
                if (this.cloud?.hosts().some(h => h.name === rec.host)) await this.cloud.removeHost(rec.host);
            } else if (rec.type === GATEWAY) {
                await this.cloud?.closeGateway();
            } else if (rec.type === ZONE_RECORD) {
                if (this.cloud?.internet) this.cloud.deleteDnsRecord(rec.id);
            } else if (rec.type === RULE) {
                this.neutron.forget(rec.name);
            }
            delete this.state.resources[key];
            delete this.keys[key];
            this.save();
            this.step(rec.type, rec.name, "delete", started);
        }
    }
}

function doomedInstance(state: EngineState, doomed: Set<string>, host: string): boolean {
    return [...doomed].some(k => state.resources[k]?.type === "openstack:compute/instance:Instance" && state.resources[k]?.host === host);
}

/** Inputs without the ones the resource's ignoreChanges leaves out (top-level names). */
function withoutIgnored(inputs: Record<string, any>, ignored: string[] | undefined): Record<string, any> {
    if (!ignored?.length) return inputs;
    return Object.fromEntries(Object.entries(inputs).filter(([k]) => !ignored.includes(k)));
}

/** Outputs that name keys or certificates stay out of the state file. */
function stripSecrets(outputs: Record<string, any>): Record<string, any> {
    const out: Record<string, any> = {};
    for (const [k, v] of Object.entries(outputs)) {
        if (/privateKey|password|secret|userData|stdin|connection/i.test(k)) continue;
        out[k] = v;
    }
    return out;
}

function readJson<T>(file: string): T | undefined {
    try {
        return JSON.parse(fs.readFileSync(file, "utf8")) as T;
    } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw e;
    }
}

function writeJson(file: string, value: unknown, mode: number): void {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(value, null, 2), { mode });
    fs.renameSync(`${file}.tmp`, file);
}
