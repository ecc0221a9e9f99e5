import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { LocalEngine } from "../../local/engine";
import type { Registration } from "../../local/program";

const SERVER_GROUP = "openstack:compute/serverGroup:ServerGroup";
const reg = (type: string, name: string, rawInputs: Record<string, any>): Registration => ({ type, name, rawInputs, options: {} as Registration["options"] });

/** An engine without a cloud: what Nova and Neutron accept is checked before any host is touched. */
async function withEngine(fn: (e: LocalEngine) => Promise<void>): Promise<void> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "engine-"));
    try {
        await fn(new LocalEngine(undefined, { stack: "t", stateDir: dir, preview: false, log: () => undefined }));
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/** A registration the engine refuses is parked (never resolves) and its error recorded. */
async function refusal(e: LocalEngine, r: Registration): Promise<string> {
    const before = e.failures.length;
    void e.mocks().newResource(r);
    for (let i = 0; i < 50 && e.failures.length === before; i++) await new Promise((res) => setTimeout(res, 10));
    assert.equal(e.failures.length, before + 1, `${r.name} was not refused`);
    return e.failures[before].message;
}

test("server groups: recorded with Nova's policies only", () =>
    withEngine(async (e) => {
        const sg = await e.mocks().newResource(reg(SERVER_GROUP, "lb-group", { name: "lb", policies: ["anti-affinity"], region: "GRA11" }));
        assert.equal(sg.id, "os-servergroup-uuid-lb-group");
        assert.deepEqual(sg.state.policies, ["anti-affinity"]);
        assert.match(await refusal(e, reg(SERVER_GROUP, "typo", { name: "x", policies: ["anti_affinity"] })), /Nova 400: .*policies of server group typo/);
        assert.match(await refusal(e, reg(SERVER_GROUP, "two", { name: "x", policies: ["affinity", "anti-affinity"] })), /Nova 400/);
    }));

test("an instance whose scheduler hint names no existing server group is refused as Nova does", () =>
    withEngine(async (e) => {
        const port = await e.mocks().newResource(reg("openstack:networking/port:Port", "lb-port", { fixedIps: [{ subnetId: "s", ipAddress: "10.0.0.11" }] }));
        const group = await e.mocks().newResource(reg(SERVER_GROUP, "lb-group", { name: "lb", policies: ["anti-affinity"] }));
        const instance = (name: string, groupId: string) =>
            reg("openstack:compute/instance:Instance", name, { name, networks: [{ port: port.id }], schedulerHints: [{ group: groupId }], userData: "" });
        assert.match(await refusal(e, instance("lb-a", "no-such-group")), /Nova 404: Instance group no-such-group could not be found/);
        // a known group passes Nova's check: what stops it then is that this engine has no cloud
        assert.match(await refusal(e, instance("lb-b", group.id)), /no cloud to act on/);
    }));

test("a floating-IP association before the gateway exists is refused, as OVH's network refuses it", () =>
    withEngine(async (e) => {
        const r = reg("openstack:networking/floatingIpAssociate:FloatingIpAssociate", "lb-fip-association", { floatingIp: "198.51.100.7", portId: "p1" });
        assert.match(await refusal(e, r), /create the network's gateway first/);
    }));
