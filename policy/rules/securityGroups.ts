/** Rule 3: every instance has an explicit security group that this stack manages. */
import { ResourceDescription, Violation, TYPES, displayName, isUnknown, str, list, record, quote, dependenciesOfType } from "./resources";


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
