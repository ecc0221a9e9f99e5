"""
The load balancer pair, host side: keepalived's configuration (the interface resolved here, validated
with keepalived -t, switched, reloaded), its health check and its notify script (the VRRP state and
the takeovers, as node exporter textfile metrics). The pure helpers are separate from what touches
the host, so tests run them directly.
"""
import json
import os
import queue
import re
import socket
import syslog
import tempfile
import threading
import time

from .bundle import read_stdin_bundle
from .common import Failure, ensure_shared_dir, http_status, is_active, log, proc_stat_texts, read_bytes, reload_or_start, run, stat_fields, write_atomic
from .contract import CONTRACT, path
from .nginx_reload import nginx_master_pid

INTERFACE_TOKEN = CONTRACT["keepalived"]["interfaceToken"]
KEEPALIVED_CONF = path("keepalivedConf")
STATE_FILE = path("vrrpState")
METRICS_FILE = path("vrrpMetrics")
SITE_CONF = path("nginxSiteConf")
VERDICT_FILE = path("lbUpstreamVerdict")
VERDICT_URL_PATH = CONTRACT["keepalived"]["verdictUrlPath"]

# --- pure helpers ------------------------------------------------------------------


def interface_for_address(ip_addr_output, address):
    """The interface holding `address`, from `ip -o -4 addr show`: ens3 on OVH's Debian, eth0 on local hosts."""
    for line in ip_addr_output.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] == "inet" and fields[3].split("/")[0] == address:
            return fields[1].split("@")[0]
    return None


def fill_interface(conf_text, interface):
    if INTERFACE_TOKEN not in conf_text:
        raise Failure(f"keepalived.conf has no {INTERFACE_TOKEN} to fill in")
    return conf_text.replace(INTERFACE_TOKEN, interface)


def in_rotation(site_text):
    """The upstream servers nginx sends requests to (not marked down) in a site configuration."""
    from .rollout import upstream_state
    return [server for server, up in upstream_state(site_text).items() if up]


def health(site_text, nginx_answers, upstream_answers, peer_reaches_upstream, record_verdict):
    """
    (problem, notice): problem is None when healthy, else why not. An LB without its nginx
    configuration (before the first push) counts as healthy, so the pair stays reachable while the
    program configures it; once configured, healthy = nginx answers locally and at least one upstream
    in rotation answers (or none is in rotation yet), or none answers from the peer either.
    `nginx_answers()` is asked first; `upstream_answers(server)` is asked of every server in rotation
    at once, and the first yes decides (a dead node's probe does not delay a live one's).
    `record_verdict(reaches)` publishes whether this LB reaches an upstream, for its peer's check;
    `peer_reaches_upstream()` reads the peer's.
    """
    if site_text is None:
        return None, None
    if not nginx_answers():
        record_verdict(False)
        return "nginx does not answer", None
    servers = in_rotation(site_text)
    # Nothing admitted yet (a first rollout: new nodes wait drained for their admit step, which comes
    # through this address): nginx alone decides, or both LBs would let go of the address and with it
    # the program's only way in.
    if not servers:
        record_verdict(False)
        return None, None
    reaches = any_answers(servers, upstream_answers, UPSTREAM_PROBE_SECONDS + 0.5)
    record_verdict(reaches)
    if reaches:
        return None, None
    # Moving the address drops every connection this LB holds; it helps only if the peer can do better.
    # With every app node down for both (a bad release, a network cut), both LBs letting go would leave
    # the public address unanswered: clients would time out instead of getting nginx's 503 + Retry-After.
    if peer_reaches_upstream():
        return f"no upstream in rotation answers ({len(servers)} in rotation); the peer reaches one", None
    return None, f"no upstream in rotation answers ({len(servers)} in rotation), nor from the peer: keeping the address (nginx answers 503)"


def verdict_text(reaches):
    """What this LB's check publishes for its peer: whether it reaches an upstream in rotation."""
    return json.dumps({"reaches_upstream": bool(reaches)}) + "\n"


