"""
The rollout, host side: what one app node does when a change reaches it (stage and check everything,
drain itself, switch, pass its health gate, come back into rotation, or roll back), and the load
balancer's view of the nodes (which are in rotation, drains as leases, waiting until nginx counts a
node as alive again, gates). The program's side of the same plan is provisioning/rollout.ts.
"""
import datetime
import json
import os
import re
import secrets
import grp
import shutil
import tempfile
import time

from .bundle import read_stdin_bundle
from .common import Failure, child_pids, http_ok, http_status, is_active, log, point_symlink, read_bytes, run, systemctl, write_atomic
from .contract import path
from .nginx_reload import clear_stale_flag, reload_nginx
from .release import app_paths, COMPLETE, ensure_app_user, keep_releases
from .validate import check_app, nginx_test, smoke_boot, unit_verify

# --- a node's change -------------------------------------------------------------

def main_pid(unit):
    out = run(["systemctl", "show", "-p", "MainPID", "--value", unit], check=False).stdout.strip()
    return int(out) if out.isdigit() else 0


def gate(app, health_url, workers, old_workers, deadline_s):
    """
    Healthy = the unit is active, the configured number of new workers runs, and /healthz answers
    200 three times in a row. Five HTTP errors in a row from the new workers fail at once: an app
    that answers 500 will not get better by waiting.
    """
    deadline = time.monotonic() + deadline_s
    streak, errors, reason = 0, 0, "no answer yet"
    while time.monotonic() < deadline:
        if not is_active(app):
            reason = f"{app}.service is not active"
            streak = 0
        else:
            fresh = child_pids(main_pid(app)) - old_workers
            if len(fresh) < workers:
                reason = f"{len(fresh)}/{workers} new workers running"
                streak = 0
            else:
                status = http_status(health_url)
                if status == 200:
                    streak, errors = streak + 1, 0
                    if streak >= 3:
                        return None
                else:
                    streak = 0
                    reason = f"{health_url} answered {status if status else 'nothing'}"
                    if status is not None:
                        # An HTTP error, or a connection the new workers closed without answering.
                        errors += 1
                        if errors >= 5:
                            return reason
        time.sleep(0.5)
    return reason


# The node drains itself: while its service changes, new connections to the app port from other hosts
# are reset (loopback still reaches it, for the gate). nginx retries a refused connection on another
# node, which is safe for every request, in-flight requests finish gracefully, and the load balancer
# never reloads (a reload closes keep-alive client connections, dropping requests mid-flight).
DRAIN_TABLE = "pycluster_node_drain"


def drain_rules(port):
    """
    The nftables table that drains the node: a connection's opening SYN to the app port from
    another host is answered with a reset; every packet of an established connection passes.
    Stateless on purpose: `ct state new` also matched the first packet conntrack saw of a
    connection opened before this table switched conntrack on in the host's namespace (no other
    rule of ours uses it), so nginx's pooled keep-alive connections to the node, and the requests it
    sent on them, were reset at the drain (test/provisioning/hostctlDrain.test.ts shows both).
    """
    return (f"add table inet {DRAIN_TABLE}\ndelete table inet {DRAIN_TABLE}\n"
            f"table inet {DRAIN_TABLE} {{\n  chain input {{\n    type filter hook input priority -5;\n"
            f"    iif lo accept\n    tcp dport {port} tcp flags & (syn | ack) == syn reject with tcp reset\n  }}\n}}\n")


def node_drain(port):
    """Refuse new connections to the app port from other hosts; False (and said) when it cannot."""
    if not shutil.which("nft"):
        log("drain: nft is missing on this node: changing without a drain")
        return False
    proc = run(["nft", "-f", "-"], input=drain_rules(port), check=False)
    if proc.returncode != 0:
        log(f"drain: nft refused ({proc.stdout.strip()}): changing without a drain")
        return False
    return True


def node_undrain():
    if shutil.which("nft"):
        run(["nft", "delete", "table", "inet", DRAIN_TABLE], check=False)



