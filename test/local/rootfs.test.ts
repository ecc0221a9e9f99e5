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

test("apt sources: a Debian archive named only in a comment is not a source", () => {
    const dir = etcApt({ "sources.list": "# deb http://deb.debian.org/debian bookworm main\n", "sources.list.d/vendor.list": "deb https://example.org/apt stable main\n" });
    assert.throws(() => defaultSources(dir), /no Debian apt sources found in .*etc-apt-.*: pass `sources` to ensureRootfs/);
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
