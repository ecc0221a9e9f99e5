import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { AppArchive } from "./archive";
import { BundleFile, renderBundle } from "./render/bundle";
import {
    bootstrapCommand,
    kernelCommand,
    keepalivedCommand,
    letsencryptCommand,
    monitoringCommand,
    nginxCommand,
    NginxPairPass,
    packagesCommand,
    releaseArchivePath,
    releaseCommand,
    releasesCommand,
    staticArchivePath,
    staticCommand,
} from "./render/hostCommands";
import { ACME_WEBROOT } from "./render/nginx";
import { agentArchive } from "./hostAgent";
import { appCommand, AppCommandOptions } from "./rollout";

/**
 * The push: turns rendered files and command lines into @pulumi/command
 * resources on one host. Ordering (what waits for what) is the caller's;
 * every resource here is deleted with its instance, so destroy never tries
 * to SSH into a VM that is going away.
 */

export type Connection = command.types.input.remote.ConnectionArgs;

export interface PushTarget {
    /** Host name, for resource names and messages. */
    name: string;
    /** Secret: holds the private key. */
    connection: pulumi.Output<Connection>;
    /** The same connection, retrying until sshd answers on a fresh VM. */
    bootConnection: pulumi.Output<Connection>;
    instance: pulumi.Resource;
    parent: pulumi.Resource;
    /** Ids of the instances this host's steps depend on; a change re-runs them all. */
    triggers: pulumi.Input<string>[];
}


/** How long a fresh VM may take to accept SSH and finish cloud-init. */
const BOOT_TIMEOUT = "20m";

interface StepArgs {
    create: pulumi.Input<string>;
    stdin?: pulumi.Input<string>;
    /** The stdin carries secrets (private keys, the app's env file). */
    secretStdin?: boolean;
    dependsOn?: pulumi.Input<pulumi.Resource>[];
    boot?: boolean;
    timeout?: string;
}

function step(target: PushTarget, suffix: string, a: StepArgs): command.remote.Command {
    return new command.remote.Command(
        `${target.name}-${suffix}`,
        {
            connection: a.boot ? target.bootConnection : target.connection,
            create: a.create,
            stdin: a.secretStdin && a.stdin !== undefined ? pulumi.secret(a.stdin) : a.stdin,
            // A replaced VM keeps its address and pinned host key but not its disk:
            // its id is what tells every step to run again on the new one.
            triggers: target.triggers,
            // Without AcceptEnv on the host this only produces warnings.
            addPreviousOutputInEnv: false,
            logging: a.secretStdin ? "stdout" : "stdoutAndStderr",
        },
        {
            parent: target.parent,
            dependsOn: a.dependsOn,
            deletedWith: target.instance,
            customTimeouts: { create: a.timeout ?? "30m", update: a.timeout ?? "30m" },
            additionalSecretOutputs: a.secretStdin ? ["stdin"] : undefined,
        },
    );
}

/** Installs hostctl and waits for cloud-init: the first step on every host. */
export function bootstrap(target: PushTarget, dependsOn: pulumi.Input<pulumi.Resource>[]): command.remote.Command {
    return step(target, "bootstrap", {
        create: bootstrapCommand(),
        // The agent's zipapp: binary, so base64 (the command decodes it).
        stdin: agentArchive().bytes.toString("base64"),
        dependsOn,
        boot: true,
        timeout: BOOT_TIMEOUT,
    });
}

export function ensurePackages(target: PushTarget, packages: string[], dependsOn: pulumi.Input<pulumi.Resource>[]): command.remote.Command {
    return step(target, "packages", { create: packagesCommand(packages), dependsOn });
}

export function pushKernel(target: PushTarget, files: BundleFile[], dependsOn: pulumi.Input<pulumi.Resource>[]): command.remote.Command {
    return step(target, "kernel", { create: kernelCommand(), stdin: renderBundle(files), dependsOn });
}

export function pushNginx(
    target: PushTarget,
    files: pulumi.Input<BundleFile[]>,
    secret: boolean,
    healthPath: string,
    leaseSeconds: number,
    dependsOn: pulumi.Input<pulumi.Resource>[],
    pass: { suffix: string; pair?: pulumi.Input<NginxPairPass> } = { suffix: "nginx" },
): command.remote.Command {
    return step(target, pass.suffix, {
        create: pass.pair ? pulumi.output(pass.pair).apply(pair => nginxCommand(healthPath, leaseSeconds, pair)) : nginxCommand(healthPath, leaseSeconds),
        stdin: pulumi.output(files).apply(renderBundle),
        secretStdin: secret,
        dependsOn,
    });
}

