import { test } from "node:test";
import assert from "node:assert/strict";
import { ACTIVE_LOAD_BALANCERS } from "../../config/capacity";
import { blockSize, parseCidr, parseIpv4 } from "../../lib/ipv4";
import { parse } from "./configFixtures";

test("lbCount defaults to 1: no pair in the network plan", () => {
    const c = parse();
    assert.equal(c.lb.count, 1);
    assert.equal(c.network.pair, undefined);
});

test("a pair's second LB and virtual address sit at the top of the fixed range, below the monitoring node's slot", () => {
    const c = parse({ lbCount: "2", subnetCidr: "10.20.0.0/24", monitoringNode: "true" });
    assert.equal(c.lb.count, 2);
    assert.deepEqual(c.network.pair, { secondLbIp: "10.20.0.125", vip: "10.20.0.126" });
    assert.equal(c.network.lbIp, "10.20.0.2", "the first LB keeps its address");
    assert.equal(c.network.monitoringIp, "10.20.0.127");
});

for (const [cidr, apps] of [["10.20.0.0/24", 122], ["10.20.0.0/28", 2], ["10.20.0.0/26", 26]] as const) {
    test(`pair addresses collide with nothing (${cidr}, ${apps} app nodes, the most it holds)`, () => {
        const c = parse({ lbCount: "2", subnetCidr: cidr, appNodeCount: String(apps), monitoringNode: "true" });
        const n = c.network;
        const fixed = [n.gatewayIp, n.lbIp, n.pair!.secondLbIp, n.pair!.vip, n.monitoringIp!, ...n.appIps];
        assert.equal(new Set(fixed).size, fixed.length, `duplicates in ${fixed.join(", ")}`);
        const pool = parseIpv4(n.allocationPool.start)!;
        for (const a of fixed) assert.ok(parseIpv4(a)! < pool, `${a} is inside the DHCP pool from ${n.allocationPool.start}`);
        const net = parseCidr(cidr)!;
        assert.ok(blockSize(net) > 0);
    });
}

test("one more app node than a pair's subnet holds is refused", () => {
    assert.throws(() => parse({ lbCount: "2", subnetCidr: "10.20.0.0/28", appNodeCount: "3" }), /subnetCidr/);
    assert.doesNotThrow(() => parse({ lbCount: "2", subnetCidr: "10.20.0.0/28", appNodeCount: "2" }));
});

test("the capacity model counts one active LB: a pair changes neither the ceiling, the rates nor the overload limits", () => {
    assert.equal(ACTIVE_LOAD_BALANCERS, 1);
    const one = parse({ targetConcurrency: "50000" });
    const two = parse({ targetConcurrency: "50000", lbCount: "2" });
    assert.deepEqual(two.capacity, one.capacity);
    assert.deepEqual(two.rates, one.rates);
    assert.deepEqual(two.overload, one.overload);
    assert.equal(two.lb.workerProcesses, one.lb.workerProcesses);
});

test("a pair with provided TLS is accepted (the same certificate goes to both LBs)", () => {
    const cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
    const key = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----";
    const c = parse({ lbCount: "2", tlsMode: "provided", tlsCertificate: cert, tlsPrivateKey: key });
    assert.equal(c.lb.count, 2);
});
