import { test } from "node:test";
import assert from "node:assert/strict";
import { addressProblem, FakeNeutron, NeutronError, protocolNumber, subnetProblem } from "../../local/neutron";

test("CIDRs: canonical text only, with neutron-lib's messages", () => {
    assert.equal(subnetProblem("203.0.113.10/32"), undefined);
    assert.equal(subnetProblem("10.0.0.0/8"), undefined);
    assert.equal(subnetProblem(" 203.0.113.10/32"), "' 203.0.113.10/32' is not a valid IP subnet");
    assert.equal(subnetProblem("172.0.0.0/08"), "'172.0.0.0/08' isn't a recognized IP subnet cidr, '172.0.0.0/8' is recommended");
    assert.equal(subnetProblem("10.0.2.0"), "'10.0.2.0' isn't a recognized IP subnet cidr, '10.0.2.0/32' is recommended");
    assert.equal(subnetProblem("10.0.0.0/33"), "'10.0.0.0/33' is not a valid IP subnet");
    assert.equal(addressProblem("213.186.33.99"), undefined);
    assert.equal(addressProblem("213.186.033.99"), "'213.186.033.99' is not a valid IP address");
});

const rule = (o: Record<string, unknown>) => ({ securityGroupId: "sg", direction: "ingress", ethertype: "IPv4", protocol: "tcp", portRangeMin: 22, portRangeMax: 22, ...o });
const RULE = "openstack:networking/secGroupRule:SecGroupRule";

test("a rule identical but for its description is refused with 409", () => {
    const n = new FakeNeutron();
    n.check(RULE, "a", rule({ remoteIpPrefix: "203.0.113.10/32", description: "one" }));
    n.check(RULE, "b", rule({ remoteIpPrefix: "198.51.100.0/24" }));
    assert.throws(() => n.check(RULE, "c", rule({ remoteIpPrefix: "203.0.113.10/32", description: "two" })), (e: unknown) => e instanceof NeutronError && e.status === 409 && /SecurityGroupRuleExists.*as a/.test(e.message));
    assert.throws(() => n.check(RULE, "d", rule({ remoteIpPrefix: " 198.51.100.0/24" })), /Neutron 400: .*is not a valid IP subnet/);
});

test("replacing a rule with one that differs only in its description: 409 unless deleted first", () => {
    const n = new FakeNeutron();
    n.check(RULE, "a", rule({ remoteIpPrefix: "203.0.113.10/32", description: "old" }));
    assert.throws(() => n.check(RULE, "a", rule({ remoteIpPrefix: "203.0.113.10/32", description: "new" }), { replacing: true }), /409/);
    n.check(RULE, "a", rule({ remoteIpPrefix: "203.0.113.10/32", description: "new" }), { replacing: true, deleteBeforeReplace: true });
    // A replacement that changes what the rule admits is no duplicate of itself.
    n.check(RULE, "a", rule({ remoteIpPrefix: "192.0.2.0/24" }), { replacing: true });
    n.forget("a");
    n.check(RULE, "z", rule({ remoteIpPrefix: "192.0.2.0/24" }));
});

test("subnets: CIDR, addresses and resolvers are checked, duplicate resolvers refused", () => {
    const n = new FakeNeutron();
    const SUBNET = "ovh:CloudProject/networkPrivateSubnetV2:NetworkPrivateSubnetV2";
    const ok = { cidr: "10.1.0.0/24", gatewayIp: "10.1.0.1", allocationPools: [{ start: "10.1.0.128", end: "10.1.0.254" }], dnsNameservers: ["213.186.33.99"] };
    n.check(SUBNET, "s", ok);
    assert.throws(() => n.check(SUBNET, "s", { ...ok, cidr: "10.1.0.0/024" }), /isn't a recognized IP subnet cidr/);
    assert.throws(() => n.check(SUBNET, "s", { ...ok, dnsNameservers: ["213.186.33.99", "213.186.33.99"] }), /Duplicate nameserver '213.186.33.99'/);
    assert.throws(() => n.check(SUBNET, "s", { ...ok, dnsNameservers: [" 213.186.33.99"] }), /is not a valid nameserver/);
});

const PORT = "openstack:networking/port:Port";
const port = (o: Record<string, unknown>) => ({ fixedIps: [{ subnetId: "s", ipAddress: "10.0.0.11" }], portSecurityEnabled: true, ...o });

test("allowed address pairs: an address or a canonical CIDR, each once, only with port security", () => {
    const n = new FakeNeutron();
    n.check(PORT, "lb", port({ allowedAddressPairs: [{ ipAddress: "10.0.0.100" }, { ipAddress: "10.0.1.0/28" }] }));
    assert.throws(() => n.check(PORT, "lb", port({ allowedAddressPairs: [{ ipAddress: "10.0.0.0100" }] })), /Neutron 400: .*'10\.0\.0\.0100' is not a valid IP address/);
    assert.throws(() => n.check(PORT, "lb", port({ allowedAddressPairs: [{ ipAddress: "10.0.1.0/028" }] })), /Neutron 400: .*'10\.0\.1\.0\/28' is recommended/);
    assert.throws(() => n.check(PORT, "lb", port({ allowedAddressPairs: [{ ipAddress: "10.0.0.100" }, { ipAddress: "10.0.0.100" }] })), /Neutron 400: Request contains duplicate address pair/);
    assert.throws(
        () => n.check(PORT, "lb", port({ portSecurityEnabled: false, allowedAddressPairs: [{ ipAddress: "10.0.0.100" }] })),
        (e: unknown) => e instanceof NeutronError && e.status === 409 && /Port Security must be enabled/.test(e.message),
    );
    n.check(PORT, "plain", port({ portSecurityEnabled: false })); // no pairs: no port security needed
});

test("rule protocols: Neutron's names or 0-255; a name and its number are the same rule", () => {
    assert.equal(protocolNumber("vrrp"), 112);
    assert.equal(protocolNumber("112"), 112);
    assert.equal(protocolNumber("TCP"), 6);
    assert.equal(protocolNumber(undefined), undefined);
    assert.throws(() => protocolNumber("vrpp"), /Neutron 400: Security group rule protocol vrpp not supported/);
    assert.throws(() => protocolNumber("256"), /not supported/);
    const n = new FakeNeutron();
    n.check(RULE, "vrrp", { securityGroupId: "lb", direction: "ingress", ethertype: "IPv4", protocol: "vrrp", remoteGroupId: "lb" });
    assert.throws(() => n.check(RULE, "vrrp-112", { securityGroupId: "lb", direction: "ingress", ethertype: "IPv4", protocol: "112", remoteGroupId: "lb" }), /409/);
});
