/**
 * hostctl's nginx module (provisioning/host/hostctl/nginx.py): the push's control flow in a pair —
 * the holder's first pass switches nothing, a backup switches, a switch nginx does not answer after
 * is undone. Files go to a temporary /etc/nginx; nginx itself (nginx -t, reload, the status page) is
 * replaced by recorders, since the real ones are exercised by the pair e2e suite.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { py } from "../support/hostTools";

const root = process.getuid?.() === 0;

/** Runs cmd_nginx passes against a temporary /etc/nginx; each step records the live nginx.conf and the reloads so far. */
function passes(steps: string): Record<string, unknown> {
    // The last line: hostctl's log lines come before it.
    return JSON.parse(
        py(`import json, os, shutil, tempfile, types
from hostctl import nginx
d = tempfile.mkdtemp()
nginx.NGINX_DIR, nginx.NGINX_CONF, nginx.LIVE_SITE = d, d + "/nginx.conf", d + "/pycluster"
nginx.PREVIOUS = d + "/.pycluster-previous"
nginx.VRRP_STATE_FILE = d + "/vrrp.json"
open(d + "/mime.types", "w").write("types {}\\n")
os.makedirs(d + "/pycluster")
open(d + "/pycluster/site.conf", "w").write("old site\\n")
open(d + "/nginx.conf", "w").write("old\\n")
reloads, checked = [], []
answers = {"ok": True, "valid": True, "siteBefore": True, "siteAfter": True}
nginx.keep_rotation = lambda *a: None
nginx.nginx_test = lambda conf: (answers["valid"], "" if answers["valid"] else "emerg: unknown directive")
nginx.reload_nginx = lambda: reloads.append(open(nginx.NGINX_CONF).read().strip()) or "reloaded"
nginx.is_active = lambda unit: True
nginx.wait_http_ok = lambda url, timeout, host=None, insecure=False: checked.append(url + (" as " + host if host else "")) or (answers["siteAfter"] if url.startswith("https:") else answers["ok"])
nginx.http_ok = lambda url, host=None, insecure=False: checked.append("before: " + url + " as " + host) or answers["siteBefore"]
nginx.read_stdin_bundle = lambda: {"nginx.conf": (0o644, b"new\\n"), "site.conf": (0o644, b"new site\\n")}
def state(s):
    open(nginx.VRRP_STATE_FILE, "w").write(json.dumps({"state": s}))
def run(**flags):
    args = types.SimpleNamespace(**{"health_path": "/healthz", "lease": 300, "defer_if_holder": False, "check_url": None, "site_url": None, "site_host": None, **flags})
    try:
        nginx.cmd_nginx(args)
        failure = None
    except nginx.Failure as e:
        failure = str(e)
    return {"live": open(nginx.NGINX_CONF).read().strip(), "site": open(d + "/pycluster/site.conf").read().strip(), "reloads": list(reloads), "checked": list(checked), "failure": failure}
def reset():
    open(d + "/nginx.conf", "w").write("old\\n")
    open(d + "/pycluster/site.conf", "w").write("old site\\n")
    reloads.clear(); checked.clear()
out = {}
${steps}
shutil.rmtree(d)
print(json.dumps(out))`)
            .trim()
            .split("\n")
            .pop()!,
    );
}

test("a pair's first pass on the LB holding the address validates and switches nothing; on the backup it switches and checks nginx answers", { skip: !root && "writes files as root (hostctl's write_atomic)" }, () => {
    const out = passes(`state("MASTER")
out["holder"] = run(defer_if_holder=True, check_url="http://10.0.0.2:8080/stub_status")
out["holder_finish"] = run(check_url="http://10.0.0.2:8080/stub_status")
reset(); state("BACKUP")
out["backup"] = run(defer_if_holder=True, check_url="http://10.0.0.3:8080/stub_status")
reset(); state("MASTER"); answers["valid"] = False
out["refused"] = run(defer_if_holder=True)`) as Record<string, { live: string; reloads: string[]; checked: string[]; failure: string | null }>;
    assert.deepEqual(out.holder, { live: "old", site: "old site", reloads: [], checked: [], failure: null }, "holder: validated, nothing switched");
    assert.deepEqual(out.holder_finish, { live: "new", site: "new site", reloads: ["new"], checked: ["http://10.0.0.2:8080/stub_status"], failure: null }, "the finishing step switches");
    assert.deepEqual(out.backup, { live: "new", site: "new site", reloads: ["new"], checked: ["http://10.0.0.3:8080/stub_status"], failure: null }, "backup: switched at once");
    assert.equal(out.refused.live, "old");
    assert.match(out.refused.failure ?? "", /nginx rejected the new configuration; the running configuration is unchanged:\nemerg: unknown directive/, "nginx -t comes before the holder's decision");
});

