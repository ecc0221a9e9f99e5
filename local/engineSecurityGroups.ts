/**
 * Security groups enforced on the local hosts: each running instance's port's groups become its
 * firewall (local/firewall.ts), with a remote group's members resolved to their addresses; and
 * each instance's port's allowed address pairs become its port security (local/fabric.ts).
 */
import type { LocalCloud } from "./cloud";
import { runInNetns } from "./exec";
import { renderHostFirewall, SecurityRule } from "./firewall";
import type { ResourceRecord } from "./engineState";

/** Applies each running host's security groups as its firewall, from the ports, groups and rules in `all`. */
export async function applySecurityGroups(cloud: LocalCloud, all: ResourceRecord[]): Promise<void> {
    const ports = all.filter(r => r.type === "openstack:networking/port:Port");
    const rules = all.filter(r => r.type === "openstack:networking/secGroupRule:SecGroupRule");
    const members = (groupId: string) => ports.filter(p => (p.outputs.securityGroupIds ?? []).includes(groupId)).map(p => p.host!);
    for (const instance of all.filter(r => r.type === "openstack:compute/instance:Instance")) {
        const host = cloud.hosts().find(h => h.name === instance.host);
        const port = ports.find(p => p.host === instance.outputs.accessIpV4);
        if (host && port) await applyAddressPairs(cloud, host.name, port);
        if (!host?.running || !port) continue;
        const groups: string[] = port.outputs.securityGroupIds ?? [];
        const applicable: SecurityRule[] = rules
            .filter(r => groups.includes(r.outputs.securityGroupId))
            .map(r => ({ ...(r.outputs as SecurityRule), remoteAddresses: r.outputs.remoteGroupId ? members(r.outputs.remoteGroupId) : undefined }));
        await runInNetns(host.netns, ["nft", "-f", "-"], { input: renderHostFirewall(applicable) });
    }
}

/** The port's allowed address pairs on its host's port security, when they changed. */
async function applyAddressPairs(cloud: LocalCloud, host: string, port: ResourceRecord): Promise<void> {
    const pairs: string[] = (port.outputs.allowedAddressPairs ?? []).map((p: { ipAddress: string }) => p.ipAddress);
    if (JSON.stringify(pairs) !== JSON.stringify(cloud.allowedAddressPairs(host))) await cloud.setAllowedAddressPairs(host, pairs);
}
