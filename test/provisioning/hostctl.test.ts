import { test } from "node:test";
import assert from "node:assert/strict";
import { renderNginxSite } from "../../provisioning/render/nginx";
import { hostctl, py } from "../support/hostTools";

const site = renderNginxSite({
    appName: "webapp",
    nginxVersion: "1.22.1",
    upstreams: ["10.0.0.3", "10.0.0.4", "10.0.0.5"].map(address => ({ address, port: 8000 })),
    method: "least_conn",
    keepalive: 16,
    keepaliveTimeout: 60,
    connectTimeout: 5,
    readTimeout: 75,
    clientMaxBodySize: "1m",
    serverNames: ["203.0.113.9"],
    hasDomain: false,
    listenBacklog: 4096,
    hstsMaxAge: 0,
    statusListen: { address: "10.0.0.2", port: 8080 },
    statusAllow: ["10.0.0.0/24"],
    nextUpstreamTries: 3,
});

test("upstream state: drain and undrain one server, leaving the others as they are", () => {
    const out = JSON.parse(py(`import json
t = ${JSON.stringify(site)}
a = h.set_server_down(t, "10.0.0.4:8000", True)
b = h.set_server_down(a, "10.0.0.4:8000", False)
print(json.dumps([h.upstream_state(t.encode()), h.upstream_state(a.encode()), h.upstream_state(b.encode()), b == t]))`));
    assert.deepEqual(out[0], { "10.0.0.3:8000": true, "10.0.0.4:8000": true, "10.0.0.5:8000": true });
    assert.deepEqual(out[1], { "10.0.0.3:8000": true, "10.0.0.4:8000": false, "10.0.0.5:8000": true });
    assert.deepEqual(out[2], out[0]);
    assert.equal(out[3], true, "undrain restores the rendered text exactly");
    const missing = py(`try:\n    h.set_server_down(${JSON.stringify(site)}, "10.9.9.9:8000", True)\nexcept h.Failure as e:\n    print(e)`);
    assert.match(missing, /10\.9\.9\.9:8000 is not in the load balancer's upstream/);
});

test("the CLI refuses what it does not know, with a usage message", () => {
    const r = hostctl(["frobnicate"]);
    assert.equal(r.code, 2);
    assert.match(r.output, /invalid choice: 'frobnicate'/);
    const notBundle = hostctl(["kernel"], "hello");
    assert.equal(notBundle.code, 1);
    assert.match(notBundle.output, /hostctl kernel: stdin is not a pycluster bundle/);
});
