/**
 * What the local engine records of a stack: its steps, one record per resource (hashes of inputs,
 * never secret values), the state and key files, and what the resource handlers (engine*.ts) may
 * use of the engine.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import type { LocalCloud } from "./cloud";
import type { FakeNeutron } from "./neutron";
import type { Registration } from "./program";

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

export interface ResourceRecord {
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

export interface EngineState {
    version: 1;
    stack: string;
    seq: number;
    resources: Record<string, ResourceRecord>;
}

export const COMMAND = "command:remote:Command";
export const COPY = "command:remote:CopyToRemote";

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
export const GATEWAY = "ovh:CloudProject/gateway:Gateway";
export const RULE = "openstack:networking/secGroupRule:SecGroupRule";
export const SERVER_GROUP = "openstack:compute/serverGroup:ServerGroup";
export const SUBNET = "ovh:CloudProject/networkPrivateSubnetV2:NetworkPrivateSubnetV2";
export const ZONE_RECORD = "ovh:Domain/zoneRecord:ZoneRecord";

export const sha = (value: unknown) => crypto.createHash("sha256").update(JSON.stringify(value ?? null)).digest("hex");

/** A resource handler's result: the id and the state the program sees. */
export type Applied = { id: string; state: Record<string, any> };

/** What the resource handlers (engineCommands.ts, engineOpenStack.ts, engineOvh.ts) use of LocalEngine. */
export interface EngineContext {
    readonly o: EngineOptions;
    readonly cloud: LocalCloud | undefined;
    readonly state: EngineState;
    readonly keys: Record<string, Record<string, string>>;
    readonly neutron: FakeNeutron;
    /** Hosts whose instance creation started in this run. */
    readonly launched: Set<string>;
    record(key: string, rec: Omit<ResourceRecord, "order">): void;
    save(): void;
    step(type: string, name: string, action: StepAction, started: number, output?: string): void;
    find(pred: (r: ResourceRecord) => boolean): ResourceRecord | undefined;
    plain(key: string, r: Registration, inputs: Record<string, any>, prev: ResourceRecord | undefined, started: number): Applied;
    requireCloud(): LocalCloud;
    enforceSecurityGroups(): Promise<void>;
}

export function doomedInstance(state: EngineState, doomed: Set<string>, host: string): boolean {
    return [...doomed].some(k => state.resources[k]?.type === "openstack:compute/instance:Instance" && state.resources[k]?.host === host);
}

/** Inputs without the ones the resource's ignoreChanges leaves out (top-level names). */
export function withoutIgnored(inputs: Record<string, any>, ignored: string[] | undefined): Record<string, any> {
    if (!ignored?.length) return inputs;
    return Object.fromEntries(Object.entries(inputs).filter(([k]) => !ignored.includes(k)));
}

/** Outputs that name keys or certificates stay out of the state file. */
export function stripSecrets(outputs: Record<string, any>): Record<string, any> {
    const out: Record<string, any> = {};
    for (const [k, v] of Object.entries(outputs)) {
        if (/privateKey|password|secret|userData|stdin|connection/i.test(k)) continue;
        out[k] = v;
    }
    return out;
}

export function readJson<T>(file: string): T | undefined {
    try {
        return JSON.parse(fs.readFileSync(file, "utf8")) as T;
    } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw e;
    }
}

export function writeJson(file: string, value: unknown, mode: number): void {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(value, null, 2), { mode });
    fs.renameSync(`${file}.tmp`, file);
}
