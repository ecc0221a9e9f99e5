/** Rule 4: production stacks run two or more app nodes and no self-signed certificate. */
import { ACME_PLACEHOLDER_ORGANIZATION, hasRole, isProductionStack, MIN_PRODUCTION_APP_NODES, ROLE } from "../../lib/conventions";
import { ResourceDescription, Violation, TYPES, displayName, record, quote } from "./resources";


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
