import { test } from "node:test";
import assert from "node:assert/strict";
import { defaultEndpoint, endpointMismatch, ENDPOINTS, isRegionName } from "../../config/regions";
import { parse } from "./configFixtures";

/** Keystone of each endpoint, written out here (not read from config/regions.ts, which is what is tested). */
const KEYSTONE = { "ovh-eu": "https://auth.cloud.ovh.net/v3/", "ovh-us": "https://auth.cloud.ovh.us/v3/" } as const;

/** Every kind of region name OVHcloud uses, with the endpoint its projects are managed through. */
const REGIONS: [string, "ovh-eu" | "ovh-us"][] = [
    ["GRA11", "ovh-eu"], ["GRA9", "ovh-eu"], ["SBG5", "ovh-eu"], ["DE1", "ovh-eu"], ["UK1", "ovh-eu"], ["WAW1", "ovh-eu"],
    ["BHS5", "ovh-eu"], ["SGP1", "ovh-eu"], ["SYD1", "ovh-eu"],
    ["EU-WEST-PAR", "ovh-eu"], ["EU-SOUTH-MIL", "ovh-eu"], ["CA-EAST-TOR", "ovh-eu"], ["AP-SOUTH-MUM", "ovh-eu"], ["EU-WEST-LZ-BRU-A", "ovh-eu"],
    ["US-EAST-VA-1", "ovh-us"], ["US-WEST-OR-1", "ovh-us"], ["US-EAST-LZ-NYC-A", "ovh-us"],
];

for (const [region, endpoint] of REGIONS) {
    test(`${region}: usable from config, managed through ${endpoint}, authenticated at ${KEYSTONE[endpoint]}`, () => {
        assert.ok(isRegionName(region));
        assert.equal(defaultEndpoint(region), endpoint);
        const c = parse({ region });
        assert.equal(c.openstack.region, region);
        assert.equal(c.ovh.endpoint, endpoint);
        assert.equal(c.openstack.authUrl, KEYSTONE[endpoint]);
        assert.equal(ENDPOINTS[endpoint].keystone, KEYSTONE[endpoint]);
    });
}

test("Canadian accounts (ovh-ca) manage the non-US regions with the same Keystone as Europe", () => {
    const c = parse({ region: "BHS5", ovhEndpoint: "ovh-ca" });
    assert.equal(c.ovh.endpoint, "ovh-ca");
    assert.equal(c.openstack.authUrl, "https://auth.cloud.ovh.net/v3/");
    assert.equal(endpointMismatch("BHS5", "ovh-ca"), undefined);
});

test("not region names: locations, lower case, free text", () => {
    for (const bad of ["GRA", "gra11", "EU-WEST", "US EAST VA 1", "", "GRA-11-"]) assert.equal(isRegionName(bad), false, bad);
});
