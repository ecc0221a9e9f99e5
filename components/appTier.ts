import * as pulumi from "@pulumi/pulumi";
import { names } from "../lib/conventions";
import { stackRolloutPlan } from "../provisioning/rollout";
import { AppNode, AppRelease, LbHandle } from "./appNode";
import { Bastion, NodePlacement } from "./host";

export interface AppTierArgs extends NodePlacement {
    bastion: Bastion;
    lb: LbHandle;
    release: AppRelease;
    fingerprintKey: pulumi.Output<string>;
}

/**
 * The private Gunicorn nodes, and the rollout's order between them
 * (provisioning/rollout.ts): every node checks a change before any switches,
 * then batch by batch, each batch once the previous one is back in rotation, so
 * a failure stops the rollout with the remaining nodes untouched.
 */
export class AppTier extends pulumi.ComponentResource {
    readonly nodes: AppNode[];
    readonly privateIps: string[];

    constructor(name: string, args: AppTierArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pycluster:app:AppTier", name, {}, opts);
        const plan = stackRolloutPlan(args.config);
        this.nodes = Array.from({ length: args.config.app.nodeCount }, (_, i) => new AppNode(names.appNode(name, i), { ...args, index: i }, { parent: this }));
        const checks = this.nodes.map(n => n.check);
        this.nodes.forEach((node, i) => node.rollOut({ after: plan.after[i].map(k => this.nodes[k].admitted), checks }));
        this.privateIps = args.config.network.appIps;
        this.registerOutputs({ privateIps: this.privateIps });
    }
}