def peer_verdict(status, date_header, last_modified_header, body, max_age=None):
    """
    Whether the peer's published verdict says it reaches an upstream: its nginx served the file (200),
    the peer's check wrote it at most `max_age` seconds before (Last-Modified against Date, both from the
    peer's clock: no clock skew between the LBs counts), and it says so. Anything else (no answer, an
    old file, a verdict from a check that stopped running) is a no: the address stays.
    """
    from email.utils import parsedate_to_datetime
    max_age = VERDICT_MAX_AGE_SECONDS if max_age is None else max_age
    if status != 200 or not date_header or not last_modified_header:
        return False
    try:
        age = (parsedate_to_datetime(date_header) - parsedate_to_datetime(last_modified_header)).total_seconds()
        verdict = json.loads(body)
    except (TypeError, ValueError):
        return False
    return 0 <= age <= max_age and isinstance(verdict, dict) and verdict.get("reaches_upstream") is True


def any_answers(items, probe, timeout):
    """
    Whether probe(item) is true for any item: all asked at once on daemon threads, True at the first
    yes, False once every probe said no or `timeout` seconds passed (a probe still running is left to
    the process's exit).
    """
    answers = queue.Queue()

    def ask(item):
        try:
            answers.put(bool(probe(item)))
        except Exception:  # a probe that breaks is a no, never a crashed check
            answers.put(False)

    for item in items:
        threading.Thread(target=ask, args=(item,), daemon=True).start()
    deadline = time.monotonic() + timeout
    for _ in items:
        try:
            if answers.get(timeout=max(0.0, deadline - time.monotonic())):
                return True
        except queue.Empty:
            return False
    return False


def worker_cpu_seconds(stat_texts, master_pid, ticks_per_second):
    """
    CPU seconds (user + system) used so far by the children of `master_pid` (nginx's workers), from
    the texts of /proc/<pid>/stat.
    """
    total = 0
    for text in stat_texts:
        fields = stat_fields(text)
        if len(fields) > 12 and fields[1] == str(master_pid):
            total += int(fields[11]) + int(fields[12])
    return total / ticks_per_second


def busy_not_broken(cpu_seconds, elapsed_seconds):
    """
    Whether an nginx that did not answer its status page in time is busy rather than broken: its
    workers used at least BUSY_WORKER_CORES of CPU while the probe waited. A stopped, hung or dead
    nginx uses none; one saturated by new TLS connections uses what the machine gives it.
    """
    return elapsed_seconds > 0 and cpu_seconds / elapsed_seconds >= BUSY_WORKER_CORES


def next_state(previous, event_state, now):
    """The recorded state after keepalived reports `event_state`: a takeover counts when it becomes MASTER."""
    state = dict(previous or {"state": "UNKNOWN", "takeovers": 0, "since": now})
    if event_state == "MASTER" and state["state"] != "MASTER":
        state["takeovers"] += 1
    if event_state != state["state"]:
        state["since"] = now
    state["state"] = event_state
    return state


def holds_address(state_text):
    """Whether keepalived's last recorded state (vrrp-notify's file) is MASTER: this LB holds the address."""
    try:
        state = json.loads(state_text or b"null")
    except ValueError:
        return False
    return isinstance(state, dict) and state.get("state") == "MASTER"


def metrics_text(state):
    """node exporter textfile: whether this LB holds the address, its VRRP state, how often it took it."""
    held = 1 if state["state"] == "MASTER" else 0
    return (
        "# HELP pycluster_lb_vip_held 1 while this load balancer holds the pair's public address (VRRP MASTER).\n"
        "# TYPE pycluster_lb_vip_held gauge\n"
        f"pycluster_lb_vip_held {held}\n"
        "# HELP pycluster_lb_vrrp_state This load balancer's VRRP state (value 1 on the current one).\n"
        "# TYPE pycluster_lb_vrrp_state gauge\n"
        + "".join(f'pycluster_lb_vrrp_state{{state="{s}"}} {1 if state["state"] == s else 0}\n' for s in ("MASTER", "BACKUP", "FAULT", "STOP"))
        + "# HELP pycluster_lb_vip_takeovers_total Times this load balancer took the public address (transitions to MASTER).\n"
        "# TYPE pycluster_lb_vip_takeovers_total counter\n"
        f"pycluster_lb_vip_takeovers_total {state['takeovers']}\n"
    )