/** A pair's LB: keepalived's configuration, validated on the host (keepalived -t) before it is reloaded. */
export function pushKeepalived(target: PushTarget, files: BundleFile[], address: string, dependsOn: pulumi.Input<pulumi.Resource>[]): command.remote.Command {
    return step(target, "keepalived", { create: keepalivedCommand(address), stdin: renderBundle(files), dependsOn });
}

/** Exporters (and Prometheus on the monitoring node): validated on the host, switched, then checked. */
export function pushMonitoring(
    target: PushTarget,
    push: { files: BundleFile[]; endpoints: { service: string; url: string }[] },
    dependsOn: pulumi.Input<pulumi.Resource>[],
): command.remote.Command {
    return step(target, "monitoring", { create: monitoringCommand(push.endpoints), stdin: renderBundle(push.files), dependsOn });
}

/** The load balancer's static files: uploaded as an archive, unpacked and switched atomically. */
export function pushStaticFiles(target: PushTarget, app: string, archive: AppArchive, dependsOn: pulumi.Input<pulumi.Resource>[]): command.remote.Command {
    const upload = new command.remote.CopyToRemote(
        `${target.name}-static-upload`,
        { connection: target.connection, source: new pulumi.asset.FileAsset(archive.path), remotePath: staticArchivePath(app, archive.id), triggers: target.triggers },
        { parent: target.parent, dependsOn, deletedWith: target.instance },
    );
    return step(target, "static", { create: staticCommand({ app, release: archive.id }), dependsOn: [upload] });
}

/**
 * How long the letsencrypt step waits for a record the stack manages to resolve: OVH applies a zone
 * change within a minute or so, and a resolver may still hold a negative answer from before.
 */
export const MANAGED_RECORD_WAIT_SECONDS = 300;

/**
 * Let's Encrypt through certbot and nginx's ACME location, once nginx serves the domain and the
 * domain resolves to `address`. A failed step runs again at the next `up`.
 */
export function obtainCertificate(
    target: PushTarget,
    o: { domain: string; email: string; server: string; address: pulumi.Input<string>; managedRecord: boolean },
    dependsOn: pulumi.Input<pulumi.Resource>[],
): command.remote.Command {
    const create = pulumi.output(o.address).apply(address =>
        letsencryptCommand({
            domain: o.domain,
            email: o.email,
            webroot: ACME_WEBROOT,
            server: o.server,
            address,
            waitSeconds: o.managedRecord ? MANAGED_RECORD_WAIT_SECONDS : 0,
            managedRecord: o.managedRecord,
        }),
    );
    return step(target, "letsencrypt", { create, dependsOn });
}

/** Uploads the release archive over SFTP; it is copied again only when its content changes. */
export function uploadRelease(target: PushTarget, app: string, archive: AppArchive, dependsOn: pulumi.Input<pulumi.Resource>[]): command.remote.CopyToRemote {
    return new command.remote.CopyToRemote(
        `${target.name}-upload`,
        {
            connection: target.connection,
            source: new pulumi.asset.FileAsset(archive.path),
            remotePath: releaseArchivePath(app, archive.id),
            triggers: target.triggers,
        },
        { parent: target.parent, dependsOn, deletedWith: target.instance },
    );
}

export function installRelease(
    target: PushTarget,
    o: { app: string; release: string; user: string },
    dependsOn: pulumi.Input<pulumi.Resource>[],
): command.remote.Command {
    return step(target, "release", { create: releaseCommand(o), dependsOn });
}

export function pushApp(
    target: PushTarget,
    o: AppCommandOptions,
    files: pulumi.Input<BundleFile[]>,
    secret: boolean,
    dependsOn: pulumi.Input<pulumi.Resource>[],
): command.remote.Command {
    return step(target, o.checkOnly ? "check" : "app", {
        create: appCommand(o),
        stdin: pulumi.output(files).apply(renderBundle),
        secretStdin: secret,
        dependsOn,
    });
}

/**
 * On the load balancer: a step for one app node. `change` is a fingerprint of
 * what the node is about to receive, so the step runs exactly when that changes.
 */
/** The releases kept on a node, as JSON on stdout: read again whenever the node's change lands. */
export function listReleases(target: PushTarget, app: string, change: pulumi.Input<string>, dependsOn: pulumi.Input<pulumi.Resource>[]): command.remote.Command {
    return step(target, "releases", { create: pulumi.interpolate`${releasesCommand(app)} # change ${change}`, dependsOn });
}

export function onLoadBalancer(
    lb: PushTarget,
    suffix: string,
    create: pulumi.Input<string>,
    change: pulumi.Input<string>,
    dependsOn: pulumi.Input<pulumi.Resource>[],
): command.remote.Command {
    return step(lb, suffix, { create: pulumi.interpolate`${create} # change ${change}`, dependsOn });
}
