/**
 * The pycluster guardrails as pure functions over plain resource descriptions.
 *
 * Nothing here imports Pulumi: `policies.ts` turns what the policy engine hands over into
 * `ResourceDescription`s, and the unit tests build them by hand. Each check returns the
 * violations it found; an empty list means compliant (or "not something this check is about").
 *
 * Two kinds of checks:
 * - resource checks see one resource's *inputs* before it is created or updated, during preview
 *   and again during `up` (when every input is known). They block a bad resource before it exists.
 * - stack checks see every resource's *outputs* once the program has registered them all, so they
 *   can follow references between resources (a rule's `securityGroupId` to its group, a floating
 *   IP to its port). During `up` they run after the changes are made: preview is the gate.
 *
 * Values not known yet (outputs of resources still to be created, during preview) arrive as
 * `UNKNOWN`. A check never fails a resource on an unknown value: the same check runs again during
 * `up` with the value known.
 */

import {
    ACME_PLACEHOLDER_ORGANIZATION,
    hasRole,
    isProductionStack,
    isRoleGroup,
    MIN_PRODUCTION_APP_NODES,
    PUBLIC_NETWORK,
    ROLE,
    SSH_OPT_IN_MARKER,
    WEB_PORTS,
} from "../lib/conventions";
import { isEverywhere, isPublicAddress } from "../lib/ipv4";

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

const SSH_PORT = 22;

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

function isUnknown(value: unknown): value is typeof UNKNOWN {
    return value === UNKNOWN;
}

/** A non-empty string, or undefined (absent, empty, unknown or not a string). */
function str(value: unknown): string | undefined {
    return typeof value === "string" && value !== "" ? value : undefined;
}

/** A port number; 0 and absent both mean "no port given" (outputs report an unset port as 0). */
function portNumber(value: unknown): number | undefined {
    const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
    return typeof n === "number" && Number.isInteger(n) && n > 0 ? n : undefined;
}

function list(value: unknown): unknown[] {
    return Array.isArray(value) ? value : [];
}

function record(value: unknown): Record<string, unknown> {
    return value !== null && typeof value === "object" && !Array.isArray(value)
        ? (value as Record<string, unknown>)
        : {};
}

function quote(value: string): string {
    return JSON.stringify(value);
}

// ---------------------------------------------------------------------------------------------
// Following references between resources (stack checks).
// ---------------------------------------------------------------------------------------------

type Resolved =
    | { kind: "found"; target: ResourceDescription }
    | { kind: "foreign"; id: string }
    | { kind: "unknown" };

/**
 * Finds the resource of `type` that `from.props[prop]` (an id) points to: by its `id` output, or,
 * when the id is not known yet (preview), through the property's dependencies. "foreign" means a
 * known id that no resource of this stack has.
 */
