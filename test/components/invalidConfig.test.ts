import { test } from "node:test";
import assert from "node:assert/strict";
import { ConfigError } from "../../config/stackConfig";
import { loadStackFile, ProgramFailure, runProgram, TEST_CREDENTIALS, TEST_SECRET_KEYS } from "../support/programHarness";

/**
 * The real program with a bad stack configuration: it stops before it
 * registers a single resource, naming the key, the value and the fix.
 */
const CASES: [string, Record<string, string | undefined>, RegExp][] = [
    ["appNodeCount 0", { appNodeCount: "0" }, /pycluster:appNodeCount = 0: must be from 1 to 200/],
    ["vlanId out of range", { vlanId: "5000" }, /pycluster:vlanId = 5000: must be from 2 to 4000/],
    ["vlanId missing", { vlanId: undefined }, /pycluster:vlanId is not set/],
    ["CIDR syntax", { subnetCidr: "10.1.0.0/40" }, /pycluster:subnetCidr = "10.1.0.0\/40": must be an IPv4 network in CIDR notation/],
    ["CIDR without room", { subnetCidr: "10.1.0.0/29", appNodeCount: "3" }, /pycluster:subnetCidr = "10.1.0.0\/29": has room for 2 fixed node addresses/],
    ["public CIDR", { subnetCidr: "100.64.0.0/24" }, /must be a private \(RFC 1918\) range/],
    ["region", { region: "gra11" }, /pycluster:region = "gra11": must be an OpenStack region such as GRA11/],
    ["admin CIDR 0.0.0.0/0 without opt-in", { adminCidrs: '["0.0.0.0/0"]' }, /opens SSH to the whole internet: .* allowSshFromAnywhere/],
    ["admin CIDRs missing", { adminCidrs: undefined }, /pycluster:adminCidrs is not set/],
    ["empty flavor", { lbFlavor: "" }, /pycluster:lbFlavor = "": must be an OVH flavor name/],
    ["empty image", { image: "" }, /pycluster:image = "": must name an image/],
    ["app port", { appPort: "70000" }, /pycluster:appPort = 70000: must be from 1024 to 65535/],
    ["lbMethod", { lbMethod: "fastest" }, /pycluster:lbMethod = "fastest": must be one of least_conn, round_robin, ip_hash/],
    ["missing OpenStack password", { openstackPassword: undefined }, /pycluster:openstackPassword is not set: .*\(or the environment variable OS_PASSWORD\)/],
    ["plain-text secret", { ovhApplicationSecret: "visible" }, /pycluster:ovhApplicationSecret is stored in plain text: it is a secret/],
    ["worker settings below the target", { gunicornWorkers: "1", gunicornWorkerConnections: "1000", targetConcurrency: "50000" }, /bound by gunicorn worker_connections/],
    ["missing app directory", { appDir: "/does/not/exist", appModule: "app:application" }, /pycluster:appDir = "\/does\/not\/exist": is not a directory/],
];

for (const [what, overrides, message] of CASES) {
    test(`bad config registers nothing: ${what}`, async () => {
        const config: Record<string, string> = { ...loadStackFile("staging"), ...TEST_CREDENTIALS };
        for (const [k, v] of Object.entries(overrides)) {
            if (v === undefined) delete config[k];
            else config[k] = v;
        }
        const secretKeys = TEST_SECRET_KEYS.filter(k => !(k in overrides) || overrides[k] === undefined);
        await assert.rejects(runProgram({ stack: "staging", config, secretKeys }), (e: unknown) => {
            assert.ok(e instanceof ProgramFailure, String(e));
            assert.ok(e.cause instanceof ConfigError, String(e.cause));
            assert.match(e.message, message);
            assert.equal(e.resources.length, 0, `registered: ${e.resources.map(r => r.name).join(", ")}`);
            return true;
        });
    });
}

test("at least 15 invalid configurations are exercised through the program", () => {
    assert.ok(CASES.length >= 15);
});
