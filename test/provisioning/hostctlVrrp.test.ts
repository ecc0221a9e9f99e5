/** hostctl's vrrp module (provisioning/host/hostctl/vrrp.py): the pure helpers behind keepalived's configuration, health check and notify. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { hostctl, py } from "../support/hostTools";

const IP_ADDR = [
    "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever",
    "2: ens3    inet 10.130.0.2/24 brd 10.130.0.255 scope global ens3\\       valid_lft forever preferred_lft forever",
    "2: ens3    inet 10.130.0.126/24 scope global secondary ens3\\       valid_lft forever preferred_lft forever",
    "3: eth0@if9    inet 10.20.0.125/24 brd 10.20.0.255 scope global eth0\\       valid_lft forever preferred_lft forever",
].join("\n");

test("the interface is the one holding the host's own address: ens3 on OVH, eth0 on local hosts (veth suffix dropped)", () => {
    const ask = (address: string) => py(`print(h.interface_for_address(${JSON.stringify(IP_ADDR)}, ${JSON.stringify(address)}))`).trim();
    assert.equal(ask("10.130.0.2"), "ens3");
    assert.equal(ask("10.20.0.125"), "eth0");
    assert.equal(ask("10.130.0.3"), "None");
    assert.equal(ask("10.130.0.12"), "None", "a prefix of another address does not match");
});

test("the interface token is filled in everywhere; a configuration without it is refused", () => {
    const out = py(`print(h.fill_interface("interface @PYCLUSTER_INTERFACE@\\n  10.0.0.5/24 dev @PYCLUSTER_INTERFACE@", "ens3"))`);
    assert.equal(out, "interface ens3\n  10.0.0.5/24 dev ens3\n");
    assert.throws(() => py(`h.fill_interface("interface eth0", "ens3")`), /no @PYCLUSTER_INTERFACE@/);
});

const SITE = "upstream webapp {\\n    server 10.0.0.3:8000 max_fails=1;\\n    server 10.0.0.4:8000 max_fails=1 down;\\n}\\n";

/**
 * health(site, nginx answers?, answering upstreams, the peer reaches one?) as the check sees it: the
 * problem, the notice, the upstreams it asked, the verdicts it published and whether it asked the peer.
 */
function health(site: string | null, nginx: boolean, answering: string[], peerReaches = false) {
    const out = py(
        `asked, published, peer_asked = [], [], []\n` +
            `def up(s):\n    asked.append(s)\n    return s in ${JSON.stringify(answering)}\n` +
            `def peer():\n    peer_asked.append(1)\n    return ${peerReaches ? "True" : "False"}\n` +
            `site = ${site === null ? "None" : `b"${site}"`}\n` +
            `problem, notice = h.health(site, lambda: ${nginx ? "True" : "False"}, up, peer, published.append)\n` +
            `print(problem); print(notice); print(",".join(asked)); print(",".join(map(str, published))); print(bool(peer_asked))`,
    );
    const [problem, notice, asked, published, peerAsked] = out.split("\n");
    return { problem, notice, asked: asked ? asked.split(",") : [], published: published ? published.split(",") : [], peerAsked: peerAsked === "True" };
}

test("an LB without its nginx configuration yet counts as healthy (the pair stays reachable during the first push)", () => {
    const h = health(null, false, []);
    assert.equal(h.problem, "None");
    assert.deepEqual(h.published, [], "nothing to publish before the first push");
});

test("once configured: healthy when nginx answers and an upstream in rotation answers; it publishes whether it reaches one", () => {
    const ok = health(SITE, true, ["10.0.0.3:8000"], true);
    assert.equal(ok.problem, "None");
    assert.deepEqual(ok.published, ["True"]);
    assert.equal(ok.peerAsked, false, "a healthy LB does not ask its peer");
    const dead = health(SITE, false, ["10.0.0.3:8000"], true);
    assert.match(dead.problem, /nginx does not answer/);
    assert.deepEqual(dead.published, ["False"], "an LB whose nginx does not answer reaches nothing for its clients");
});

test("no upstream answers here but the peer reaches one: unhealthy, the address goes where requests can be served", () => {
    const down = health(SITE, true, ["10.0.0.4:8000"], true);
    assert.match(down.problem, /no upstream in rotation answers \(1 in rotation\); the peer reaches one/);
    assert.deepEqual(down.asked, ["10.0.0.3:8000"], "a drained server is not asked, and does not count");
    assert.deepEqual(down.published, ["False"]);
});

test("no upstream answers from either LB (every app node down): the holder keeps the address and says why, so clients get nginx's 503 instead of no answer", () => {
    const both = health(SITE, true, [], false);
    assert.equal(both.problem, "None");
    assert.match(both.notice, /nor from the peer: keeping the address/);
    assert.equal(both.peerAsked, true);
    assert.deepEqual(both.published, ["False"]);
});

test("with nothing admitted yet (every server drained), nginx alone decides: both LBs never let go of the address on a first rollout", () => {
    const drained = "upstream webapp {\\n    server 10.0.0.3:8000 down;\\n}\\n";
    assert.equal(health(drained, true, []).problem, "None");
    assert.match(health(drained, false, []).problem, /nginx does not answer/);
});