class NodeChange:
    """One node's change: the new bundle and release against what runs now, and how to switch or undo it."""

    def __init__(self, args, files):
        self.args = args
        self.p = app_paths(args.app)
        self.unit_name = f"{args.app}.service"
        self.release = os.path.join(self.p["releases"], args.release)
        if not os.path.exists(os.path.join(self.release, COMPLETE)):
            raise Failure(f"release {args.release} is not on this host (run the release step first)")
        self.new = {
            "conf": files["gunicorn.conf.py"][1],
            "unit": files[self.unit_name][1],
            "env": files["env"][1] if "env" in files else b"",
        }
        self.old = {k: read_bytes(self.p[k]) for k in ("conf", "unit", "env")}
        # Nothing was ever started here (the check step may already have pointed `current` at this release).
        first_deploy = self.old["unit"] is None
        self.old_target = os.readlink(self.p["current"]) if os.path.islink(self.p["current"]) and not first_deploy else None
        self.new_target = os.path.relpath(self.release, self.p["base"])
        self.changed = [k for k in ("conf", "unit", "env") if self.old[k] != self.new[k]]
        if self.old_target != self.new_target:
            self.changed.append("release")
        self.restart = any(k in self.changed for k in ("unit", "env")) or self.venv_of(self.old_target) != self.venv_of(self.new_target)
        self.health_url = f"http://{args.bind}{args.health_path}"

    def venv_of(self, rel):
        link = os.path.join(self.p["base"], rel, ".venv") if rel else None
        return os.readlink(link) if link and os.path.islink(link) else None

    def prepare(self):
        """The app's user and its configuration directory; on a first deploy, `current` (gunicorn checks its chdir)."""
        a = self.args
        ensure_app_user(a.user)
        os.makedirs(self.p["etc"], exist_ok=True)
        os.chmod(self.p["etc"], 0o750)
        os.chown(self.p["etc"], 0, grp.getgrnam(a.user).gr_gid)
        if self.old_target is None:
            # Nothing serves yet, and gunicorn validates `chdir` (= current) while reading its config.
            point_symlink(self.p["current"], self.new_target)

    def stage(self, stage):
        """The new files in a staging directory only the app's group can read, checked with the real tools."""
        a = self.args
        os.chmod(stage, 0o750)
        os.chown(stage, 0, grp.getgrnam(a.user).gr_gid)
        staged = {"conf": os.path.join(stage, "gunicorn.conf.py"), "unit": os.path.join(stage, self.unit_name), "env": os.path.join(stage, "env")}
        write_atomic(staged["conf"], self.new["conf"], 0o640, "root", a.user)
        write_atomic(staged["unit"], self.new["unit"], 0o644)
        write_atomic(staged["env"], self.new["env"], 0o600)
        unit_verify(staged["unit"])
        check_app(self.release, staged["conf"], self.new["env"], a.module, a.user, a.app)
        return staged

    def switch(self):
        """Keeps what ran before (a failed gate restores it), puts the new files and release in, then starts, restarts or HUPs."""
        a, p = self.args, self.p
        shutil.rmtree(p["previous"], ignore_errors=True)
        os.makedirs(p["previous"], mode=0o700)
        for k in ("conf", "unit", "env"):
            if self.old[k] is not None:
                write_atomic(os.path.join(p["previous"], k), self.old[k], 0o600)
        old_workers = child_pids(main_pid(a.app))
        write_atomic(p["conf"], self.new["conf"], 0o640, "root", a.user)
        write_atomic(p["env"], self.new["env"], 0o600)
        write_atomic(p["unit"], self.new["unit"], 0o644)
        point_symlink(p["current"], self.new_target)
        if "unit" in self.changed:
            systemctl("daemon-reload")
        systemctl("enable", "--quiet", self.unit_name)
        if not is_active(a.app):
            systemctl("start", self.unit_name, check=False)
            return "started", old_workers
        if self.restart:
            systemctl("restart", self.unit_name, check=False)
            return "restarted", set()
        systemctl("reload", self.unit_name)
        return "reloaded (HUP)", old_workers

    def roll_back(self, failure):
        """The previous files and release back; the node back in rotation once healthy again. Always raises."""
        a, p = self.args, self.p
        journal = run(["journalctl", "-u", self.unit_name, "-n", "25", "--no-pager", "-o", "cat"], check=False).stdout
        for k in ("conf", "unit", "env"):
            saved = read_bytes(os.path.join(p["previous"], k))
            if saved is not None:
                write_atomic(p[k], saved, 0o640 if k == "conf" else (0o600 if k == "env" else 0o644), "root", a.user if k == "conf" else "root")
        if self.old_target:
            point_symlink(p["current"], self.old_target)
        systemctl("daemon-reload")
        if not self.old_target:
            systemctl("stop", self.unit_name, check=False)
            raise Failure(f"{a.app}: the first deploy failed its health gate ({failure}).\n--- journal ---\n{journal}")
        systemctl("restart", self.unit_name, check=False)
        back = gate(a.app, self.health_url, 1, set(), a.gate_timeout)
        if back is None:
            node_undrain()
        state = "healthy again, back in rotation" if back is None else f"still unhealthy ({back}), left drained"
        raise Failure(
            f"{a.app}: the change failed its health gate ({failure}); rolled back to {self.old_target}, {state}. "
            f"The rollout stops here; nodes not yet updated keep the old version.\n--- journal ---\n{journal}"
        )


