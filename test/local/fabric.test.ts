import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { renderHostFirewall, SecurityRule } from "../../local/firewall";
import { renderFabric } from "../../local/fabric";
import { renderRouterNat, ensureConntrackCapacity } from "../../local/routerNat";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

/** `nft -c` parses a ruleset against the kernel without applying it (root only; skipped otherwise). */
function nftAccepts(ruleset: string): boolean | undefined {
    if (process.getuid?.() !== 0) return undefined;
    const r = spawnSync("nft", ["-c", "-f", "-"], { input: ruleset, encoding: "utf8" });
    if (r.error) return undefined;
    if (r.status !== 0) console.log(r.stderr);
    return r.status === 0;
}

const ingress = (o: Partial<SecurityRule>): SecurityRule => ({ direction: "ingress", ethertype: "IPv4", ...o });

test("security groups: VRRP reaches a host only through a rule for vrrp or 112", () => {
    const none = renderHostFirewall([ingress({ protocol: "tcp", portRangeMin: 80, portRangeMax: 80, remoteIpPrefix: "0.0.0.0/0" })]);
    assert.doesNotMatch(none, /l4proto 112/);
    assert.match(none, /policy drop;/);
    for (const protocol of ["vrrp", "112"]) {
        const fw = renderHostFirewall([ingress({ protocol, remoteAddresses: ["10.0.0.12"] })]);
        assert.match(fw, /meta l4proto 112 ip saddr \{ 10\.0\.0\.12 \} accept/, protocol);
    }
    assert.match(renderHostFirewall([ingress({ protocol: "6", portRangeMin: 22, portRangeMax: 22 })]), /meta l4proto tcp tcp dport 22 accept/);
    assert.notEqual(nftAccepts(renderHostFirewall([ingress({ protocol: "vrrp", remoteAddresses: ["10.0.0.12"] })])), false);
});

test("port security: only the fixed address and the allowed pairs leave a port, IPv4 and ARP", () => {
    const fabric = renderFabric("pycluster_fabric_t", [{ veth: "t-h1p", allowed: ["10.0.0.11", "10.0.0.100"] }, { veth: "t-h2p", allowed: ["10.0.0.12"] }], []);
    assert.match(fabric, /iifname "t-h1p" ether type arp arp saddr ip != \{ 10\.0\.0\.11, 10\.0\.0\.100 \} counter drop/);
    assert.match(fabric, /iifname "t-h1p" ether type ip ip saddr != \{ 10\.0\.0\.11, 10\.0\.0\.100 \} counter drop/);
    assert.match(fabric, /iifname "t-h2p" ether type ip ip saddr != \{ 10\.0\.0\.12 \} counter drop/);
    assert.match(fabric, /type filter hook prerouting priority 0; policy accept;/);
    assert.notEqual(nftAccepts(fabric), false);
});

test("a VRRP cut drops only protocol 112 between the two ports, both ways", () => {
    const fabric = renderFabric("pycluster_fabric_t", [], [{ a: { veth: "t-h1p", ip: "10.0.0.11" }, b: { veth: "t-h2p", ip: "10.0.0.12" } }]);
    assert.match(fabric, /iifname "t-h1p" ip protocol 112 ip daddr \{ 10\.0\.0\.12, 224\.0\.0\.18 \} counter drop/);
    assert.match(fabric, /iifname "t-h2p" ip protocol 112 ip daddr \{ 10\.0\.0\.11, 224\.0\.0\.18 \} counter drop/);
    assert.equal(fabric.match(/drop/g)?.length, 2);
    assert.notEqual(nftAccepts(fabric), false);
});

test("the router NATs each floating IP 1:1 and forwards nothing but NATed connections", () => {
    const nat = renderRouterNat([{ publicIp: "198.51.100.20", privateIp: "10.0.0.100" }]);
    assert.match(nat, /iifname "eth1" ip daddr 198\.51\.100\.20 dnat to 10\.0\.0\.100/);
    assert.match(nat, /type filter hook forward priority 0; policy drop;\n\s+ct status dnat accept/);
    assert.notEqual(nftAccepts(nat), false);
});

test("with the gateway, the router masquerades the subnet's own connections out (SNAT) and forwards their replies, nothing else", () => {
    const nat = renderRouterNat([{ publicIp: "198.51.100.20", privateIp: "10.0.0.100" }], "10.0.0.0/24");
    assert.match(nat, /type nat hook postrouting priority srcnat; policy accept;\n\s+oifname "eth1" ip saddr 10\.0\.0\.0\/24 masquerade/);
    assert.match(nat, /ct status dnat accept\n\s+iifname "eth0" oifname "eth1" ip saddr 10\.0\.0\.0\/24 accept\n\s+ct status snat accept\n\s+\}/);
    assert.doesNotMatch(renderRouterNat([{ publicIp: "198.51.100.20", privateIp: "10.0.0.100" }]), /masquerade|snat/, "without the gateway: no way out");
    assert.notEqual(nftAccepts(nat), false);
});

test("conntrack capacity: raised to the minimum when lower, left alone when higher", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "conntrack-"));
    try {
        const file = path.join(dir, "nf_conntrack_max");
        fs.writeFileSync(file, "65536\n");
        assert.deepEqual(ensureConntrackCapacity(1_048_576, file), { before: 65536, after: 1_048_576 });
        fs.writeFileSync(file, "2097152\n");
        assert.deepEqual(ensureConntrackCapacity(1_048_576, file), { before: 2_097_152, after: 2_097_152 });
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});