# --- on the host -------------------------------------------------------------------


def cmd_keepalived(args):
    """Fill in the interface, validate with keepalived -t, switch, reload; the running configuration stays on any failure."""
    files = read_stdin_bundle()
    if "keepalived.conf" not in files:
        raise Failure("keepalived bundle lacks keepalived.conf")
    interface = interface_for_address(run(["ip", "-o", "-4", "addr", "show"]).stdout, args.address)
    if interface is None:
        raise Failure(f"no interface of this host holds {args.address}")
    new = fill_interface(files["keepalived.conf"][1].decode(), interface).encode()
    if read_bytes(KEEPALIVED_CONF) == new and is_active("keepalived"):
        log("keepalived: configuration unchanged")
        return
    directory = os.path.dirname(KEEPALIVED_CONF)
    fd, staged = tempfile.mkstemp(dir=directory, prefix=".pycluster-stage-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(new)
        proc = run(["keepalived", "--config-test", "-f", staged], check=False)
        if proc.returncode != 0:
            raise Failure(f"keepalived rejected the new configuration; the running one is unchanged:\n{proc.stdout.strip()}")
    finally:
        os.unlink(staged)
    write_atomic(KEEPALIVED_CONF, new, 0o644)
    # A reload (SIGHUP): keepalived rereads its configuration and keeps the address where it is.
    action = reload_or_start("keepalived")
    record_initial_state(new.decode())
    log(f"keepalived: configuration validated and {action} (interface {interface})")


def configured_vip(conf):
    """The address of virtual_ipaddress in a rendered keepalived.conf."""
    m = re.search(r"virtual_ipaddress\s*\{\s*([0-9.]+)/", conf)
    return m.group(1) if m else None


def record_initial_state(conf):
    """
    keepalived calls notify on transitions only, and the bootstrap configuration has no notify:
    the state this LB reached before the full configuration is recorded once, from whether it
    holds the address now, so the metrics exist from the first push.
    """
    if read_bytes(STATE_FILE) is not None:
        return
    vip = configured_vip(conf)
    if vip is None:
        return
    held = interface_for_address(run(["ip", "-o", "-4", "addr", "show"]).stdout, vip) is not None
    state = next_state(None, "MASTER" if held else "BACKUP", time.time())
    write_atomic(STATE_FILE, json.dumps(state).encode(), 0o644)
    write_atomic(METRICS_FILE, metrics_text(state).encode(), 0o644)


def accepts_connections(server, timeout):
    """Whether host:port accepts a TCP connection (the kernel answers from the listen backlog)."""
    host, _, port = server.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


# The probes' budgets, inside the 10 s keepalived gives a check (PAIR_HEALTH_TIMING in
# provisioning/render/keepalived.ts). The check is for a broken LB, not a busy one, and both LBs share
# a busy machine's CPU and the same app nodes: with 1.5 s for nginx and 1 s for a connect, a ramp of
# 1,000 new TLS connections a second on a slower machine failed the check on both LBs at once (CI,
# pair suite scenario 1), and they took the address from each other until the held requests were lost.
# 4 s covers a connect whose SYN a full listen backlog dropped (Linux retransmits it after 1 s and 3 s).
NGINX_PROBE_SECONDS = 4.0
# An nginx that misses that probe still counts as alive while its workers burn at least this share
# of a core: with the gentler probes alone, CI's slower machine failed the holder's check three
# times in a row under the ramp of pair suite scenario 1 and it let go of the address with 7,316
# requests in flight (keepalived's journal in that run). A broken nginx is still found: dead or hung
# workers use no CPU, and a closed listener answers at once.
BUSY_WORKER_CORES = 0.1
UPSTREAM_PROBE_SECONDS = 4.0
# The peer's verdict counts while it is this fresh: its check writes one every 2 s (PAIR_HEALTH_TIMING),
# and a check may take up to 10 s.
VERDICT_MAX_AGE_SECONDS = 15
PEER_PROBE_SECONDS = 1.0
CHECK_LOG_IDENT = "pycluster-vrrp-check"


def nginx_worker_cpu_seconds():
    """CPU seconds nginx's workers used so far (0 when nginx is not running)."""
    master = nginx_master_pid()
    return worker_cpu_seconds(proc_stat_texts(), master, os.sysconf("SC_CLK_TCK")) if master else 0.0


def nginx_alive(address, status_port):
    """nginx answers its status page, or (logged) is too busy to answer in time but working."""
    cpu_before, started = nginx_worker_cpu_seconds(), time.monotonic()
    if http_status(f"http://{address}:{status_port}/stub_status", timeout=NGINX_PROBE_SECONDS) == 200:
        return True
    used, elapsed = nginx_worker_cpu_seconds() - cpu_before, time.monotonic() - started
    if not busy_not_broken(used, elapsed):
        return False
    syslog.openlog(CHECK_LOG_IDENT)
    syslog.syslog(syslog.LOG_NOTICE, f"nginx busy, not broken: no status answer in {elapsed:.1f} s while its workers used {used / elapsed:.2f} cores")
    return True


def record_verdict(reaches):
    # nginx's workers serve it: the directory must stay traversable under keepalived's umask.
    ensure_shared_dir(os.path.dirname(VERDICT_FILE))
    write_atomic(VERDICT_FILE, verdict_text(reaches).encode(), 0o644)


def peer_reaches_upstream(peer, status_port):
    """The peer's verdict, from its nginx status listener (served from the file its check writes)."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://{peer}:{status_port}{VERDICT_URL_PATH}", timeout=PEER_PROBE_SECONDS) as resp:
            return peer_verdict(resp.status, resp.headers.get("Date"), resp.headers.get("Last-Modified"), resp.read(4096))
    except (OSError, ValueError):
        return False


def cmd_vrrp_check(args):
    # An upstream counts as up when it accepts connections, not when its health path answers fast:
    # both LBs see the same app nodes, so a latency verdict is the same on both, and under load
    # (slow answers from busy workers) it made both LBs FAULT at once: no address at all.
    started = time.monotonic()
    site = read_bytes(SITE_CONF)
    problem, notice = health(
        site,
        lambda: nginx_alive(args.address, args.status_port),
        lambda server: accepts_connections(server, timeout=UPSTREAM_PROBE_SECONDS),
        # Optional: the keepalived.conf of an earlier push, which keepalived runs until this push's
        # keepalived step, has no --peer; a required flag would fail the check on both LBs in between.
        lambda: bool(args.peer) and peer_reaches_upstream(args.peer, args.status_port),
        record_verdict,
    )
    if notice:
        syslog.openlog(CHECK_LOG_IDENT)
        syslog.syslog(syslog.LOG_NOTICE, notice)
    if problem:
        # keepalived logs only the exit status; the reason goes to the journal, next to its lines.
        reason = f"{problem} (check took {time.monotonic() - started:.1f} s)"
        syslog.openlog(CHECK_LOG_IDENT)
        syslog.syslog(syslog.LOG_WARNING, reason)
        raise Failure(reason)


def cmd_vrrp_notify(args):
    # keepalived appends TYPE NAME STATE PRIORITY; only the instance's state matters here.
    if len(args.event) < 3 or args.event[0] != "INSTANCE":
        return
    previous = json.loads(read_bytes(STATE_FILE) or b"null")
    state = next_state(previous, args.event[2], time.time())
    write_atomic(STATE_FILE, json.dumps(state).encode(), 0o644)
    write_atomic(METRICS_FILE, metrics_text(state).encode(), 0o644)
    log(f"vrrp: {args.event[1]} is {state['state']} (takeovers: {state['takeovers']})")
