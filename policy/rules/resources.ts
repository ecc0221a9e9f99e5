/**
 * What the rules see of a resource (plain data, values unknown during preview as UNKNOWN), small
 * readers for its loosely typed props, and how a stack check follows a reference between resources.
 */
/** Stands for a value Pulumi does not know yet (preview of a resource not created yet). */
export const UNKNOWN: unique symbol = Symbol("unknown until the update runs");

/** One resource, as plain data. */
export interface ResourceDescription {
    /** Pulumi type token, e.g. "openstack:networking/port:Port". */
    type: string;
    /** Pulumi resource name (the logical name in the program). */
    name: string;
    urn?: string;
    /** Inputs (resource checks) or outputs (stack checks); `UNKNOWN` where not known yet. */
    props: Record<string, any>;
    /** The resource options the checks read. */
    opts?: { ignoreChanges?: string[] };
    /**
     * Stack checks only: for each top-level property, the URNs of the resources its value came
     * from. This is how a reference is followed when the referenced id is not known yet.
     */
    propertyDependencies?: Record<string, string[]>;
}

/** A stack check's finding; `urn` names the offending resource (none = the stack as a whole). */
export interface Violation {
    message: string;
    urn?: string;
}

export const TYPES = {
    secGroup: "openstack:networking/secGroup:SecGroup",
    secGroupRule: "openstack:networking/secGroupRule:SecGroupRule",
    port: "openstack:networking/port:Port",
    instance: "openstack:compute/instance:Instance",
    floatingIpAssociate: "openstack:networking/floatingIpAssociate:FloatingIpAssociate",
    selfSignedCert: "tls:index/selfSignedCert:SelfSignedCert",
} as const;

export const SSH_PORT = 22;

// ---------------------------------------------------------------------------------------------
// Names: the program's conventions (lib/conventions.ts) say which role a resource belongs to.
// ---------------------------------------------------------------------------------------------

/** The resource's cloud-side name (`props.name`), falling back to its Pulumi name. */
export function displayName(r: ResourceDescription): string {
    const name = r.props.name;
    return typeof name === "string" && name !== "" ? name : r.name;
}

// ---------------------------------------------------------------------------------------------
// Small readers for loosely typed props.
// ---------------------------------------------------------------------------------------------

export function isUnknown(value: unknown): value is typeof UNKNOWN {
    return value === UNKNOWN;
}

/** A non-empty string, or undefined (absent, empty, unknown or not a string). */
export function str(value: unknown): string | undefined {
    return typeof value === "string" && value !== "" ? value : undefined;
}

/** A port number; 0 and absent both mean "no port given" (outputs report an unset port as 0). */
export function portNumber(value: unknown): number | undefined {
    const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
    return typeof n === "number" && Number.isInteger(n) && n > 0 ? n : undefined;
}

export function list(value: unknown): unknown[] {
    return Array.isArray(value) ? value : [];
}

export function record(value: unknown): Record<string, unknown> {
    return value !== null && typeof value === "object" && !Array.isArray(value)
        ? (value as Record<string, unknown>)
        : {};
}

export function quote(value: string): string {
    return JSON.stringify(value);
}

// ---------------------------------------------------------------------------------------------
// Following references between resources (stack checks).
// ---------------------------------------------------------------------------------------------

export type Resolved =
    | { kind: "found"; target: ResourceDescription }
    | { kind: "foreign"; id: string }
    | { kind: "unknown" };

/**
 * Finds the resource of `type` that `from.props[prop]` (an id) points to: by its `id` output, or,
 * when the id is not known yet (preview), through the property's dependencies. "foreign" means a
 * known id that no resource of this stack has.
 */
export function resolveReference(
    from: ResourceDescription,
    prop: string,
    type: string,
    resources: readonly ResourceDescription[],
): Resolved {
    const id = str(from.props[prop]);
    if (id !== undefined) {
        const byId = resources.find(r => r.type === type && r.props.id === id);
        if (byId) return { kind: "found", target: byId };
    }
    const viaDependencies = dependenciesOfType(from, prop, type, resources);
    if (viaDependencies.length === 1) return { kind: "found", target: viaDependencies[0] };
    if (id !== undefined) return { kind: "foreign", id };
    return { kind: "unknown" };
}

export function dependenciesOfType(
    from: ResourceDescription,
    prop: string,
    type: string,
    resources: readonly ResourceDescription[],
): ResourceDescription[] {
    const urns = from.propertyDependencies?.[prop] ?? [];
    return resources.filter(r => r.type === type && r.urn !== undefined && urns.includes(r.urn));
}
