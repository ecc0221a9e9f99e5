import * as pulumi from "@pulumi/pulumi";
import { StackConfig } from "../config/stackConfig";
import { AppNode, AppRelease, LbHandle } from "./appNode";
import { Bastion, HostAccess } from "./host";

export interface AppTierArgs {
    config: StackConfig;
    networkId: pulumi.Input<string>;
    subnet: pulumi.Resource & { id: pulumi.Output<string> };
    securityGroupId: pulumi.Input<string>;
    access: HostAccess;
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
        this.nodes = [];
        for (let i = 0; i < args.config.app.nodeCount; i++) {
            const previousBatch = i >= batch ? this.nodes.slice(i - batch - (i % batch), i - (i % batch)) : [];
            this.nodes.push(
                new AppNode(
                    `${name}-${i}`,
                    { ...args, index: i, after: previousBatch.map(n => n.admitted) },
                    { parent: this },
                ),
            );
        }
        this.privateIps = args.config.network.appIps;
        this.registerOutputs({ privateIps: this.privateIps });
    }
}
