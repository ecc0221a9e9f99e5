import { test } from "node:test";
import assert from "node:assert/strict";
import { renderNginxSite } from "../../provisioning/render/nginx";
import * as fs from "fs";
import * as path from "path";
import { hostctl, py, tempDir } from "../support/hostTools";

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

test("bundles: files with their modes; anything else refused", () => {
    const out = JSON.parse(py(`import json
b = b"pycluster-bundle 1\\nfile a.conf 0644 3\\nabc\\nfile tls/k.pem 0600 0\\n\\nend\\n"
files = h.parse_bundle(b)
print(json.dumps({k: [oct(m), c.decode()] for k, (m, c) in files.items()}))`));
    assert.deepEqual(out, { "a.conf": ["0o644", "abc"], "tls/k.pem": ["0o600", ""] });
    for (const bad of ["pycluster-bundle 1\\nfile ../x 0644 1\\nx\\nend\\n", "pycluster-bundle 1\\nfile a 0644 5\\nab\\nend\\n", "hello"]) {
        assert.match(py(`try:\n    h.parse_bundle(b"${bad}")\nexcept (h.Failure, ValueError) as e:\n    print("refused", e)`), /^refused/, bad);
    }
});

test("releases: the newest kept (and the ones asked for), unused venvs and archives go; the listing says which is current", () => {
    const dir = tempDir("pyc-releases-");
    const out = JSON.parse(py(`import json, os
base = ${JSON.stringify(dir)}
p = {"base": base, "releases": base + "/releases", "venvs": base + "/venvs", "current": base + "/current"}
for i, rid in enumerate(["aaaaaaaaaaa1", "aaaaaaaaaaa2", "aaaaaaaaaaa3", "aaaaaaaaaaa4"]):
    d = os.path.join(p["releases"], rid)
    os.makedirs(d)
    os.makedirs(os.path.join(p["venvs"], "v" + str(i % 2)), exist_ok=True)
    os.symlink("../../venvs/v" + str(i % 2), os.path.join(d, ".venv"))
    open(os.path.join(d, h.COMPLETE), "w").close()
    os.utime(os.path.join(d, h.COMPLETE), (1000 + i, 1000 + i))
os.symlink("releases/aaaaaaaaaaa2", p["current"])
removed = h.keep_releases(p, 2, ["aaaaaaaaaaa2"])
print(json.dumps({"removed": sorted(removed), "left": sorted(os.listdir(p["releases"])), "venvs": sorted(os.listdir(p["venvs"])), "listing": h.list_releases(p)}))`));
    assert.deepEqual(out.removed, ["aaaaaaaaaaa1"]);
    assert.deepEqual(out.left, ["aaaaaaaaaaa2", "aaaaaaaaaaa3", "aaaaaaaaaaa4"]);
    assert.deepEqual(out.venvs, ["v0", "v1"]);
    assert.deepEqual(out.listing.map((r: { id: string; current: boolean }) => [r.id, r.current]), [["aaaaaaaaaaa4", false], ["aaaaaaaaaaa3", false], ["aaaaaaaaaaa2", true]]);
    assert.match(out.listing[0].completed, /^1970-01-01T00:16:43Z$/);
});

test("a release's venv is shared by releases with the same requirements (comments and blank lines aside)", () => {
    const a = tempDir("pyc-req-");
    const b = tempDir("pyc-req-");
    fs.writeFileSync(path.join(a, "requirements.txt"), "flask==3.0\n# web\n\nrequests\n");
    fs.writeFileSync(path.join(b, "requirements.txt"), "flask==3.0\nrequests\n");
    const out = JSON.parse(py(`import json\nprint(json.dumps([h.requirements_hash(${JSON.stringify(a)}), h.requirements_hash(${JSON.stringify(b)})]))`));
    assert.deepEqual(out[0], out[1]);
    assert.deepEqual(out[0][1], ["flask==3.0", "requests"]);
});

test("a release that ships a wheelhouse installs from it only (no index); its wheels are part of what decides the venv", () => {
    const a = tempDir("pyc-wheels-");
    fs.writeFileSync(path.join(a, "requirements.txt"), "greeting==1.0\n");
    const plain = JSON.parse(py(`import json\nprint(json.dumps([h.pip_install_args(${JSON.stringify(a)}), h.requirements_hash(${JSON.stringify(a)})[0]]))`));
    assert.ok(!plain[0].includes("--no-index"));
    fs.mkdirSync(path.join(a, "wheels"));
    fs.writeFileSync(path.join(a, "wheels", "greeting-1.0-py3-none-any.whl"), "w1");
    const shipped = JSON.parse(py(`import json\nprint(json.dumps([h.pip_install_args(${JSON.stringify(a)}), h.requirements_hash(${JSON.stringify(a)})[0]]))`));
    assert.deepEqual(shipped[0].slice(-3), ["--no-index", "--find-links", path.join(a, "wheels")]);
    assert.notEqual(shipped[1], plain[1], "a new wheel means a new venv");
});
