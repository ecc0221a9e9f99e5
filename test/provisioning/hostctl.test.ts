import { test } from "node:test";
import assert from "node:assert/strict";
import { renderNginxSite } from "../../provisioning/render/nginx";
import * as fs from "fs";
import * as path from "path";
import { hostctl, py, sh, tempDir } from "../support/hostTools";

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

test("letsencrypt's DNS check: only the load balancer's address passes; otherwise the message says what to do", () => {
    const out = JSON.parse(py(`import json
lb = "203.0.113.7"
print(json.dumps([
    h.dns_problem("www.example.com", lb, [lb], False),
    h.dns_problem("www.example.com", lb, [], False),
    h.dns_problem("www.example.com", lb, ["198.51.100.9"], False),
    h.dns_problem("www.example.com", lb, ["198.51.100.9", lb], False),
    h.dns_problem("www.example.com", lb, [], True),
]))`));
    assert.equal(out[0], null, "resolves to the LB: go on");
    assert.equal(
        out[1],
        "www.example.com does not resolve here, not the load balancer's public address 203.0.113.7: Let's Encrypt validates the domain at the address it resolves to. " +
            "To fix: point an A record for www.example.com at 203.0.113.7, or set dnsZone to the zone of www.example.com at OVH so that `pulumi up` manages the record; " +
            "the site serves a temporary certificate meanwhile; run `pulumi up` again once www.example.com resolves to 203.0.113.7.",
    );
    assert.match(out[2], /^www\.example\.com resolves to 198\.51\.100\.9 here, not the load balancer's public address 203\.0\.113\.7/);
    assert.match(out[3], /resolves to 198\.51\.100\.9, 203\.0\.113\.7 here/, "a second A record elsewhere: the CA may pick either");
    assert.match(out[4], /this stack's A record for www\.example\.com \(dnsZone\) points at 203\.0\.113\.7 but the load balancer's resolver does not see it yet/);
    assert.doesNotMatch(out[4], /or set dnsZone/);
});

test("letsencrypt's DNS check waits (bounded) for the record, polling the resolver", () => {
    const out = JSON.parse(py(`import json
answers = [[], ["198.51.100.9"], ["203.0.113.7"]]
calls = []
def fake(name):
    calls.append(name)
    return answers[min(len(calls) - 1, 2)]
tls.resolve_ipv4 = fake
tls.DNS_POLL_SECONDS = 0.01
h.wait_for_dns("www.example.com", "203.0.113.7", True, 5)
waited = len(calls)
calls.clear()
try:
    h.wait_for_dns("www.example.com", "203.0.113.7", False, 0)
    once = "returned"
except h.Failure as e:
    once = str(e)
print(json.dumps([waited, len(calls), once]))`));
    assert.equal(out[0], 3, "polled until the record resolved to the LB");
    assert.equal(out[1], 1, "wait 0: one look-up");
    assert.match(out[2], /^www\.example\.com does not resolve here/);
    assert.deepEqual(JSON.parse(py(`import json\nprint(json.dumps(h.resolve_ipv4("localhost")))`)), ["127.0.0.1"], "through the system's resolver (/etc/hosts here)");
});

test("letsencrypt stops before certbot while the domain does not resolve to the LB, and needs the ACME server and the address", () => {
    const usage = hostctl(["letsencrypt", "--domain", "www.example.com", "--email", "ops@example.com"]);
    assert.equal(usage.code, 2);
    assert.match(usage.output, /the following arguments are required: --server, --expect-address/);
    const r = hostctl(["letsencrypt", "--domain", "localhost", "--email", "ops@example.com", "--server", "https://acme.invalid/dir", "--expect-address", "192.0.2.1"]);
    assert.equal(r.code, 1);
    assert.match(r.output, /^hostctl letsencrypt: localhost resolves to 127\.0\.0\.1 here, not the load balancer's public address 192\.0\.2\.1: .*point an A record for localhost at 192\.0\.2\.1/m);
    assert.doesNotMatch(r.output, /certbot/, "certbot never ran");
});

test("a gate with a Host header names the site in the TLS handshake too (SNI), as nginx with ssl_reject_handshake requires", () => {
    const dir = tempDir("pyc-sni-");
    const gen = sh("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=www.example.com",
        "-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem")]);
    assert.equal(gen.code, 0, gen.output);
    const out = JSON.parse(py(`import json, socket, ssl, threading
seen = []
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(${JSON.stringify(path.join(dir, "cert.pem"))}, ${JSON.stringify(path.join(dir, "key.pem"))})
def sni(sock, name, c):
    seen.append(name)
    # What nginx's ssl_reject_handshake does for a name it does not serve.
    return None if name == "www.example.com" else ssl.ALERT_DESCRIPTION_UNRECOGNIZED_NAME
ctx.sni_callback = sni
server = socket.create_server(("127.0.0.1", 0))
port = server.getsockname()[1]
def serve():
    for _ in range(2):
        conn, _ = server.accept()
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(4096)
                tls.sendall(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok")
        except (ssl.SSLError, OSError):
            pass
threading.Thread(target=serve, daemon=True).start()
with_name = h.http_ok(f"https://127.0.0.1:{port}/healthz", host="www.example.com", insecure=True)
without = h.http_ok(f"https://127.0.0.1:{port}/healthz", insecure=True)
print(json.dumps([with_name, without, seen]))`));
    assert.deepEqual(out, [true, false, ["www.example.com", null]], "the site's name in the handshake; no name, no answer");
});
