/** Rule 1: no ingress from anywhere, except TCP 80/443 (and SSH on opt-in) on the load balancer's group. */
import { isRoleGroup, ROLE, SSH_OPT_IN_MARKER, WEB_PORTS } from "../../lib/conventions";
import { isEverywhere } from "../../lib/ipv4";
import { ResourceDescription, Violation, TYPES, SSH_PORT, displayName, isUnknown, str, portNumber, quote, resolveReference } from "./resources";


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
