/** Rule 2: app nodes have no public address; only the load balancer has one. */
import { hasRole, PUBLIC_NETWORK, ROLE } from "../../lib/conventions";
import { isPublicAddress } from "../../lib/ipv4";
import { ResourceDescription, Violation, TYPES, displayName, str, list, record, quote, resolveReference } from "./resources";


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
