import * as pulumi from "@pulumi/pulumi";
import * as openstack from "@pulumi/openstack";
import { names, Role, ROLE, SSH_FROM_ANYWHERE_DESCRIPTION, WEB_PORTS } from "../lib/conventions";

export interface ClusterSecurityGroupsArgs {
    region: string;
    /** Where SSH to the load balancer may come from (normalised, distinct). */
    adminCidrs: string[];
    /** Where this `up` runs from, when not an admin network (normalised, none of adminCidrs). */
    deployerCidrs: string[];
    appPort: number;
    /** The LB's private status listener (stub_status). */
    statusPort: number;
    privateCidr: string;
    /** A pair of load balancers (lbCount 2): VRRP and SSH between them. */
    lbPair: boolean;
    /** Exporter and Prometheus ports; the monitoring node's group exists when `node` is set. */
    monitoring: {
        node: boolean;
        ports: { nodeExporter: number; nginxExporter: number; accessLogExporter: number; statsdExporter: number; prometheus: number };
    };
}

interface Rule {
    name: string;
    port: number;
    from: { cidr: string } | { group: openstack.networking.SecGroup };
    description: string;
}

/** A CIDR as a resource name part: 203.0.113.0/24 -> 203-0-113-0-24. */
function cidrLabel(cidr: string): string {
    return cidr.replace(/[./]/g, "-");
}

/**
 * What each role's group admits (the VRRP rule aside): the load balancer's, the app nodes' and the
 * monitoring node's rules, as data. The scrape rules exist only with a monitoring node.
 */
function roleRules(
    args: ClusterSecurityGroupsArgs,
    lb: openstack.networking.SecGroup,
    monitoring: openstack.networking.SecGroup | undefined,
): { lb: Rule[]; app: Rule[]; mon: Rule[] } {
    const ports = args.monitoring.ports;
    const lbRules: Rule[] = [
        { name: "http", port: WEB_PORTS[0], from: { cidr: "0.0.0.0/0" }, description: "HTTP (redirects to HTTPS, ACME)" },
        { name: "https", port: WEB_PORTS[1], from: { cidr: "0.0.0.0/0" }, description: "HTTPS" },
        ...args.adminCidrs.map(cidr => ({
            name: `ssh-${cidrLabel(cidr)}`,
            port: 22,
            from: { cidr },
            description: cidr === "0.0.0.0/0" ? SSH_FROM_ANYWHERE_DESCRIPTION : "SSH from an admin network",
        })),
        ...args.deployerCidrs.map(cidr => ({
            name: `ssh-deployer-${cidrLabel(cidr)}`,
            port: 22,
            from: { cidr },
            description: "SSH from where this update runs (deployerCidrs)",
        })),
        { name: "status", port: args.statusPort, from: { cidr: args.privateCidr }, description: "nginx status, private network only" },
        // The LB holding the public address relays the program's SSH to its peer.
        ...(args.lbPair ? [{ name: "ssh-pair", port: 22, from: { group: lb }, description: "SSH from the other load balancer of the pair (relayed)" }] : []),
    ];
    const appRules: Rule[] = [
        { name: "app", port: args.appPort, from: { group: lb }, description: "app port from the load balancer" },
        { name: "ssh", port: 22, from: { group: lb }, description: "SSH through the load balancer (bastion)" },
        { name: "node-exporter-lb", port: ports.nodeExporter, from: { group: lb }, description: "node exporter, through the bastion" },
        { name: "statsd-exporter-lb", port: ports.statsdExporter, from: { group: lb }, description: "gunicorn metrics, through the bastion" },
    ];
    const monRules: Rule[] = [];
    if (monitoring) {
        const scrape = (name: string, port: number, what: string): Rule => ({ name, port, from: { group: monitoring }, description: `${what}, scraped by Prometheus` });
        lbRules.push(
            scrape("node-exporter", ports.nodeExporter, "node exporter"),
            scrape("nginx-exporter", ports.nginxExporter, "nginx exporter (stub_status)"),
            // Still named and described for mtail, which served this port until 2026-12-05: a rule is
            // immutable, so a new name or text would replace it, creating the new rule before deleting
            // the old, and Neutron refuses a second identical rule (409 SecurityGroupRuleExists).
            scrape("mtail", ports.accessLogExporter, "mtail (access log metrics)"),
        );
        appRules.push(scrape("node-exporter", ports.nodeExporter, "node exporter"), scrape("statsd-exporter", ports.statsdExporter, "gunicorn metrics"));
        monRules.push(
            { name: "ssh", port: 22, from: { group: lb }, description: "SSH through the load balancer (bastion)" },
            { name: "prometheus", port: ports.prometheus, from: { group: lb }, description: "Prometheus, through an SSH tunnel to the load balancer" },
        );
    }
    return { lb: lbRules, app: appRules, mon: monRules };
}