test("a switch after which nginx does not answer its status page is undone: the previous configuration comes back and is reloaded", { skip: !root && "writes files as root (hostctl's write_atomic)" }, () => {
    const out = passes(`state("BACKUP"); answers["ok"] = False
out["unanswered"] = run(defer_if_holder=True, check_url="http://10.0.0.3:8080/stub_status")`) as Record<string, { live: string; site: string; reloads: string[]; failure: string | null }>;
    assert.equal(out.unanswered.live, "old");
    assert.equal(out.unanswered.site, "old site");
    assert.deepEqual(out.unanswered.reloads, ["new", "old"], "reloaded with the new configuration, then with the restored one");
    assert.match(out.unanswered.failure ?? "", /nginx did not answer http:\/\/10\.0\.0\.3:8080\/stub_status within 15 s after the reload; the previous configuration was restored/);
});

test("a switch after which the site stops answering through nginx is undone; a site that did not answer before is no reason to undo", { skip: !root && "writes files as root (hostctl's write_atomic)" }, () => {
    const out = passes(`state("BACKUP")
site = dict(check_url="http://10.0.0.3:8080/stub_status", site_url="https://127.0.0.1/healthz", site_host="www.example.org")
out["kept"] = run(defer_if_holder=True, **site)
reset(); answers["siteAfter"] = False
out["broken"] = run(defer_if_holder=True, **site)
reset(); answers["siteBefore"] = False
out["down_before"] = run(defer_if_holder=True, **site)`) as Record<string, { live: string; site: string; reloads: string[]; checked: string[]; failure: string | null }>;
    const status = "http://10.0.0.3:8080/stub_status";
    const before = "before: https://127.0.0.1/healthz as www.example.org";
    const after = "https://127.0.0.1/healthz as www.example.org";
    assert.deepEqual(out.kept, { live: "new", site: "new site", reloads: ["new"], checked: [before, status, after], failure: null }, "asked before the switch, then status page and site after");
    assert.equal(out.broken.live, "old");
    assert.equal(out.broken.site, "old site");
    assert.deepEqual(out.broken.reloads, ["new", "old"], "reloaded with the new configuration, then with the restored one");
    assert.deepEqual(out.broken.checked, [before, status, after]);
    assert.match(out.broken.failure ?? "", /the site \(https:\/\/127\.0\.0\.1\/healthz as www\.example\.org\) answered 200 through this nginx before the switch and not within 15 s after it; the previous configuration was restored/);
    // No app node answering (none admitted yet, or all down): an LB change must still be able to land.
    assert.deepEqual(out.down_before, { live: "new", site: "new site", reloads: ["new"], checked: [before, status], failure: null }, "status page only");
});

test("the holder is whoever keepalived last recorded as MASTER; no record, a broken one or keepalived stopped: not the holder", () => {
    const ask = (state: string, active = true) => py(`print(nginx.defers(True, ${state}, ${active ? "True" : "False"}))`.replace(/^/, "from hostctl import nginx\n")).trim();
    assert.equal(ask(`b'{"state": "MASTER", "takeovers": 1}'`), "True");
    for (const s of [`b'{"state": "BACKUP"}'`, `b'{"state": "FAULT"}'`, "None", `b"not json"`, `b"[]"`]) assert.equal(ask(s), "False", s);
    assert.equal(ask(`b'{"state": "MASTER"}'`, false), "False", "keepalived stopped: its record is stale");
    assert.equal(py(`from hostctl import nginx\nprint(nginx.defers(False, b'{"state": "MASTER"}', True))`).trim(), "False", "a single LB never defers");
});
