import { test } from "node:test";
import assert from "node:assert/strict";
import { addressAt, blockSize, formatIpv4, isEverywhere, isPrivateCidr, isPublicAddress, isUsableAddress, overlaps, parseCidr, parseIpv4 } from "../../lib/ipv4";

test("parses and formats dotted quads, rejecting out-of-range octets and leading zeros", () => {
    assert.equal(formatIpv4(parseIpv4("10.1.2.3")!), "10.1.2.3");
    assert.equal(parseIpv4("255.255.255.255"), 0xffffffff);
    for (const bad of ["256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "a.b.c.d", ""]) assert.equal(parseIpv4(bad), undefined, bad);
});

test("CIDRs must have zero host bits", () => {
    assert.equal(parseCidr("10.0.0.0/24")?.text, "10.0.0.0/24");
    assert.equal(parseCidr("10.0.0.5/24"), undefined);
    assert.equal(parseCidr("10.0.0.0/33"), undefined);
    assert.equal(parseCidr("10.0.0.0"), undefined);
    assert.equal(parseCidr("0.0.0.0/0")?.prefixLength, 0);
});

test("address arithmetic inside a block", () => {
    const c = parseCidr("192.168.4.0/22")!;
    assert.equal(blockSize(c), 1024);
    assert.equal(addressAt(c, 1), "192.168.4.1");
    assert.equal(addressAt(c, 1023), "192.168.7.255");
    assert.throws(() => addressAt(c, 1024), RangeError);
});

test("overlap and RFC 1918 membership", () => {
    assert.ok(overlaps(parseCidr("10.0.0.0/8")!, parseCidr("10.5.0.0/16")!));
    assert.ok(overlaps(parseCidr("10.5.0.0/16")!, parseCidr("10.0.0.0/8")!));
    assert.ok(!overlaps(parseCidr("10.0.0.0/24")!, parseCidr("10.0.1.0/24")!));
    assert.ok(isPrivateCidr(parseCidr("172.20.0.0/16")!));
    assert.ok(!isPrivateCidr(parseCidr("172.32.0.0/16")!));
    assert.ok(!isPrivateCidr(parseCidr("10.0.0.0/7")!));
});

test("host bits can be cleared where a network is meant (routes, a local cloud's ranges)", () => {
    assert.equal(parseCidr("10.0.0.5/24", { hostBits: "clear" })?.text, "10.0.0.0/24");
    assert.equal(parseCidr(" 10.0.0.5/24 ", { hostBits: "clear" })?.text, "10.0.0.0/24");
});

test("usable host addresses exclude the network and broadcast addresses", () => {
    const c = parseCidr("10.77.0.0/24")!;
    assert.deepEqual(["10.77.0.0", "10.77.0.1", "10.77.0.254", "10.77.0.255", "10.78.0.1", "x"].map(a => isUsableAddress(c, a)), [false, true, true, false, false, false]);
});

test("public addresses: IPv4 outside private, CGNAT, loopback and link-local; IPv6 global unicast", () => {
    for (const a of ["203.0.113.7", "8.8.8.8", "2001:db8::1"]) assert.equal(isPublicAddress(a), true, a);
    for (const a of ["10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "127.0.0.1", "169.254.1.1", "0.0.0.0", "fe80::1", "::1", "not an address"]) assert.equal(isPublicAddress(a), false, a);
    assert.equal(isEverywhere("0.0.0.0/0"), true);
    assert.equal(isEverywhere("::/0"), true);
    assert.equal(isEverywhere("203.0.113.0/24"), false);
});
