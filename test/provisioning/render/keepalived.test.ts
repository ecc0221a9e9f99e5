import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { KEEPALIVED_INTERFACE_TOKEN } from "../../../provisioning/hostContract";
import { KeepalivedOptions, PAIR_HEALTH_TIMING, renderKeepalivedConf, virtualRouterId } from "../../../provisioning/render/keepalived";
import { missingTools, py, sh, tempDir } from "../../support/hostTools";

const BASE: KeepalivedOptions = {
    cluster: "pycluster-test",
    virtualRouterId: virtualRouterId("pycluster-test"),
    interface: "eth0",
    ownAddress: "10.20.0.2",
    peerAddress: "10.20.0.125",
    vip: "10.20.0.126",
    prefixLength: 24,
};
const FULL: KeepalivedOptions = {
    ...BASE,
    health: { script: "/usr/bin/python3 /usr/local/lib/pycluster/hostctl.pyz vrrp-check --address 10.20.0.2", ...PAIR_HEALTH_TIMING },
    notifyScript: "/usr/bin/python3 /usr/local/lib/pycluster/hostctl.pyz vrrp-notify",
};

test("unicast VRRP between the two LBs, both BACKUP without preemption, one advert a second", () => {
    const text = renderKeepalivedConf(FULL);
    for (const line of ["state BACKUP", "nopreempt", "advert_int 1", "unicast_src_ip 10.20.0.2", "10.20.0.126/24 dev eth0", "garp_master_delay 1", "garp_master_refresh 10"]) {
        assert.match(text, new RegExp(`^\\s*${line.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}$`, "m"), line);
    }
    assert.match(text, /unicast_peer \{\n\s+10\.20\.0\.125\n\s+\}/);
    assert.doesNotMatch(text, /state MASTER/);
});

test("the health check makes an unhealthy holder FAULT, checked every 2 s, and notify records the state", () => {
    const text = renderKeepalivedConf(FULL);
    assert.match(text, /vrrp_script pycluster_lb_health \{\n\s+script "\/usr\/bin\/python3 [^"]+vrrp-check[^"]*"\n\s+interval 2\n\s+timeout 10\n\s+weight 0\n\s+fall 3\n\s+rise 2\n\}/);
    assert.match(text, /track_script \{\n\s+pycluster_lb_health\n\s+\}/);
    assert.match(text, /notify "\/usr\/bin\/python3 [^"]+vrrp-notify"/);
    assert.match(text, /enable_script_security/);
});

test("the bootstrap configuration has the addresses only: no health script, no notify", () => {
    const text = renderKeepalivedConf(BASE);
    assert.doesNotMatch(text, /vrrp_script|track_script|notify/);
    assert.match(text, /virtual_ipaddress/);
});

test("the virtual router id is stable for a stack and in VRRP's range", () => {
    assert.equal(virtualRouterId("pycluster-prod"), virtualRouterId("pycluster-prod"));
    for (const name of ["a", "pycluster-prod", "pycluster-staging", "x".repeat(200)]) {
        const id = virtualRouterId(name);
        assert.ok(Number.isInteger(id) && id >= 1 && id <= 255, `${name}: ${id}`);
    }
});

test("bad values are refused before anything is rendered", () => {
    assert.throws(() => renderKeepalivedConf({ ...BASE, peerAddress: BASE.ownAddress }), /must differ/);
    assert.throws(() => renderKeepalivedConf({ ...BASE, vip: "10.20.0.300x" }), /vip/);
    assert.throws(() => renderKeepalivedConf({ ...BASE, interface: "eth0; rm" }), /interface/);
    assert.throws(() => renderKeepalivedConf({ ...BASE, virtualRouterId: 256 }), /virtualRouterId/);
    assert.throws(() => renderKeepalivedConf({ ...FULL, notifyScript: 'x" ; evil' }), /script/);
    assert.doesNotThrow(() => renderKeepalivedConf({ ...BASE, interface: KEEPALIVED_INTERFACE_TOKEN }));
});

/** The first interface of this machine with an IPv4 address other than loopback (keepalived checks it exists). */
function localInterface(): string | undefined {
    const out = sh("ip", ["-o", "-4", "addr", "show"]).output;
    return py(`print(h.interface_for_address(${JSON.stringify(out)}, ${JSON.stringify(out.split("\n").map(l => l.split(/\s+/)).find(f => f[1] && f[1] !== "lo")?.[3]?.split("/")[0] ?? "")}) or "")`).trim() || undefined;
}

test("keepalived --config-test accepts the rendered file (bootstrap and full) and rejects a broken one", { skip: missingTools(["keepalived"]) }, () => {
    const iface = localInterface();
    assert.ok(iface, "no IPv4 interface besides lo on this machine");
    const dir = tempDir("pyc-keepalived-");
    const check = (text: string) => {
        const file = path.join(dir, "keepalived.conf");
        fs.writeFileSync(file, text);
        return sh("keepalived", ["--config-test", "-f", file]);
    };
    for (const o of [BASE, FULL]) {
        const r = check(renderKeepalivedConf({ ...o, interface: iface }));
        assert.equal(r.code, 0, r.output);
    }
    const broken = check(renderKeepalivedConf({ ...FULL, interface: iface }).replace("advert_int 1", "advert_intx 1"));
    assert.notEqual(broken.code, 0);
    assert.match(broken.output, /advert_intx/);
});

test("hostctl finds the address in what is rendered, so the first push can record whether this LB holds it", () => {
    for (const o of [BASE, FULL]) {
        assert.equal(py(`print(h.configured_vip(${JSON.stringify(renderKeepalivedConf(o))}))`).trim(), o.vip);
    }
    assert.equal(py(`print(h.configured_vip("global_defs {}\\n"))`).trim(), "None");
});
