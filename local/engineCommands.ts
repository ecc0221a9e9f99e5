/**
 * The command provider's resources on the local engine: a remote Command runs its script over real
 * SSH, a CopyToRemote uploads its file; both run again when their inputs change and are replaced
 * when their triggers change.
 */
import * as crypto from "crypto";
import * as fs from "fs";
import type { Registration } from "./program";
import { copyToRemote, runCommand, SshConnection } from "./ssh";
import { EngineContext, ResourceRecord, sha, StepAction } from "./engineState";

function connection(c: Record<string, any>): SshConnection {
    return c as SshConnection;
}

export async function command(e: EngineContext, key: string, r: Registration, inputs: Record<string, any>, prev: ResourceRecord | undefined, started: number, deletedWith?: string) {
    const hash = sha([inputs.create, inputs.update, inputs.delete, inputs.stdin, inputs.connection, inputs.environment]);
    const triggersHash = sha(inputs.triggers ?? []);
    const outputs = (stdout: string, stderr: string) => ({ ...inputs, stdout, stderr });
    if (prev && prev.inputsHash === hash && prev.triggersHash === triggersHash) {
        e.step(r.type, r.name, "same", started);
        return { id: prev.id, state: outputs(prev.outputs.stdout ?? "", prev.outputs.stderr ?? "") };
    }
    const action: StepAction = !prev ? "create" : prev.triggersHash !== triggersHash ? "replace" : "update";
    const script: string | undefined = action === "update" ? inputs.update ?? inputs.create : inputs.create;
    if (e.o.preview) {
        e.step(r.type, r.name, action, started);
        return { id: prev?.id ?? r.name, state: outputs("", "") };
    }
    let stdout = "";
    let stderr = "";
    if (script) {
        const result = await runCommand(connection(inputs.connection), script, inputs.stdin).catch((e: Error) => {
            throw new Error(`${r.name}: ${action} failed: ${e.message}`);
        });
        stdout = result.stdout;
        stderr = result.stderr;
        if (result.exitCode !== 0) {
            // As the command provider reports it: the command, its exit status and its output.
            throw new Error(`${r.name}: ${action} failed: Process exited with status ${result.exitCode}: running ${JSON.stringify(script)}:\n${stdout}${stderr}`);
        }
    }
    e.record(key, {
        type: r.type,
        name: r.name,
        inputsHash: hash,
        triggersHash,
        id: prev?.id ?? `${r.name}-${crypto.randomUUID().slice(0, 8)}`,
        outputs: { stdout, stderr },
        deletedWith,
        deleteScript: inputs.delete,
    });
    if (inputs.delete) e.keys[key] = { connection: JSON.stringify(inputs.connection) };
    e.step(r.type, r.name, action, started, `${stdout}${stderr}`.trim());
    return { id: e.state.resources[key].id, state: outputs(stdout, stderr) };
}

export async function copy(e: EngineContext, key: string, r: Registration, inputs: Record<string, any>, prev: ResourceRecord | undefined, started: number, deletedWith?: string) {
    // Under mocks the source arrives as the FileAsset itself, its path a promise.
    const asset = r.rawInputs.source as { __pulumiAsset?: boolean; path?: Promise<string> | string };
    const sourcePath = asset?.__pulumiAsset ? await asset.path : undefined;
    if (typeof sourcePath !== "string") throw new Error(`local cloud: ${r.name}: only file assets are supported as CopyToRemote sources`);
    const source = { path: sourcePath };
    const content = crypto.createHash("sha256").update(fs.readFileSync(source.path)).digest("hex");
    const hash = sha([content, inputs.remotePath, inputs.connection]);
    const triggersHash = sha(inputs.triggers ?? []);
    if (prev && prev.inputsHash === hash && prev.triggersHash === triggersHash) {
        e.step(r.type, r.name, "same", started);
        return { id: prev.id, state: inputs };
    }
    const action: StepAction = !prev ? "create" : prev.triggersHash !== triggersHash ? "replace" : "update";
    if (!e.o.preview) {
        // As a failed command: the error names the resource, as Pulumi's does.
        await copyToRemote(connection(inputs.connection), source.path, inputs.remotePath).catch((err: Error) => {
            throw new Error(`${r.name}: ${action} failed: ${err.message}`);
        });
        e.record(key, { type: r.type, name: r.name, inputsHash: hash, triggersHash, id: prev?.id ?? r.name, outputs: {}, deletedWith });
    }
    e.step(r.type, r.name, action, started);
    return { id: r.name, state: inputs };
}
