import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { shellLine, shellQuote } from "../../lib/shell";

test("plain words stay bare; anything else is single-quoted", () => {
    assert.equal(shellQuote("/usr/local/lib/pycluster/hostctl.pyz"), "/usr/local/lib/pycluster/hostctl.pyz");
    assert.equal(shellQuote("a b"), "'a b'");
    assert.equal(shellQuote("it's"), `'it'"'"'s'`);
    assert.equal(shellQuote(""), "''");
});

test("bash reads every quoted word back exactly (quotes, dollars, backticks, newlines, globs)", () => {
    const words = ["plain", "two words", "it's", `"double"`, "$HOME", "`id`", "a\nb", "*", "--flag=x y", "", "\\"];
    const r = spawnSync("bash", ["-c", `printf '%s\\0' ${shellLine(words)}`], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.stdout.split("\0").slice(0, -1), words);
});
