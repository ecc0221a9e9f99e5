/**
 * OVHcloud's API endpoints and Public Cloud regions: which endpoint a region
 * belongs to and which Keystone authenticates there. OVHcloud US is a
 * separate company with its own API (ovh-us) and its own Keystone; its regions
 * are never reachable from an EU or CA account, and the reverse.
 */

export type OvhEndpoint = "ovh-eu" | "ovh-ca" | "ovh-us";

export interface EndpointInfo {
    /** OVH API base (what the ovh provider calls for `endpoint`). */
    api: string;
    /** Keystone v3 of the Public Cloud projects of accounts on this endpoint. */
    keystone: string;
}

/** OVH API endpoints (ovh provider docs) and the Keystone of each (OVH "OpenStack API" guides). */
export const ENDPOINTS: Readonly<Record<OvhEndpoint, EndpointInfo>> = {
    "ovh-eu": { api: "https://eu.api.ovh.com/1.0", keystone: "https://auth.cloud.ovh.net/v3/" },
    "ovh-ca": { api: "https://ca.api.ovh.com/1.0", keystone: "https://auth.cloud.ovh.net/v3/" },
    "ovh-us": { api: "https://api.us.ovhcloud.com/1.0", keystone: "https://auth.cloud.ovh.us/v3/" },
};

export const ENDPOINT_NAMES = Object.keys(ENDPOINTS) as OvhEndpoint[];

/**
 * Region names as OpenStack knows them. Older regions are a location code and a
 * number (GRA11, SBG5, BHS5, DE1, UK1, WAW1, SGP1, SYD1); newer ones are dashed:
 * 3-AZ regions (EU-WEST-PAR, EU-SOUTH-MIL), newer 1-AZ regions (CA-EAST-TOR,
 * AP-SOUTH-MUM), Local Zones (EU-WEST-LZ-BRU-A) and OVHcloud US (US-EAST-VA-1,
 * US-WEST-OR-1). New regions keep appearing, so the syntax is checked, not a list.
 */
const CLASSIC = /^[A-Z]{2,5}\d{1,2}$/;
const DASHED = /^[A-Z]{2}(?:-[A-Z0-9]+){2,4}$/;

export function isRegionName(region: string): boolean {
    return CLASSIC.test(region) || DASHED.test(region);
}

/** OVHcloud US regions are named US-… and exist only behind the ovh-us endpoint. */
export function isUsRegion(region: string): boolean {
    return region.startsWith("US-");
}

/** The endpoint a region's projects are managed through when none is set. */
export function defaultEndpoint(region: string): OvhEndpoint {
    return isUsRegion(region) ? "ovh-us" : "ovh-eu";
}

/** Why `endpoint` cannot manage a project in `region` (undefined when it can). */
export function endpointMismatch(region: string, endpoint: OvhEndpoint): string | undefined {
    if (isUsRegion(region) && endpoint !== "ovh-us") return `region ${region} belongs to OVHcloud US: set ovhEndpoint to ovh-us (or leave it empty)`;
    if (!isUsRegion(region) && endpoint === "ovh-us") return `ovh-us accounts have only the US-… regions (US-EAST-VA-1, US-WEST-OR-1); ${region} needs ovh-eu or ovh-ca`;
    return undefined;
}