test("the peer's verdict counts only when its nginx served it, its check wrote it within 15 s by the peer's own clock, and it says reaches_upstream true", () => {
    const verdict = (status: number, date: string | null, modified: string | null, body: string) =>
        py(`print(h.peer_verdict(${status}, ${date === null ? "None" : JSON.stringify(date)}, ${modified === null ? "None" : JSON.stringify(modified)}, ${JSON.stringify(body)}.encode()))`).trim();
    const yes = py(`print(h.verdict_text(True), end="")`);
    const no = py(`print(h.verdict_text(False), end="")`);
    const date = "Fri, 04 Dec 2026 11:40:10 GMT";
    assert.equal(verdict(200, date, "Fri, 04 Dec 2026 11:40:08 GMT", yes), "True");
    assert.equal(verdict(200, date, "Fri, 04 Dec 2026 11:39:55 GMT", yes), "True", "15 s old: the limit");
    assert.equal(verdict(200, date, "Fri, 04 Dec 2026 11:39:54 GMT", yes), "False", "its check stopped writing");
    assert.equal(verdict(200, date, "Fri, 04 Dec 2026 11:40:08 GMT", no), "False");
    assert.equal(verdict(404, date, "Fri, 04 Dec 2026 11:40:08 GMT", yes), "False", "no verdict published (a single LB, or before its first check)");
    assert.equal(verdict(200, date, null, yes), "False");
    assert.equal(verdict(200, date, "Fri, 04 Dec 2026 11:40:08 GMT", "{not json"), "False");
    assert.equal(verdict(200, date, "Fri, 04 Dec 2026 11:40:08 GMT", '{"reaches_upstream": "yes"}'), "False");
});

test("nginx's workers' CPU comes from /proc/<pid>/stat: the children of the master, utime + stime, a command name with spaces and parentheses parsed right", () => {
    // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
    const stat = (pid: number, comm: string, ppid: number, utime: number, stime: number) =>
        `${pid} (${comm}) S ${ppid} ${ppid} ${ppid} 0 -1 4194624 10 0 0 0 ${utime} ${stime} 0 0 20 0 1 0 100 1000 10`;
    const texts = [stat(400, "nginx", 1, 7, 3), stat(401, "nginx", 400, 150, 50), stat(402, "nginx", 400, 80, 20), stat(403, "odd) (name 400", 1, 999, 999), stat(404, "sh", 401, 500, 0)];
    assert.equal(py(`print(h.worker_cpu_seconds(${JSON.stringify(texts)}, 400, 100))`).trim(), "3.0", "401 and 402 only: (150+50+80+20)/100");
    assert.equal(py(`print(h.worker_cpu_seconds(${JSON.stringify(texts)}, 999, 100))`).trim(), "0.0");
});

test("an nginx that misses its status probe is busy, not broken, only while its workers burn CPU", () => {
    const busy = (cpu: number, elapsed: number) => py(`print(h.busy_not_broken(${cpu}, ${elapsed}))`).trim();
    assert.equal(busy(2.0, 4.0), "True", "half a core over the 4 s probe: saturated, working");
    assert.equal(busy(0.4, 4.0), "True", "the threshold, 0.1 cores");
    assert.equal(busy(0.05, 4.0), "False", "hung or stopped workers use next to nothing");
    assert.equal(busy(0, 0), "False");
});

test("takeovers count transitions to MASTER only; the textfile says who holds the address", () => {
    const out = py(
        `s = None\n` +
            `for st in ["BACKUP", "MASTER", "MASTER", "FAULT", "BACKUP", "MASTER"]:\n    s = h.next_state(s, st, 1.0)\n` +
            `print(s["takeovers"], s["state"]); print(h.metrics_text(s))`,
    );
    assert.match(out, /^2 MASTER\n/);
    assert.match(out, /^pycluster_lb_vip_held 1$/m);
    assert.match(out, /^pycluster_lb_vip_takeovers_total 2$/m);
    assert.match(out, /^pycluster_lb_vrrp_state\{state="MASTER"\} 1$/m);
    assert.match(out, /^pycluster_lb_vrrp_state\{state="FAULT"\} 0$/m);
    const backup = py(`print(h.metrics_text(h.next_state(None, "BACKUP", 1.0)))`);
    assert.match(backup, /^pycluster_lb_vip_held 0$/m);
    assert.match(backup, /^pycluster_lb_vip_takeovers_total 0$/m);
});

test("hostctl's parser takes keepalived's notify arguments and the check's flags as the contract has them", () => {
    const r = hostctl(["vrrp-check", "--help"]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /--status-port/);
    assert.match(r.output, /--peer/);
    // The check line of an earlier push (no --peer) still parses: keepalived runs it until the new keepalived.conf arrives.
    const parse = (argv: string[]) => py(`from hostctl import cli\na = cli.parser().parse_args(${JSON.stringify(argv)})\nprint(a.address, a.peer, a.status_port)`).trim();
    assert.equal(parse(["vrrp-check", "--address", "10.0.0.2", "--status-port", "8080"]), "10.0.0.2 None 8080");
    assert.equal(parse(["vrrp-check", "--address", "10.0.0.2", "--peer", "10.0.0.3", "--status-port", "8080"]), "10.0.0.2 10.0.0.3 8080");
    assert.match(hostctl(["vrrp-notify", "--help"]).output, /event/);
    assert.match(hostctl(["keepalived", "--help"]).output, /--address/);
});


