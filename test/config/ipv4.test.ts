import { test } from "node:test";
import assert from "node:assert/strict";
import { blockSize, formatIpv4, isPrivateCidr, nthAddress, overlaps, parseCidr, parseIpv4 } from "../../config/ipv4";

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
    assert.equal(nthAddress(c, 1), "192.168.4.1");
    assert.equal(nthAddress(c, 1023), "192.168.7.255");
    assert.throws(() => nthAddress(c, 1024), RangeError);
});

test("overlap and RFC 1918 membership", () => {
    assert.ok(overlaps(parseCidr("10.0.0.0/8")!, parseCidr("10.5.0.0/16")!));
    assert.ok(overlaps(parseCidr("10.5.0.0/16")!, parseCidr("10.0.0.0/8")!));
    assert.ok(!overlaps(parseCidr("10.0.0.0/24")!, parseCidr("10.0.1.0/24")!));
    assert.ok(isPrivateCidr(parseCidr("172.20.0.0/16")!));
    assert.ok(!isPrivateCidr(parseCidr("172.32.0.0/16")!));
    assert.ok(!isPrivateCidr(parseCidr("10.0.0.0/7")!));
});
