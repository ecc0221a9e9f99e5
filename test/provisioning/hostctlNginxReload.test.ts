/**
 * hostctl's nginx reload (provisioning/host/hostctl/nginx_reload.py) with the site's rendered proxy
 * locations (provisioning/render/nginx.ts) in the real nginx, in a network namespace this test creates
 * and removes, under wrk: reloads through hostctl fail no request; plain reloads (the control) fail
 * some, so the test can tell the two apart.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "fs";
import * as path from "path";
import { CLOSING_LOCATION, renderNginxSite } from "../../provisioning/render/nginx";
import { hostPath } from "../../provisioning/hostContract";
import { HOSTCTL_PRELUDE, SYSTEM_PYTHON, missingTools, py, sh, tempDir } from "../support/hostTools";
import { SITE, block } from "../support/nginxSite";

/** nginx.conf for the test: the site's two proxy locations as rendered, the app a second server of the same nginx. */
function nginxConf(dir: string, flag: string): string {
    // The app is a second server of the same nginx; the site's sizing is the shared one's.
    const site = renderNginxSite({ ...SITE, upstreams: [{ address: "127.0.0.1", port: 8000 }], overload: undefined });
    const locations = [block(site, "    location / {\n        if (-f"), block(site, `    location ${CLOSING_LOCATION} {`)].join("\n").split(hostPath("nginxClosingFlag")).join(flag);
    return `worker_processes 2;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log notice;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_timeout 65s;
    keepalive_requests 1000;
    upstream webapp {
        server 127.0.0.1:8000;
        keepalive 16;
    }
    server {
        listen 127.0.0.1:8000;
        location / {
            return 200 "$request_method $request_uri\\n";
        }
    }
    server {
        listen 127.0.0.1:8081;
${locations}
    }
}
`;
}

/** Python run in the namespace: reloads under wrk, through hostctl and then plain; prints JSON. */
const DRIVER = `
import http.client, json, os, re, signal, subprocess, time
DIR, FLAG = sys.argv[1], sys.argv[2]
subprocess.run(["nginx", "-c", f"{DIR}/nginx.conf", "-p", DIR], check=True)
time.sleep(0.3)
master = int(open(f"{DIR}/nginx.pid").read())
def ask():
    # One keep-alive request on its own connection: its status, its Connection header, what the app saw.
    c = http.client.HTTPConnection("127.0.0.1", 8081, timeout=5)
    c.request("GET", "/a%2Fb/c?x=1&y=%20")
    r = c.getresponse()
    out = [r.status, r.headers.get("Connection"), r.read().decode().strip()]
    c.close()
    return out
out = {"plain": ask()}
open(FLAG, "w").close()
out["flagged"] = ask()
os.unlink(FLAG)
def hup():
    os.kill(master, signal.SIGHUP)
    return "hup"
def under_wrk(reload, times):
    wrk = subprocess.Popen(["wrk", "-t2", "-c64", f"-d{times * 2 + 3}s", "http://127.0.0.1:8081/"], stdout=subprocess.PIPE, text=True)
    time.sleep(1)
    for _ in range(times):
        reload()
        time.sleep(1)
    text = wrk.communicate()[0]
    errors = re.search(r"Socket errors: connect (\\d+), read (\\d+), write (\\d+), timeout (\\d+)", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\\d+)", text)
    return {"requests": int(re.search(r"(\\d+) requests in", text).group(1)),
            "errors": [int(x) for x in errors.groups()] if errors else [0, 0, 0, 0],
            "non2xx": int(non2xx.group(1)) if non2xx else 0}
workers = lambda: sorted(h.child_pids(master))
out["hostctl"] = under_wrk(lambda: h.reload_closing_first(hup, workers, flag=FLAG), 3)
out["flagLeft"] = os.path.exists(FLAG)
out["control"] = under_wrk(hup, 3)
print(json.dumps(out))
`;