/**
 * Our own groups for each role; nothing uses OVH's `default` group, which
 * admits everything. The load balancer takes 80/443 from anywhere and SSH from
 * the admin networks; app nodes take the app port and SSH from the LB only.
 * Exporters are scraped from the monitoring node's group only (app nodes'
 * also from the LB, the bastion an operator tunnels through); the monitoring
 * node takes SSH and Prometheus from the LB only. No exporter port is ever
 * open to an address range.
 */
export class ClusterSecurityGroups extends pulumi.ComponentResource {
    readonly lb: openstack.networking.SecGroup;
    readonly app: openstack.networking.SecGroup;
    /** The monitoring node's group (monitoringNode on). */
    readonly monitoring?: openstack.networking.SecGroup;

    constructor(name: string, args: ClusterSecurityGroupsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("pycluster:network:ClusterSecurityGroups", name, {}, opts);
        const group = (role: Role, description: string) =>
            new openstack.networking.SecGroup(names.securityGroup(name, role), { name: names.securityGroup(name, role), description, region: args.region }, { parent: this });
        this.lb = group(ROLE.loadBalancer, "pycluster load balancer: HTTP(S) from anywhere, SSH from admin networks");
        this.app = group(ROLE.app, "pycluster app nodes: app port and SSH from the load balancer only");
        this.monitoring = args.monitoring.node ? group(ROLE.monitoring, "pycluster monitoring node: Prometheus and SSH from the load balancer only") : undefined;

        const rules = roleRules(args, this.lb, this.monitoring);
        this.addRules(name, args.region, "lb", this.lb, rules.lb);
        if (args.lbPair) this.addVrrpRule(name, args.region);
        this.addRules(name, args.region, "app", this.app, rules.app);
        if (this.monitoring) this.addRules(name, args.region, "mon", this.monitoring, rules.mon);
        this.registerOutputs({ lbGroupId: this.lb.id, appGroupId: this.app.id, monitoringGroupId: this.monitoring?.id });
    }

    /** One ingress rule per entry, named after what it admits. */
    private addRules(name: string, region: string, role: string, target: openstack.networking.SecGroup, rules: Rule[]): void {
        for (const r of rules) {
            new openstack.networking.SecGroupRule(
                `${name}-${role}-${r.name}`,
                {
                    securityGroupId: target.id,
                    direction: "ingress",
                    ethertype: "IPv4",
                    protocol: "tcp",
                    portRangeMin: r.port,
                    portRangeMax: r.port,
                    remoteIpPrefix: "cidr" in r.from ? r.from.cidr : undefined,
                    remoteGroupId: "group" in r.from ? r.from.group.id : undefined,
                    description: r.description,
                    region,
                },
                // Neutron refuses a rule identical to an existing one but for its description (409),
                // and Pulumi creates a replacement before deleting the old rule: a new description
                // must never replace a rule. Rules are named after what they admit, so a list
                // reordered in the stack changes nothing and no two rules ever trade contents.
                { parent: this, ignoreChanges: ["description"] },
            );
        }
    }

    /** keepalived's adverts (IP protocol 112), between the two LBs only. */
    private addVrrpRule(name: string, region: string): void {
        new openstack.networking.SecGroupRule(
            `${name}-lb-vrrp`,
            { securityGroupId: this.lb.id, direction: "ingress", ethertype: "IPv4", protocol: "vrrp", remoteGroupId: this.lb.id, description: "VRRP between the load balancer pair", region },
            { parent: this, ignoreChanges: ["description"] },
        );
    }
}
