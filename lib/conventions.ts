/**
 * How the program names its resources and marks their intent, in one place:
 * the components build names and markers from here, the configuration applies
 * the production rules from here, and the policy pack reads them back with the
 * same definitions (it never guesses from copies).
 *
 * A resource name is "<project>-<stack>-<role>[-<index>][-<part>]", e.g.
 * "pycluster-prod-app-2-port": the role is one dash-separated word of it.
 */

/** The roles of the cluster's nodes, as the word each one's resources carry in their names. */
export const ROLE = { loadBalancer: "lb", app: "app", monitoring: "mon" } as const;
export type Role = (typeof ROLE)[keyof typeof ROLE];

/** Resource names, built the one way the policy pack reads them back. */
export const names = {
    cluster: (project: string, stack: string) => `${project}-${stack}`,
    loadBalancer: (cluster: string) => `${cluster}-${ROLE.loadBalancer}`,
    /** The second load balancer of a pair (lbCount 2); the first keeps loadBalancer's name. */
    secondLoadBalancer: (cluster: string) => `${cluster}-${ROLE.loadBalancer}-2`,
    appTier: (cluster: string) => `${cluster}-${ROLE.app}`,
    appNode: (appTier: string, index: number) => `${appTier}-${index}`,
    monitoring: (cluster: string) => `${cluster}-${ROLE.monitoring}`,
    /** A role's security group: "<cluster>-<role>". */
    securityGroup: (cluster: string, role: Role) => `${cluster}-${role}`,
};

/** Whether a resource's name belongs to a role: the role is one of its dash-separated words. */
export function hasRole(name: string, role: Role): boolean {
    return name.split("-").includes(role);
}

/** Whether a security group's name is a role's own group (it ends with the role word). */
export function isRoleGroup(name: string, role: Role): boolean {
    return name.endsWith(`-${role}`);
}

/** A stack named like a role would make every name of the stack look like that role's. */
export function stackNameClash(stack: string): Role | undefined {
    return (Object.values(ROLE) as string[]).find(role => stack.split("-").includes(role)) as Role | undefined;
}

/** OVH's public network: only the load balancer's floating IP comes from it. */
export const PUBLIC_NETWORK = "Ext-Net";

/** The only ports that may be open to the world, and only on the load balancer's group. */
export const WEB_PORTS: readonly number[] = [80, 443];

/** The opt-in that allows SSH from anywhere; a world-open SSH rule carries it in its description. */
export const SSH_OPT_IN_MARKER = "allowSshFromAnywhere";
export const SSH_FROM_ANYWHERE_DESCRIPTION = `SSH from anywhere (${SSH_OPT_IN_MARKER})`;

/** Stacks with these names follow the production rules whatever their `production` setting says. */
export const PRODUCTION_STACK_NAMES: readonly string[] = ["prod", "production"];

export function isProductionStack(stack: string, productionSetting: boolean): boolean {
    return productionSetting || PRODUCTION_STACK_NAMES.includes(stack.trim().toLowerCase());
}

/** A production stack keeps serving while one app node fails or rolls out. */
export const MIN_PRODUCTION_APP_NODES = 2;

/** The organization of the certificate the LB serves until Let's Encrypt issues one (not a self-signed site). */
export const ACME_PLACEHOLDER_ORGANIZATION = "pycluster placeholder until Let's Encrypt";
/** The organization of the certificate of a self-signed site (tlsMode selfSigned). */
export const SELF_SIGNED_ORGANIZATION = "pycluster self-signed";