test("reloads through hostctl under wrk fail no request; plain reloads (the control) fail some", t => {
    const skip = missingTools(["nginx", "netns", "wrk"]);
    if (skip) return t.skip(skip);
    const dir = tempDir("pycluster-reload-");
    const flag = path.join(dir, "closing");
    const ns = `pycreload${process.pid}`;
    fs.writeFileSync(path.join(dir, "nginx.conf"), nginxConf(dir, flag));
    fs.writeFileSync(path.join(dir, "driver.py"), HOSTCTL_PRELUDE + DRIVER);
    // Teardown on every exit: the nginx this test started (its master's PID), then the namespace.
    const script = `set -u
cleanup() { [ -s ${dir}/nginx.pid ] && kill -TERM "$(cat ${dir}/nginx.pid)" 2>/dev/null; sleep 0.3; ip netns del ${ns} 2>/dev/null; true; }
trap cleanup EXIT
ip netns add ${ns} && ip -n ${ns} link set lo up && ip netns exec ${ns} ${SYSTEM_PYTHON} ${dir}/driver.py ${dir} ${flag}`;
    const r = sh("bash", ["-c", script]);
    const errorLog = fs.existsSync(path.join(dir, "error.log")) ? fs.readFileSync(path.join(dir, "error.log"), "utf8") : "";
    fs.rmSync(dir, { recursive: true, force: true });
    assert.equal(r.code, 0, `${r.output}\nnginx's error log:\n${errorLog}`);
    const out = JSON.parse(r.output.trim().split("\n").pop()!);
    console.log(`hostctl reloads: ${JSON.stringify(out.hostctl)}; plain reloads: ${JSON.stringify(out.control)}`);
    // The closing twin passes the request as it came and ends the connection after the response.
    assert.deepEqual(out.plain, [200, "keep-alive", "GET /a%2Fb/c?x=1&y=%20"]);
    assert.deepEqual(out.flagged, [200, "close", "GET /a%2Fb/c?x=1&y=%20"]);
    assert.equal(out.flagLeft, false, "the flag is gone after the reload");
    assert.ok(out.hostctl.requests > 1000 && out.control.requests > 1000, "wrk kept the connections busy");
    assert.deepEqual([out.hostctl.errors, out.hostctl.non2xx], [[0, 0, 0, 0], 0], "no request failed across 3 reloads through hostctl");
    const controlFailed = out.control.errors.reduce((a: number, b: number) => a + b, 0);
    assert.ok(controlFailed > 0, `plain reloads fail requests on busy keep-alive connections (the race this avoids): ${controlFailed}`);
});

test("the old workers count as signalled once each has ended or says it is shutting down", () => {
    const out = py(`print(h.old_workers_signalled([11, 12], {11: None, 12: "nginx: worker process is shutting down"}),
      h.old_workers_signalled([11, 12], {11: None, 12: "nginx: worker process"}),
      h.old_workers_signalled([], {}))`);
    assert.equal(out.trim(), "True False True");
});

test("children are read from /proc stat texts, command names with spaces and parentheses included", () => {
    const out = py(`print(sorted(h.children_in(["10 (nginx: worker) S 7 1 1", "11 (a (b) c) S 7 1 1", "12 (x) S 8 1 1"], 7)), h.child_pids(0))`);
    assert.equal(out.trim(), "[10, 11] set()");
});

test("a closing flag left behind by a killed reload is removed after a minute, a fresh one is kept", () => {
    const dir = tempDir("pycluster-flag-");
    const flag = path.join(dir, "closing");
    try {
        const out = py(`import os, time
h.set_closing(${JSON.stringify(flag)}, True)
fresh = h.clear_stale_flag(${JSON.stringify(flag)})
stale = h.clear_stale_flag(${JSON.stringify(flag)}, now=time.time() + h.STALE_FLAG_SECONDS + 1)
print(fresh, stale, os.path.exists(${JSON.stringify(flag)}))`);
        assert.equal(out.trim().split("\n").pop(), "False True False");
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});

test("the flag goes even when the reload fails", () => {
    const dir = tempDir("pycluster-flag-");
    const flag = path.join(dir, "closing");
    try {
        const out = py(`import os
def boom():
    raise h.Failure("nginx rejected it")
try:
    h.reload_closing_first(boom, lambda: [], flag=${JSON.stringify(flag)}, window=0)
except h.Failure as e:
    print("failed:", e)
print(os.path.exists(${JSON.stringify(flag)}))`);
        assert.deepEqual(out.trim().split("\n"), ["failed: nginx rejected it", "False"]);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
});