def cmd_app(args):
    """A node's part of a rollout: stage and check; then (unless --check-only) drain, switch, gate, admit back or roll back."""
    change = NodeChange(args, read_stdin_bundle())
    if not change.changed and is_active(args.app) and not args.check_only:
        log(f"{args.app}: unchanged (release {args.release})")
        return
    change.prepare()
    stage = tempfile.mkdtemp(dir=change.p["etc"], prefix=".stage-")
    drained = False
    try:
        staged = change.stage(stage)
        if args.check_only:
            # Validated and smoke-booted on this node; nothing switched. No node changes before every node passed.
            smoke_boot(change.release, staged["conf"], change.new["env"], args.module, args.user, args.app, args.health_path)
            log(f"{args.app}: release {args.release} and configuration validated and smoke-booted ({', '.join(change.changed) or 'no change'})")
            return
        drained = node_drain(int(args.bind.rsplit(":", 1)[1])) if not args.no_drain else False
        action, old_workers = change.switch()
        failure = gate(args.app, change.health_url, args.workers, old_workers, args.gate_timeout)
        if failure:
            change.roll_back(failure)
        if drained:
            node_undrain()
        removed = keep_releases(change.p, args.keep, [args.release])
        log(f"{args.app}: {', '.join(change.changed)} changed; {action}; healthy; release {args.release}" + (f"; pruned {len(removed)} old release(s)" if removed else ""))
    except BaseException:
        # Whatever went wrong: a node that serves well goes back into rotation.
        if drained and is_active(args.app) and http_ok(change.health_url):
            node_undrain()
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)


# --- the load balancer's view of the nodes ---------------------------------------

UPSTREAM_SERVER = re.compile(r"^\s*server\s+(\S+:\d+)\b([^;]*);")


def upstream_state(site_text):
    """{address:port: True if in rotation, False if marked down} for the upstream servers of a site."""
    state = {}
    for line in site_text.decode().splitlines():
        m = UPSTREAM_SERVER.match(line)
        if m:
            state[m.group(1)] = " down" not in m.group(2)
    return state


def set_server_down(site_text, server, down):
    """The site text with `server address:port` marked down (drained) or not."""
    lines, found = [], False
    for line in site_text.splitlines():
        stripped = line.strip()
        if stripped.startswith(f"server {server} ") or stripped == f"server {server};":
            found = True
            body = stripped.rstrip(";").replace(" down", "")
            line = line[: len(line) - len(line.lstrip())] + body + (" down;" if down else ";")
        lines.append(line)
    if not found:
        raise Failure(f"{server} is not in the load balancer's upstream")
    return "\n".join(lines) + "\n"


# A drain is a lease: if the step that should re-admit a node never runs (its change failed and was
# rolled back, then the configuration reverted), the node comes back by itself once the lease has
# expired and its health endpoint answers (pycluster-drain-expiry.timer runs `upstream expire`).
LEASES = path("drainLeases")
SITE_CONF = path("nginxSiteConf")


def lease_path(server):
    return os.path.join(LEASES, server.replace(":", "_") + ".json")


