/**
 * The account a stack is deployed with: the Public Cloud project, its region,
 * the OVH API endpoint and credentials, the OpenStack user. Credentials may
 * come from the environment (config/reader.ts: ENV_FALLBACK).
 */
import type { Reader } from "./reader";
import { defaultEndpoint, endpointMismatch, ENDPOINT_NAMES, ENDPOINTS, isRegionName, OvhEndpoint } from "./regions";
import { Secret } from "./secret";
import type { StackConfig } from "./types";

export function readAccess(r: Reader): Pick<StackConfig, "ovh" | "openstack"> {
    const serviceName = r.required("serviceName", "the Public Cloud project id (32 hex characters) is required");
    if (serviceName && !/^[0-9a-f]{32}$/.test(serviceName)) {
        r.fail("serviceName", serviceName, "must be the Public Cloud project id: 32 lowercase hex characters (OVH Control Panel > Public Cloud > project)");
    }
    const region = r.string("region").trim();
    if (!isRegionName(region)) {
        const hint = isRegionName(region.toUpperCase()) ? ` (region names are upper case: ${region.toUpperCase()})` : "";
        r.fail("region", region, `must be an OpenStack region such as GRA11, SBG5, BHS5, DE1, UK1, WAW1, EU-WEST-PAR or US-EAST-VA-1 (not a location like GRA)${hint}`);
    }
    // Empty (the default) = the endpoint of the region's accounts; OVH_ENDPOINT when exported.
    const endpointSetting = r.string("ovhEndpoint").trim();
    let endpoint: OvhEndpoint = defaultEndpoint(region);
    if (endpointSetting !== "") {
        if (!(ENDPOINT_NAMES as string[]).includes(endpointSetting)) r.fail("ovhEndpoint", endpointSetting, `must be one of ${ENDPOINT_NAMES.join(", ")} (or empty: from the region)`);
        else endpoint = endpointSetting as OvhEndpoint;
    }
    const mismatch = isRegionName(region) ? endpointMismatch(region, endpoint) : undefined;
    if (mismatch) r.fail("ovhEndpoint", endpoint, mismatch);
    const applicationKey = r.required("ovhApplicationKey", "an OVH API application key is required (https://api.ovh.com/createToken)");
    const applicationSecret = r.secret("ovhApplicationSecret", "the OVH API application secret is required") ?? new Secret("");
    const consumerKey = r.secret("ovhConsumerKey", "the OVH API consumer key is required") ?? new Secret("");
    let authUrl = r.string("openstackAuthUrl").trim();
    if (authUrl === "") authUrl = ENDPOINTS[endpoint].keystone;
    else if (!/^https:\/\/[^\s/]+\/.*$/.test(authUrl)) r.fail("openstackAuthUrl", authUrl, `must be an https:// Keystone URL such as ${ENDPOINTS[endpoint].keystone}`);
    const userName = r.required("openstackUserName", "an OpenStack user of the project is required (Public Cloud > Users & Roles)");
    const password = r.secret("openstackPassword", "the OpenStack user's password is required") ?? new Secret("");
    return {
        ovh: { endpoint, serviceName, applicationKey, applicationSecret, consumerKey },
        openstack: { authUrl, region, tenantId: serviceName, userName, password },
    };
}