function resolveReference(
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

function dependenciesOfType(
    from: ResourceDescription,
    prop: string,
    type: string,
    resources: readonly ResourceDescription[],
): ResourceDescription[] {
    const urns = from.propertyDependencies?.[prop] ?? [];
    return resources.filter(r => r.type === type && r.urn !== undefined && urns.includes(r.urn));
}

// ---------------------------------------------------------------------------------------------
// Rule 1: no ingress from anywhere, except TCP 80/443 on the load balancer's group.
// ---------------------------------------------------------------------------------------------

/** Where a rule lets traffic in from, when that is "anywhere"; undefined otherwise or unknown. */
function worldSource(props: Record<string, any>): string | undefined {
    const prefix = props.remoteIpPrefix;
    if (isUnknown(prefix)) return undefined;
    if (str(prefix) !== undefined) return isEverywhere(prefix) ? prefix.trim() : undefined;
    const group = props.remoteGroupId;
    if (isUnknown(group) || str(group) !== undefined) return undefined;
    return "any source (no remoteIpPrefix and no remoteGroupId)";
}

type Exposure =
    | { kind: "web"; text: string }
    | { kind: "ssh"; text: string }
    | { kind: "other"; text: string };

/** What a rule opens; undefined when protocol or ports are not known yet. */
function exposureOf(props: Record<string, any>): Exposure | undefined {
    if ([props.protocol, props.portRangeMin, props.portRangeMax].some(isUnknown)) return undefined;
    const raw = (str(props.protocol) ?? "").toLowerCase();
    if (raw === "" || raw === "any") return { kind: "other", text: "every protocol and port" };
    const protocol = raw === "6" ? "tcp" : raw === "17" ? "udp" : raw;
    const label = protocol.toUpperCase();
    if (protocol !== "tcp" && protocol !== "udp") return { kind: "other", text: label };
    const min = portNumber(props.portRangeMin);
    const max = portNumber(props.portRangeMax) ?? min;
    if (min === undefined || max === undefined) return { kind: "other", text: `every ${label} port` };
    if (min !== max) return { kind: "other", text: `${label} ports ${min}-${max}` };
    const text = `${label} port ${min}`;
    if (protocol === "tcp" && WEB_PORTS.includes(min)) return { kind: "web", text };
    if (protocol === "tcp" && min === SSH_PORT) return { kind: "ssh", text: `${text} (SSH)` };
    return { kind: "other", text };
}

function hasSshOptIn(props: Record<string, any>): boolean {
    const description = props.description;
    return typeof description === "string" && description.includes(SSH_OPT_IN_MARKER);
}

/**
 * Resource check. A world-open ingress rule (0.0.0.0/0, ::/0, or no source at all) is allowed
 * only for TCP 80 or 443, or TCP 22 whose description carries the allowSshFromAnywhere opt-in.
 * Which group such a rule sits on is checked by `checkWorldIngressOnlyOnLb`, once ids resolve.
 */
export function checkWorldOpenIngress(r: ResourceDescription): string[] {
    if (r.type !== TYPES.secGroupRule || r.props.direction !== "ingress") return [];
    const source = worldSource(r.props);
    const exposure = exposureOf(r.props);
    if (source === undefined || exposure === undefined) return [];
    if (exposure.kind === "web") return [];
    if (exposure.kind === "ssh") {
        if (hasSshOptIn(r.props)) return [];
        return [
            `Security group rule ${quote(r.name)} opens ${exposure.text} to ${source} without the ` +
                `${SSH_OPT_IN_MARKER} opt-in: restrict remoteIpPrefix to the admin CIDRs, or set ` +
                `pycluster:${SSH_OPT_IN_MARKER} true (the program then marks the rule's description).`,
        ];
    }
    return [
        `Security group rule ${quote(r.name)} opens ${exposure.text} to ${source}: only TCP 80 and 443 ` +
            `may be open to the world, and only on the load balancer's group; give it a remoteIpPrefix ` +
            `or a remoteGroupId.`,
    ];
}

/**
 * Stack check. Every world-open ingress rule that `checkWorldOpenIngress` lets through (web
 * ports, opted-in SSH) must belong to the load balancer's group (name ending "-lb"), or to no
 * group this stack knows of at all.
 */
export function checkWorldIngressOnlyOnLb(resources: readonly ResourceDescription[]): Violation[] {
    const violations: Violation[] = [];
    for (const rule of resources) {
        if (rule.type !== TYPES.secGroupRule || rule.props.direction !== "ingress") continue;
        const source = worldSource(rule.props);
        const exposure = exposureOf(rule.props);
        if (source === undefined || exposure === undefined || exposure.kind === "other") continue;
        const group = resolveReference(rule, "securityGroupId", TYPES.secGroup, resources);
        if (group.kind === "unknown") continue;
        if (group.kind === "found" && isRoleGroup(displayName(group.target), ROLE.loadBalancer)) continue;
        const where = group.kind === "found"
            ? `group ${quote(displayName(group.target))}`
            : `security group ${group.id}, which this stack does not manage`;
        violations.push({
            message:
                `Security group rule ${quote(rule.name)} opens ${exposure.text} to ${source} on ${where}: ` +
                `world-open ingress is allowed only on the load balancer's group (name ending "-lb").`,
            urn: rule.urn,
        });
    }
    return violations;
}

// ---------------------------------------------------------------------------------------------
// Rule 2: app nodes have no public address.
// ---------------------------------------------------------------------------------------------

/**
 * Resource check. App ports ("*-app-*") are not on Ext-Net and ask for no public fixed IP; app
 * instances list no network named Ext-Net and request no floating IP.
 */
export function checkAppNodesPrivate(r: ResourceDescription): string[] {
    const name = displayName(r);
    if (!hasRole(name, ROLE.app)) return [];
    const violations: string[] = [];
    if (r.type === TYPES.port) {
        if (str(r.props.networkId)?.toLowerCase() === PUBLIC_NETWORK.toLowerCase()) {
            violations.push(
                `App port ${quote(name)} is on the public network ${PUBLIC_NETWORK}: app nodes live on ` +
                    `the private network only; the load balancer is their only way in.`,
            );
        }
        for (const fixedIp of list(r.props.fixedIps)) {
            const address = str(record(fixedIp).ipAddress);
            if (address !== undefined && isPublicAddress(address)) {
                violations.push(
                    `App port ${quote(name)} asks for the public address ${address}: app nodes get ` +
                        `private addresses only.`,
                );
            }
        }
    }
    if (r.type === TYPES.instance) {
        for (const network of list(r.props.networks)) {
            if (str(record(network).name)?.toLowerCase() === PUBLIC_NETWORK.toLowerCase()) {
                violations.push(
                    `App instance ${quote(name)} is attached to the public network ${PUBLIC_NETWORK}: app ` +
                        `nodes attach only through their private port.`,
                );
            }
        }
        const floatingIps = [r.props.floatingIp, ...list(r.props.networks).map(n => record(n).floatingIp)];
        if (floatingIps.some(ip => str(ip) !== undefined)) {
            violations.push(
                `App instance ${quote(name)} requests a floating IP: only the load balancer has a ` +
                    `public address.`,
            );
        }
    }
    return violations;
}

/**
 * Stack check. A floating IP is associated only with the load balancer's port (name with a "-lb"
 * word), and no app port or app instance ended up with a public address (e.g. attached to Ext-Net
 * by uuid, which the resource check cannot see).
 */
export function checkPublicAddressesOnlyOnLb(resources: readonly ResourceDescription[]): Violation[] {
    const violations: Violation[] = [];
    for (const association of resources) {
        if (association.type !== TYPES.floatingIpAssociate) continue;
        const port = resolveReference(association, "portId", TYPES.port, resources);
        if (port.kind === "unknown") continue;
        if (port.kind === "found" && hasRole(displayName(port.target), ROLE.loadBalancer)) continue;
        const target = port.kind === "found"
            ? `port ${quote(displayName(port.target))}`
            : `port ${port.id}, which this stack does not manage`;
        violations.push({
            message:
                `Floating IP association ${quote(association.name)} targets ${target}: only the load ` +
                `balancer's port may have a floating IP.`,
            urn: association.urn,
        });
    }
    for (const r of resources) {
        const name = displayName(r);
        if (!hasRole(name, ROLE.app)) continue;
        let addresses: unknown[] = [];
        if (r.type === TYPES.port) addresses = list(r.props.allFixedIps);
        if (r.type === TYPES.instance) {
            addresses = [
                r.props.accessIpV4,
                r.props.accessIpV6,
                ...list(r.props.networks).flatMap(n => [record(n).fixedIpV4, record(n).fixedIpV6]),
            ];
        }
        const kind = r.type === TYPES.port ? "port" : "instance";
        const seen = new Set<string>();
        for (const value of addresses) {
            const address = str(value);
            if (address === undefined || seen.has(address) || !isPublicAddress(address)) continue;
            seen.add(address);
            violations.push({
                message: `App ${kind} ${quote(name)} has the public address ${address}: app nodes must ` +
                    `be reachable only through the load balancer.`,
                urn: r.urn,
            });
        }
    }
    return violations;
}

// ---------------------------------------------------------------------------------------------
// Rule 3: every instance has an explicit security group.
// ---------------------------------------------------------------------------------------------

/**
 * Resource check. An instance attaches only through ports (`networks[].port`) and never names the
 * "default" group (OVH's allows everything); a port has at least one security group and does not
 * switch them off.
 */
export function checkExplicitSecurityGroups(r: ResourceDescription): string[] {
    const violations: string[] = [];
    const name = displayName(r);
    if (r.type === TYPES.instance) {
        const networks = r.props.networks;
        if (!isUnknown(networks)) {
            const entries = list(networks);
            if (entries.length === 0) {
                violations.push(
                    `Instance ${quote(name)} lists no networks: it would be attached to the project's ` +
                        `networks with the default security group; attach it through a port.`,
                );
            }
            entries.forEach((entry, index) => {
                const network = record(entry);
                if (isUnknown(entry) || isUnknown(network.port) || str(network.port) !== undefined) return;
                const label = str(network.name) ?? str(network.uuid) ?? `#${index}`;
                violations.push(
                    `Instance ${quote(name)} attaches to network ${label} without a port: OpenStack then ` +
                        `creates a port in the default security group; attach it through networks[].port.`,
                );
            });
        }
        if (list(r.props.securityGroups).some(g => g === "default")) {
            violations.push(
                `Instance ${quote(name)} uses the "default" security group, which allows everything on ` +
                    `OVH: attach the role's own group to its port instead.`,
            );
        }
    }
    if (r.type === TYPES.port) {
        if (r.props.noSecurityGroups === true) {
            violations.push(`Port ${quote(name)} sets noSecurityGroups: every port needs its role's group.`);
        }
        const groups = r.props.securityGroupIds;
        if (!isUnknown(groups) && list(groups).length === 0) {
            violations.push(
                `Port ${quote(name)} has no securityGroupIds: OpenStack would put it in the default ` +
                    `group, which allows everything on OVH.`,
            );
        }
    }
    return violations;
}

/**
 * Stack check. Every port an instance attaches is one of this stack's ports (so the port check
 * above covered it), and every security group of a port is one of this stack's groups (so it is
 * not OVH's default group, looked up by id).
 */
export function checkSecurityGroupsManaged(resources: readonly ResourceDescription[]): Violation[] {
    const violations: Violation[] = [];
    for (const r of resources) {
        if (r.type === TYPES.instance) {
            const ports = list(r.props.networks).map(n => record(n).port);
            for (const id of unmanagedIds(r, "networks", ports, TYPES.port, resources)) {
                violations.push({
                    message:
                        `Instance ${quote(displayName(r))} attaches port ${id}, which this stack does not ` +
                        `manage: its security groups cannot be checked; create the port in the program.`,
                    urn: r.urn,
                });
            }
        }
        if (r.type === TYPES.port) {
            const groups = list(r.props.securityGroupIds);
            for (const id of unmanagedIds(r, "securityGroupIds", groups, TYPES.secGroup, resources)) {
                violations.push({
                    message:
                        `Port ${quote(displayName(r))} uses security group ${id}, which this stack does not ` +
                        `manage (OVH's default group allows everything): use the role's group from the program.`,
                    urn: r.urn,
                });
            }
        }
    }
    return violations;
}

/**
 * The known ids among `ids` that are not the `id` of a resource of `type` in the stack. Targets
 * reached through `prop`'s dependencies whose id is not among `ids` (outputs without an `id`)
 * account for as many unmatched ids, so a reference is only reported when nothing explains it.
 */
function unmanagedIds(
    from: ResourceDescription,
    prop: string,
    ids: unknown[],
    type: string,
    resources: readonly ResourceDescription[],
): string[] {
    const managed = new Set(resources.filter(r => r.type === type).map(r => r.props.id));
    const unmatched = ids.filter((id): id is string => str(id) !== undefined && !managed.has(id));
    const explained = dependenciesOfType(from, prop, type, resources).filter(t => !ids.includes(t.props.id));
    return unmatched.slice(explained.length);
}

// ---------------------------------------------------------------------------------------------
// Rule 4: production stacks.
// ---------------------------------------------------------------------------------------------

/**
 * Stack check. A production stack (named prod/production, or pycluster:production true) runs at
 * least two app instances and no self-signed certificate (the program creates one only in
 * tlsMode selfSigned; the placeholder nginx starts with in letsencrypt mode, until certbot's
 * replaces it on the host, is not what the site serves).
 */
export function checkProductionStack(
    resources: readonly ResourceDescription[],
    stackName: string,
    productionConfig: boolean,
): Violation[] {
    if (!isProductionStack(stackName, productionConfig)) return [];
    const violations: Violation[] = [];
    const appNodes = resources.filter(r => r.type === TYPES.instance && hasRole(displayName(r), ROLE.app));
    if (appNodes.length < MIN_PRODUCTION_APP_NODES) {
        violations.push({
            message:
                `Production stack ${quote(stackName)} has ${appNodes.length} app instance(s): at least ` +
                `${MIN_PRODUCTION_APP_NODES} are required so one can fail or roll out while the other ` +
                `serves (pycluster:appNodeCount).`,
        });
    }
    const placeholder = (r: ResourceDescription) => record(record(r.props).subject).organization === ACME_PLACEHOLDER_ORGANIZATION;
    for (const cert of resources.filter(r => r.type === TYPES.selfSignedCert && !placeholder(r))) {
        violations.push({
            message:
                `Production stack ${quote(stackName)} uses the self-signed certificate ${quote(cert.name)}: ` +
                `set pycluster:tlsMode to letsencrypt or provided.`,
            urn: cert.urn,
        });
    }
    return violations;
}

// ---------------------------------------------------------------------------------------------
// Rule 5: images pinned, or a change of image name ignored.
// ---------------------------------------------------------------------------------------------

/**
 * Resource check. An instance boots from an image id (`imageId`, or a block device sourced from
 * an image uuid), or from `imageName` with the resource option ignoreChanges: ["imageName"]:
 * otherwise a renamed or refreshed OVH image replaces the instance and wipes its disk.
 */
export function checkImagePinned(r: ResourceDescription): string[] {
    if (r.type !== TYPES.instance) return [];
    const { imageId, imageName } = r.props;
    if (isUnknown(imageId) || str(imageId) !== undefined) return [];
    const fromImageVolume = list(r.props.blockDevices).some(device => {
        const d = record(device);
        return d.sourceType === "image" && (isUnknown(d.uuid) || str(d.uuid) !== undefined);
    });
    if (fromImageVolume) return [];
    const name = displayName(r);
    if (isUnknown(imageName) || str(imageName) !== undefined) {
        if ((r.opts?.ignoreChanges ?? []).includes("imageName")) return [];
        const image = isUnknown(imageName) ? "an image name" : quote(imageName);
        return [
            `Instance ${quote(name)} boots from imageName ${image} without ignoreChanges: ["imageName"]: ` +
                `when OVH renames or refreshes the image, the next up replaces the instance and wipes ` +
                `its disk. Set imageId, or add the imageName to ignoreChanges.`,
        ];
    }
    return [`Instance ${quote(name)} names no image (imageId or imageName).`];
}