test("an upstream is up when it accepts connections: a listener counts, a closed port does not", () => {
    const out = py(
        "import socket\n" +
            "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1); port = s.getsockname()[1]\n" +
            "print(h.accepts_connections(f'127.0.0.1:{port}', 1.0))\n" +
            "s.close()\n" +
            "print(h.accepts_connections(f'127.0.0.1:{port}', 1.0))\n" +
            "print(h.accepts_connections('not-an-address', 1.0))",
    );
    assert.deepEqual(out.trim().split("\n"), ["True", "False", "False"]);
});

test("upstreams are probed at once: the first yes decides, a probe that hangs or breaks does not hold it up, and no answer in time is a no", () => {
    const out = py(
        "import time\n" +
            "def probe(s):\n" +
            "    if s == 'hangs': time.sleep(30)\n" +
            "    if s == 'breaks': raise OSError('boom')\n" +
            "    if s == 'slow-yes': time.sleep(0.3)\n" +
            "    return s in ('yes', 'slow-yes')\n" +
            "t = time.monotonic(); print(h.any_answers(['hangs', 'breaks', 'yes'], probe, 5.0), time.monotonic() - t < 1.0)\n" +
            "print(h.any_answers(['breaks', 'no', 'slow-yes'], probe, 5.0))\n" +
            "print(h.any_answers(['breaks', 'no'], probe, 5.0))\n" +
            "t = time.monotonic(); print(h.any_answers(['hangs', 'no'], probe, 0.5), 0.4 < time.monotonic() - t < 2.0)\n" +
            "print(h.any_answers([], probe, 1.0))",
    );
    assert.deepEqual(out.trim().split("\n"), ["True True", "True", "False", "False True", "False"]);
});

test("the check's budgets fit inside the time keepalived gives it, and leave room for a SYN a full backlog dropped (retransmitted after 1 s and 3 s)", async () => {
    const { PAIR_HEALTH_TIMING } = await import("../../provisioning/render/keepalived");
    const [nginx, upstream] = py("print(h.NGINX_PROBE_SECONDS, h.UPSTREAM_PROBE_SECONDS)").trim().split(" ").map(Number);
    assert.ok(upstream > 3, `an upstream connect waits past the second SYN retransmit (${upstream} s)`);
    // Python's start, then nginx's probe, then the upstreams' (all at once), with a second to spare.
    assert.ok(nginx + upstream + 0.5 + 1 <= PAIR_HEALTH_TIMING.timeoutSeconds, `${nginx} + ${upstream} s within ${PAIR_HEALTH_TIMING.timeoutSeconds} s`);
});

test("a busy upstream (its accept queue full for 1.5 s) is up within the check's budget; the former 1 s budget called it down", () => {
    // Linux drops a SYN while the listener's accept queue is full and the client retransmits it after
    // 1 s, then 3 s: how an app node looks to the check while it accepts a ramp of connections.
    const out = py(
        "import socket, threading, time\n" +
            "def busy_listener():\n" +
            "    s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)\n" +
            "    fill = []\n" +
            "    for _ in range(3):\n" +
            "        c = socket.socket(); c.setblocking(False); c.connect_ex(s.getsockname()); fill.append(c)\n" +
            "    time.sleep(0.2)\n" +
            "    def drain():\n" +
            "        time.sleep(1.5)\n" +
            "        while True:\n" +
            "            try: s.settimeout(0.2); s.accept()\n" +
            "            except socket.timeout: continue\n" +
            "            except OSError: return\n" +
            "    threading.Thread(target=drain, daemon=True).start()\n" +
            "    return s, fill\n" +
            "s, fill = busy_listener(); port = s.getsockname()[1]\n" +
            "print(h.accepts_connections(f'127.0.0.1:{port}', 1.0))\n" +
            "s.close()\n" +
            "s, fill = busy_listener(); port = s.getsockname()[1]\n" +
            "print(h.accepts_connections(f'127.0.0.1:{port}', h.UPSTREAM_PROBE_SECONDS))",
    );
    assert.deepEqual(out.trim().split("\n"), ["False", "True"]);
});

test("the check's verdict directory stays traversable by nginx's workers under a umask of 077, and a narrower one is widened", () => {
    const out = py(
        `import os, tempfile\nbase = tempfile.mkdtemp()\nos.umask(0o077)\nd = os.path.join(base, "run", "pycluster")\nh.ensure_shared_dir(d)\nprint(oct(os.stat(d).st_mode & 0o777))\n` +
            `os.chmod(d, 0o700)\nh.ensure_shared_dir(d)\nprint(oct(os.stat(d).st_mode & 0o777))\nimport shutil\nshutil.rmtree(base)`,
    );
    assert.deepEqual(out.trim().split("\n"), ["0o755", "0o755"]);
});
