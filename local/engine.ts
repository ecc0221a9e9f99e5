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
 * Resources the program no longer declares are deleted after the run. *
 * The parts: the records and files (engineState.ts), the command provider's resources
 * (engineCommands.ts), OpenStack's (engineOpenStack.ts), OVH's (engineOvh.ts) and the security
 * groups as firewalls (engineSecurityGroups.ts); LocalEngine registers resources and dispatches.
 */
import * as path from "path";
import type { LocalCloud } from "./cloud";
import { CloudMakers, created } from "./fakeCloud";
import { generatePrivateKey, selfSignedCert, SelfSignedCertInputs } from "./keys";
import { FakeNeutron } from "./neutron";
import { ProgramMocks, Registration, unwrapSecrets } from "./program";
import { runCommand } from "./ssh";
import {
    COMMAND,
    COPY,
    doomedInstance,
    EngineContext,
    EngineOptions,
    EngineState,
    GATEWAY,
    readJson,
    ResourceRecord,
    RULE,
    SERVER_GROUP,
    sha,
    StepAction,
    StepRecord,
    stripSecrets,
    SUBNET,
    withoutIgnored,
    writeJson,
    ZONE_RECORD,
} from "./engineState";
import { command, copy } from "./engineCommands";
import { applyPort, applyRule, associate, instance, serverGroup } from "./engineOpenStack";
import { gateway, zoneRecord } from "./engineOvh";
import { applySecurityGroups } from "./engineSecurityGroups";

export { DEFAULT_GATEWAY_CREATE_MS } from "./engineState";
export type { EngineOptions, StepAction, StepRecord } from "./engineState";

export class LocalEngine implements EngineContext {
    readonly steps: StepRecord[] = [];
    readonly failures: Error[] = [];
    private readonly seen = new Set<string>();
    readonly state: EngineState;
    readonly keys: Record<string, Record<string, string>>;
    private readonly stateFile: string;
    private readonly keysFile: string;
    /** Firewall updates, one after another. */
    private firewall: Promise<void> = Promise.resolve();
    /** What the networking API accepts (local/neutron.ts), knowing the rules that exist. */
    readonly neutron = new FakeNeutron();
    /** Hosts whose instance creation started in this run: a gateway created alongside finishes after their first boot. */
    readonly launched = new Set<string>();

    constructor(
        readonly cloud: LocalCloud | undefined,
        readonly o: EngineOptions,
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

    record(key: string, rec: Omit<ResourceRecord, "order">): void {
        const prev = this.state.resources[key];
        this.state.resources[key] = { ...rec, order: prev?.order ?? ++this.state.seq, urn: prev?.urn };
        this.save();
    }

    save(): void {
        if (this.o.preview) return;
        writeJson(this.stateFile, this.state, 0o600);
        writeJson(this.keysFile, this.keys, 0o600);
    }

    step(type: string, name: string, action: StepAction, started: number, output?: string): void {
        const s = { type, name, action, startedAt: started, ms: Date.now() - started, output };
        this.steps.push(s);
        if (action !== "same") this.o.log(`${this.o.preview ? "would " : ""}${action} ${name} (${type.split(":").pop()})${this.o.preview ? "" : ` ${s.ms} ms`}`);
    }

    find(pred: (r: ResourceRecord) => boolean): ResourceRecord | undefined {
        return Object.values(this.state.resources).find(pred);
    }

    private async apply(key: string, r: Registration, inputs: Record<string, any>): Promise<{ id: string; state: Record<string, any> }> {
        const prev = this.state.resources[key];
        const started = Date.now();
        const deletedWith = r.options.deletedWith || undefined;
        switch (r.type) {
            case COMMAND:
                return command(this, key, r, inputs, prev, started, deletedWith);
            case COPY:
                return copy(this, key, r, inputs, prev, started, deletedWith);

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
                return gateway(this, key, r, inputs, prev, started);
            case SUBNET:
                if (!this.o.preview) this.neutron.check(r.type, r.name, inputs);
                return this.plain(key, r, inputs, prev, started);
            case "openstack:networking/port:Port":
                return applyPort(this, key, r, inputs, prev, started);
            case RULE:
                return applyRule(this, key, r, inputs, prev, started);
            case "openstack:compute/instance:Instance":
                return instance(this, key, r, inputs, prev, started);
            case SERVER_GROUP:
                return serverGroup(this, key, r, inputs, prev, started);
            case "openstack:networking/floatingIpAssociate:FloatingIpAssociate":
                return associate(this, key, r, inputs, prev, started);
            case ZONE_RECORD:
                return zoneRecord(this, key, r, inputs, prev, started);
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
    plain(key: string, r: Registration, inputs: Record<string, any>, prev: ResourceRecord | undefined, started: number) {
        const hash = sha(withoutIgnored(inputs, r.options.ignoreChanges));
        if (prev && prev.inputsHash === hash) return { id: prev.id, state: { ...inputs, ...prev.outputs } };
        const made = created(r.type, r.name, inputs, this.makers(prev));
        const id = prev?.id ?? made.id;
        this.record(key, { type: r.type, name: r.name, inputsHash: hash, id, outputs: stripSecrets(made.outputs) });
        if (!r.type.startsWith("pulumi:providers:") && !r.type.startsWith("pycluster:")) this.step(r.type, r.name, prev ? "update" : "create", started);
        return { id, state: made.outputs };
    }

    requireCloud(): LocalCloud {
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
            await applySecurityGroups(cloud, Object.values(this.state.resources));
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
            } else if (rec.type === "openstack:networking/floatingIpAssociate:FloatingIpAssociate" && rec.outputs.nat) {
                await this.cloud?.releaseFloatingNat(rec.outputs.floatingIp);
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
