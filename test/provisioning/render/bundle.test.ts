import { test } from "node:test";
import assert from "node:assert/strict";
import { renderBundle } from "../../../provisioning/render/bundle";
import { py } from "../../support/hostTools";

test("a bundle round-trips through hostctl's parser, byte for byte", () => {
    const files = [
        { name: "nginx.conf", mode: 0o644, content: "events {}\n" },
        { name: "tls/privkey.pem", mode: 0o600, content: "-----BEGIN PRIVATE KEY-----\nx\n" },
        { name: "env", mode: 0o600, content: 'A="héllo ✓"\nB="line\\ntwo"\nfile x 0644 3\nend\n' },
        { name: "empty", mode: 0o644, content: "" },
    ];
    const parsed = JSON.parse(py(`import json, sys\nb = h.parse_bundle(${JSON.stringify(renderBundle(files))}.encode())\nprint(json.dumps({k: [m, v.decode()] for k, (m, v) in b.items()}))`));
    assert.deepEqual(parsed, Object.fromEntries(files.map(f => [f.name, [f.mode, f.content]])));
});

test("names that could escape their directory are refused on both sides", () => {
    for (const name of ["../etc/passwd", "/etc/passwd", ".env", "tls/..", "a/b", "tls/../x"]) {
        assert.throws(() => renderBundle([{ name, mode: 0o644, content: "" }]), /not allowed/, name);
        const out = py(`try:\n    h.parse_bundle(b"pycluster-bundle 1\\nfile ${name} 0644 0\\n\\nend\\n")\n    print("accepted")\nexcept h.Failure as e:\n    print("refused")`);
        assert.equal(out.trim(), "refused", name);
    }
});
