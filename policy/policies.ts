/**
 * The pack's policies: each one adapts what the policy engine hands over to the plain
 * descriptions of `rules.ts` and reports what the rule returns. No decision is made here.
 */
import * as pulumi from "@pulumi/pulumi";
import type {
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationPolicy,
} from "@pulumi/policy";
import {
    checkAppNodesPrivate,
    checkExplicitSecurityGroups,
    checkImagePinned,
    checkProductionStack,
    checkPublicAddressesOnlyOnLb,
    checkSecurityGroupsManaged,
    checkWorldIngressOnlyOnLb,
    checkWorldOpenIngress,
    ResourceDescription,
    UNKNOWN,
    Violation,
} from "./rules";

/**
 * Deep copy of the engine's property bag. The engine wraps props in a proxy that throws on any
 * value unknown during preview; here such values become `UNKNOWN`, so a rule can reason about
 * the rest of the resource instead of the whole policy being skipped.
 */
export function toPlain(value: unknown): unknown {
    if (value === null || typeof value !== "object") return value;
    if (Array.isArray(value)) {
        const out: unknown[] = [];
        for (let i = 0; i < value.length; i++) out.push(readField(value, i));
        return out;
    }
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value)) out[key] = readField(value as Record<string, unknown>, key);
    return out;
}

function readField(container: any, key: string | number): unknown {
    try {
        return toPlain(container[key]);
    } catch (e) {
        // @pulumi/policy's proxy throws UnknownValueError (not exported) for unknown values.
        if (e instanceof Error && e.constructor.name === "UnknownValueError") return UNKNOWN;
        throw e;
    }
}

/** A resource under validation (inputs) or in the stack (outputs), as the rules see it. */
export function describe(resource: ResourceValidationArgs | PolicyResource): ResourceDescription {
    const description: ResourceDescription = {
        type: resource.type,
        name: resource.name,
        urn: resource.urn,
        props: toPlain(resource.props) as Record<string, any>,
        opts: { ignoreChanges: [...(resource.opts?.ignoreChanges ?? [])] },
    };
    if ("propertyDependencies" in resource) {
        description.propertyDependencies = Object.fromEntries(
            Object.entries(resource.propertyDependencies ?? {}).map(([prop, deps]) => [prop, deps.map(d => d.urn)]),
        );
    }
    return description;
}

/** `pycluster:production` from the stack's config (the engine passes it to the pack). */
export function productionFromConfig(): boolean {
    return (new pulumi.Config("pycluster").get("production") ?? "").trim().toLowerCase() === "true";
}

type ResourceRule = (r: ResourceDescription) => string[];
type StackRule = (resources: ResourceDescription[]) => Violation[];

function resourcePolicy(name: string, description: string, rule: ResourceRule): ResourceValidationPolicy {
    return {
        name,
        description,
        enforcementLevel: "mandatory",
        validateResource: (args: ResourceValidationArgs, report: ReportViolation) => {
            for (const message of rule(describe(args))) report(message);
        },
    };
}

function stackPolicy(name: string, description: string, rule: StackRule): StackValidationPolicy {
    return {
        name,
        description,
        enforcementLevel: "mandatory",
        validateStack: (args, report: ReportViolation) => {
            for (const v of rule(args.resources.map(describe))) report(v.message, v.urn);
        },
    };
}

/** Every policy of the pack, in the order of the rules in rules.ts. */
export const policies: (ResourceValidationPolicy | StackValidationPolicy)[] = [
    resourcePolicy(
        "no-world-open-ingress",
        "Ingress from 0.0.0.0/0, ::/0 or any source is allowed only for TCP 80/443 (and TCP 22 with the allowSshFromAnywhere opt-in).",
        checkWorldOpenIngress,
    ),
    stackPolicy(
        "world-open-ingress-only-on-lb",
        "World-open ingress rules belong to the load balancer's security group (name ending -lb).",
        checkWorldIngressOnlyOnLb,
    ),
    resourcePolicy(
        "app-nodes-private",
        "App ports and instances are not on Ext-Net and have no public or floating IP.",
        checkAppNodesPrivate,
    ),
    stackPolicy(
        "public-addresses-only-on-lb",
        "Floating IPs are associated only with the load balancer's port; no app node has a public address.",
        checkPublicAddressesOnlyOnLb,
    ),
    resourcePolicy(
        "explicit-security-groups",
        "Instances attach only through ports with explicit security groups, never the default group.",
        checkExplicitSecurityGroups,
    ),
    stackPolicy(
        "security-groups-managed-by-stack",
        "Instances attach only ports of this stack, and ports use only security groups of this stack.",
        checkSecurityGroupsManaged,
    ),
    stackPolicy(
        "production-stack",
        "Production stacks run at least two app instances and no self-signed certificate.",
        resources => checkProductionStack(resources, pulumi.getStack(), productionFromConfig()),
    ),
    resourcePolicy(
        "image-pinned",
        "Instances boot from an image id, or from imageName with ignoreChanges: [\"imageName\"].",
        checkImagePinned,
    ),
];
