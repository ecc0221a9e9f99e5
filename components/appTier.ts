import * as pulumi from "@pulumi/pulumi";
import { names } from "../lib/conventions";
import { AppNode, AppRelease, LbHandle } from "./appNode";
import { Bastion, NodePlacement } from "./host";

export interface AppTierArgs extends NodePlacement {
    bastion: Bastion;
    lb: LbHandle;
    release: AppRelease;
    fingerprintKey: pulumi.Output<string>;
}

/**
 * The private Gunicorn nodes. Changes roll through them in batches of
 * rolloutBatchSize: a batch starts when the previous one is back in rotation,
 * so a failure stops the rollout with the remaining nodes untouched.
 */
export class AppTier extends pulumi.ComponentResource {
    readonly nodes: AppNode[];
    readonly privateIps: string[];

    constructor(name: string, args: AppTierArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pycluster:app:AppTier", name, {}, opts);
        const batch = args.config.app.rolloutBatchSize;
        this.nodes = Array.from({ length: args.config.app.nodeCount }, (_, i) => new AppNode(names.appNode(name, i), { ...args, index: i }, { parent: this }));
        // A change is validated on every node before the first one is drained; then batch by batch.
        const checks = this.nodes.map(n => n.check);
        this.nodes.forEach((node, i) => {
            const start = i - (i % batch);
            const previousBatch = start >= batch ? this.nodes.slice(start - batch, start) : [];
            node.rollOut({ after: previousBatch.map(n => n.admitted), checks });
        });
        this.privateIps = args.config.network.appIps;
        this.registerOutputs({ privateIps: this.privateIps });
    }
}