def write_lease(server, seconds, health_url):
    os.makedirs(LEASES, exist_ok=True)
    write_atomic(lease_path(server), json.dumps({"server": server, "expires": time.time() + seconds, "health": health_url}).encode(), 0o644)


def set_rotation(changes):
    """Apply {server: down?} to the live site, validated before nginx reloads; a no-op when nothing changes."""
    old = read_bytes(SITE_CONF)
    if old is None:
        raise Failure("the load balancer has no site configuration yet")
    text = old.decode()
    for server, down in changes.items():
        text = set_server_down(text, server, down)
    if text.encode() == old:
        return False
    write_atomic(SITE_CONF, text.encode(), 0o644)
    ok, output = nginx_test(path("nginxConf"))
    if not ok:
        write_atomic(SITE_CONF, old, 0o644)
        raise Failure(f"nginx rejected the upstream change; restored:\n{output}")
    reload_nginx()
    return True


NGINX_ERROR_LOG = path("nginxErrorLog")


def last_upstream_error(server):
    """When nginx last failed to reach `server` (its error log), or None."""
    needle = f'upstream: "http://{server}/'
    last = None
    try:
        with open(NGINX_ERROR_LOG, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4_000_000))
            for raw in f.read().decode(errors="replace").splitlines():
                if needle in raw:
                    last = raw[:19]
    except FileNotFoundError:
        return None
    return datetime.datetime.strptime(last, "%Y/%m/%d %H:%M:%S").timestamp() if last else None


def cmd_upstream(args):
    if args.action == "settle":
        # nginx counts a node's refused connections (while it drained itself) and skips it for
        # fail_timeout: the next node may change only once this one is back in nginx's view, or a
        # fast rollout could leave nginx without a node it considers alive.
        waited, deadline = 0.0, time.monotonic() + args.max_wait
        while time.monotonic() < deadline:
            last = last_upstream_error(args.server)
            if last is None or time.time() - last > args.fail_timeout + 1:
                break
            time.sleep(0.5)
            waited += 0.5
        log(f"upstream: {args.server} back in nginx's rotation" + (f" after {waited:.1f} s" if waited else ""))
        return
    if args.action == "expire":
        clear_stale_flag()
        now, back = time.time(), []
        for name in sorted(os.listdir(LEASES)) if os.path.isdir(LEASES) else []:
            lease = json.loads(open(os.path.join(LEASES, name)).read())
            if lease["expires"] <= now and http_ok(lease["health"]):
                set_rotation({lease["server"]: False})
                os.unlink(os.path.join(LEASES, name))
                back.append(lease["server"])
        log(f"upstream: lease expired, back in rotation: {', '.join(back)}" if back else "upstream: no expired drain")
        return
    if args.action == "drain":
        write_lease(args.server, args.lease, args.health)
        set_rotation({args.server: True})
        # A new token every time: the admit step carries it, so whenever a drain ran, its admit runs too.
        log(f"upstream: {args.server} drained (drain token {secrets.token_hex(4)})")
        return
    set_rotation({args.server: False})
    if os.path.exists(lease_path(args.server)):
        os.unlink(lease_path(args.server))
    log(f"upstream: {args.server} in rotation")


def cmd_gate(args):
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        if http_ok(args.url, host=args.host_header, insecure=args.insecure):
            log(f"gate: {args.url} answers 200")
            return
        time.sleep(0.5)
    raise Failure(f"gate: {args.url} did not answer 200 within {args.timeout} s")



def keep_rotation(staged_site_conf, lease_seconds, health_path):
    """
    Rotation is runtime state: in a staged site, every server keeps the drained/admitted state it has in
    the live one, and a server new to the upstream waits, drained on a lease, for its node's admit step
    (so no request reaches a node before it is healthy).
    """
    in_rotation = upstream_state(read_bytes(SITE_CONF) or b"")
    merged = read_bytes(staged_site_conf).decode()
    for server in upstream_state(merged.encode()):
        merged = set_server_down(merged, server, not in_rotation.get(server, False))
        if server not in in_rotation:
            write_lease(server, lease_seconds, f"http://{server}{health_path}")
    with open(staged_site_conf, "w") as f:
        f.write(merged)
