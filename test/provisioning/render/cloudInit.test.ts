import { test } from "node:test";
import assert from "node:assert/strict";
import { parse } from "yaml";
import { renderCloudInit } from "../../../provisioning/render/cloudInit";

const KEY = { privateOpenssh: "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\ndef\n-----END OPENSSH PRIVATE KEY-----\n", publicOpenssh: "ssh-ed25519 AAAAC3 host\n" };

test("user data: a cloud-config that installs the pinned host key, packages and the app user", () => {
    const text = renderCloudInit({ hostKey: KEY, packages: ["gunicorn", "python3-gevent"], appUser: "webapp" });
    assert.ok(text.startsWith("#cloud-config\n"));
    const doc = parse(text);
    assert.equal(doc.ssh_keys.ed25519_private, KEY.privateOpenssh);
    assert.equal(doc.ssh_keys.ed25519_public, "ssh-ed25519 AAAAC3 host");
    assert.equal(doc.ssh_deletekeys, true);
    assert.deepEqual(doc.ssh_genkeytypes, [], "no other host key types: the pinned one is the only one");
    assert.deepEqual(doc.packages, ["gunicorn", "python3-gevent"]);
    assert.equal(doc.package_update, true);
    assert.deepEqual(doc.users[0], "default");
    assert.deepEqual(doc.users[1], { name: "webapp", system: true, shell: "/usr/sbin/nologin", homedir: "/nonexistent", no_create_home: true });
});

test("the load balancer gets no app user, and nothing else is configured at boot", () => {
    const doc = parse(renderCloudInit({ hostKey: KEY, packages: ["nginx"] }));
    assert.deepEqual(doc.users, ["default"]);
    assert.deepEqual(Object.keys(doc).sort(), ["package_update", "packages", "ssh_deletekeys", "ssh_genkeytypes", "ssh_keys", "users"]);
});
