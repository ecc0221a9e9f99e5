import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { acquireLock, defaultSources } from "../../local/rootfs";
import { processStartTime } from "../../local/procs";

const made: string[] = [];
test.after(() => made.forEach(d => fs.rmSync(d, { recursive: true, force: true })));

/** An /etc/apt of the given files (path relative to it -> text), in a temporary directory. */
function etcApt(files: Record<string, string>): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "etc-apt-"));
    made.push(dir);
    fs.mkdirSync(path.join(dir, "sources.list.d"));
    for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), text);
    return dir;
}

const deb822 = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\n";

test("apt sources: Debian's cloud images name theirs debian.sources, its installer sources.list", () => {
    const cloud = etcApt({ "sources.list.d/debian.sources": deb822 });
    assert.equal(defaultSources(cloud), path.join(cloud, "sources.list.d/debian.sources"));
    const installed = etcApt({ "sources.list": "#deb cdrom:[Debian GNU/Linux 12]/ bookworm main\ndeb http://deb.debian.org/debian/ bookworm main\n" });
    assert.equal(defaultSources(installed), path.join(installed, "sources.list"));
});

test("apt sources: any other *.sources or *.list file apt reads counts (mmdebstrap writes 0000debian.sources)", () => {
    const dir = etcApt({ "sources.list.d/0000debian.sources": deb822, "sources.list.d/other.sources.disabled": deb822 });
    assert.equal(defaultSources(dir), path.join(dir, "sources.list.d/0000debian.sources"));
});

test("apt sources: a machine without a Debian archive (Ubuntu; one named only in a comment) builds from Debian's own mirror", () => {
    const dir = etcApt({ "sources.list": "# deb http://deb.debian.org/debian bookworm main\n", "sources.list.d/ubuntu.sources": "Types: deb\nURIs: http://archive.ubuntu.com/ubuntu/\nSuites: noble\nComponents: main\n" });
    const fallbackDir = path.join(dir, "cache");
    const file = defaultSources(dir, fallbackDir);
    assert.equal(file, path.join(fallbackDir, "debian-bookworm.sources"));
    const text = fs.readFileSync(file, "utf8");
    assert.match(text, /^URIs: http:\/\/deb\.debian\.org\/debian\nSuites: bookworm bookworm-updates\n/m);
    assert.match(text, /^Suites: bookworm-security$/m);
    assert.equal(text.match(/^Signed-By: \/usr\/share\/keyrings\/debian-archive-keyring\.gpg$/gm)?.length, 2, "each source checked with Debian's keyring");
    assert.doesNotMatch(text, /ubuntu/);
});

test("build lock: held while its owner runs, taken over once its PID belongs to another process", async () => {
    const dir = etcApt({});
    const file = path.join(dir, "rootfs.lock");
    fs.writeFileSync(file, `${process.pid} ${processStartTime(process.pid)}`);
    await assert.rejects(acquireLock(file, 1500), /timed out waiting for .*rootfs\.lock \(held by PID \d+\)/);
    // The same PID, started at another time: an `up` killed earlier in another PID namespace, say.
    fs.writeFileSync(file, `${process.pid} 1`);
    const lock = await acquireLock(file, 1500);
    assert.equal(fs.readFileSync(file, "utf8"), `${process.pid} ${processStartTime(process.pid)}`);
    lock.release();
    assert.equal(fs.existsSync(file), false);
});
