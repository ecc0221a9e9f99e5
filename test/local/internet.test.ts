import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse } from "yaml";
import { acmeDirectoryUrl, renderPebbleConfig, renderRecords, renderResolvConf, trustStoreFiles, zoneOf } from "../../local/internet";
import { publicPlan } from "../../local/names";
import { checkZoneRecord, OvhApiError, recordName } from "../../local/ovhDomain";
import { missingTools, sh, SYSTEM_PYTHON } from "../support/hostTools";

const ROOT = path.join(__dirname, "..", "..");

test("the internet's services sit at the public network's last address; floating IPs stop before it", () => {
    const p = publicPlan("198.18.81.0/24", 6);
    assert.equal(p.servicesIp, "198.18.81.254");
    assert.equal(p.lastFloatingIndex, 253);
    assert.equal(acmeDirectoryUrl(p.servicesIp), "https://198.18.81.254:14000/dir");
});

test("the acme stack points its subnet's resolver and certbot at its local internet's services", () => {
    const doc = parse(fs.readFileSync(path.join(ROOT, "Pulumi.acme.yaml"), "utf8")).config as Record<string, any>;
    const { servicesIp } = publicPlan(doc["pycluster:adminCidrs"][0], 1);
    assert.deepEqual(doc["pycluster:dnsNameservers"], [servicesIp]);
    assert.equal(doc["pycluster:letsencryptServer"], acmeDirectoryUrl(servicesIp));
    assert.equal(doc["pycluster:tlsMode"], "letsencrypt");
});

test("pebble validates HTTP-01 on port 80, as Let's Encrypt does, and serves its API on the services address", () => {
    const c = JSON.parse(renderPebbleConfig({ ip: "198.18.81.254", certFile: "/s/acme.pem", keyFile: "/s/acme.key" })).pebble;
    assert.equal(c.httpPort, 80);
    assert.equal(c.listenAddress, "198.18.81.254:14000");
    assert.equal(c.managementListenAddress, "198.18.81.254:15000");
    assert.deepEqual([c.certificate, c.privateKey], ["/s/acme.pem", "/s/acme.key"]);
});

test("hosts get the internet's CA beside the stock roots, and the subnet's resolvers", () => {
    const files = trustStoreFiles("-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n", "STOCK\n");
    assert.equal(files["/etc/ssl/certs/ca-certificates.crt"], "STOCK\n-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n");
    assert.match(files["/usr/local/share/ca-certificates/pycluster-local-internet.crt"], /CA/);
    assert.equal(renderResolvConf(["198.18.81.254"]).split("\n").filter(l => !l.startsWith("#")).join("\n"), "nameserver 198.18.81.254\n");
});

test("the zone of a name is the longest zone that holds it", () => {
    assert.equal(zoneOf(["pycluster.test", "shop.pycluster.test"], "www.shop.pycluster.test."), "shop.pycluster.test");
    assert.equal(zoneOf(["pycluster.test"], "pycluster.test"), "pycluster.test");
    assert.equal(zoneOf(["pycluster.test"], "www.notpycluster.test"), undefined);
});

test("OVH's zone API refuses a record outside the account's zones, a bad target, type, name or TTL", () => {
    const ok = { zone: "pycluster.test", subdomain: "www", fieldtype: "A", target: "198.18.81.10", ttl: 60 };
    checkZoneRecord(ok, ["pycluster.test"]);
    checkZoneRecord({ ...ok, subdomain: "" }, ["pycluster.test"]);
    const refused = (inputs: Record<string, any>, status: number, re: RegExp) =>
        assert.throws(() => checkZoneRecord(inputs, ["pycluster.test"]), (e: unknown) => e instanceof OvhApiError && e.status === status && re.test(e.message));
    refused({ ...ok, zone: "example.com" }, 404, /This service does not exist/);
    refused({ ...ok, target: "www.example.com" }, 400, /an IPv4 address is required/);
    refused({ ...ok, fieldtype: "AA" }, 400, /Invalid fieldType/);
    refused({ ...ok, subdomain: "www..x" }, 400, /Invalid subDomain/);
    refused({ ...ok, ttl: 30 }, 400, /it shall be >= 60/);
    assert.equal(recordName("pycluster.test", "www"), "www.pycluster.test");
    assert.equal(recordName("pycluster.test", ""), "pycluster.test");
});

test("the internet's DNS answers as an authoritative server: A, NODATA, NXDOMAIN, REFUSED, and every A record of a name", t => {
    const skip = missingTools(["dnslib"]);
    if (skip) return t.skip(skip);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pyc-dns-"));
    const records = path.join(dir, "records.json");
    fs.writeFileSync(
        records,
        renderRecords(["pycluster.test"], [
            { name: "www.pycluster.test", type: "A", value: "198.18.81.10", ttl: 60 },
            { name: "two.pycluster.test", type: "A", value: "198.18.81.10", ttl: 60 },
            { id: "100001", name: "two.pycluster.test", type: "A", value: "198.18.81.11", ttl: 300 },
        ]),
    );
    const code = `import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("d", ${JSON.stringify(path.join(ROOT, "local", "internetDns.py"))})
d = importlib.util.module_from_spec(spec); spec.loader.exec_module(d)
from dnslib import DNSRecord, RCODE, QTYPE
r = d.ZoneFileResolver(${JSON.stringify(records)})
def ask(name, qtype="A"):
    a = r.resolve(DNSRecord.question(name, qtype), None)
    return [RCODE[a.header.rcode], sorted(str(x.rdata) for x in a.rr), [QTYPE[x.rtype] for x in a.auth], a.header.aa]
print(json.dumps([ask("www.pycluster.test"), ask("WWW.pycluster.test."), ask("www.pycluster.test", "AAAA"), ask("nope.pycluster.test"),
                  ask("www.example.com"), ask("two.pycluster.test"), ask("pycluster.test", "SOA")[0:2]]))`;
    const r = sh(SYSTEM_PYTHON, ["-c", code]);
    assert.equal(r.code, 0, r.output);
    const [a, upper, aaaa, nx, outside, two, soa] = JSON.parse(r.output);
    assert.deepEqual(a, ["NOERROR", ["198.18.81.10"], [], 1]);
    assert.deepEqual(upper, a, "names are case-insensitive");
    assert.deepEqual(aaaa, ["NOERROR", [], ["SOA"], 1], "NODATA: the name exists, without that type");
    assert.deepEqual(nx, ["NXDOMAIN", [], ["SOA"], 1]);
    assert.deepEqual(outside.slice(0, 2), ["REFUSED", []], "not our zone: no answer");
    assert.deepEqual(two[1], ["198.18.81.10", "198.18.81.11"], "a record added beside another");
    assert.equal(soa[0], "NOERROR");
});
