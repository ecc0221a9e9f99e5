import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { buildAppArchive } from "../../provisioning/archive";
import { py, tempDir } from "../support/hostTools";

function appTree(): string {
    const dir = tempDir("pyc-app-");
    fs.mkdirSync(path.join(dir, "pkg", "__pycache__"), { recursive: true });
    fs.mkdirSync(path.join(dir, ".git"));
    fs.writeFileSync(path.join(dir, "pkg", "__init__.py"), "");
    fs.writeFileSync(path.join(dir, "pkg", "wsgi.py"), "application = None\n");
    fs.writeFileSync(path.join(dir, "pkg", "__pycache__", "wsgi.cpython-311.pyc"), "x");
    fs.writeFileSync(path.join(dir, ".env"), "SECRET=1\n");
    fs.writeFileSync(path.join(dir, ".git", "HEAD"), "ref\n");
    fs.writeFileSync(path.join(dir, "run.sh"), "#!/bin/sh\n");
    fs.chmodSync(path.join(dir, "run.sh"), 0o755);
    fs.writeFileSync(path.join(dir, "requirements.txt"), "# deps\nflask==3.0\n\n");
    return dir;
}

test("the release id depends on content only, and the archive is reproducible", () => {
    const a = appTree();
    const out1 = tempDir("pyc-out-");
    const out2 = tempDir("pyc-out-");
    const first = buildAppArchive("webapp", a, out1);
    // Same content, other timestamps: same id, same bytes.
    fs.utimesSync(path.join(a, "pkg", "wsgi.py"), new Date(2001, 1, 1), new Date(2001, 1, 1));
    const second = buildAppArchive("webapp", a, out2);
    assert.equal(first.id, second.id);
    assert.ok(fs.readFileSync(first.path).equals(fs.readFileSync(second.path)));
    assert.match(first.id, /^[0-9a-f]{12}$/);
    fs.appendFileSync(path.join(a, "pkg", "wsgi.py"), "# changed\n");
    assert.notEqual(buildAppArchive("webapp", a, out1).id, first.id);
    fs.chmodSync(path.join(a, "run.sh"), 0o644);
    assert.notEqual(buildAppArchive("webapp", a, out1).id, first.id, "the executable bit is content");
});

test("dotfiles (.env, .git), caches and bytecode are never shipped", () => {
    const archive = buildAppArchive("webapp", appTree(), tempDir("pyc-out-"));
    assert.deepEqual(archive.files, ["pkg/__init__.py", "pkg/wsgi.py", "requirements.txt", "run.sh"]);
});

test("Python's tarfile (what hostctl extracts with) reads it, modes intact", () => {
    const archive = buildAppArchive("webapp", appTree(), tempDir("pyc-out-"));
    const members = JSON.parse(py(`import json, tarfile\nt = tarfile.open(${JSON.stringify(archive.path)})\nprint(json.dumps({m.name: [m.type.decode(), oct(m.mode), m.uid] for m in t.getmembers()}))`));
    assert.deepEqual(members, {
        pkg: ["5", "0o755", 0],
        "pkg/__init__.py": ["0", "0o644", 0],
        "pkg/wsgi.py": ["0", "0o644", 0],
        "requirements.txt": ["0", "0o644", 0],
        "run.sh": ["0", "0o755", 0],
    });
});

test("long paths use the ustar prefix field", () => {
    const dir = tempDir("pyc-app-");
    const deep = path.join(dir, ...Array.from({ length: 8 }, (_, i) => `directory-number-${i}`));
    fs.mkdirSync(deep, { recursive: true });
    fs.writeFileSync(path.join(deep, "module_with_a_long_name.py"), "x = 1\n");
    const archive = buildAppArchive("webapp", dir, tempDir("pyc-out-"));
    const names = JSON.parse(py(`import json, tarfile\nprint(json.dumps([m.name for m in tarfile.open(${JSON.stringify(archive.path)}).getmembers() if m.isfile()]))`));
    assert.deepEqual(names, [archive.files[0]]);
    assert.ok(archive.files[0].length > 100);
});

