"""
nginx's reload without the keep-alive race.

A reload starts new workers and tells the old ones to quit; a quitting worker at once closes every
keep-alive connection that is idle between two requests. A client that sent its next request on one
at that moment gets no answer (RFC 9112 9.3.1: it may retry; wrk and many libraries do not). With
busy clients that is nearly every connection: measured on loopback with wrk, 64 connections x 10
reloads, 625 failed requests.

So before the reload the site's proxy location answers with `Connection: close` (the site's `if (-f
<nginxClosingFlag>)`, provisioning/render/nginx.ts): for a moment every response ends its connection,
and the clients open new ones. When the old workers get the signal, no busy connection is idle on
them; requests they are still serving finish there. The flag goes once every old worker is shutting
down; the new ones serve keep-alive again. Same wrk run with this: 0 failed.
"""
import os
import time

from .common import child_pids, ensure_shared_dir, is_active, log, reload_or_start
from .contract import path

CLOSING_FLAG = path("nginxClosingFlag")
NGINX_PID_FILE = "/run/nginx.pid"
# Long enough for every busy keep-alive connection to carry one more request (and be told to close);
# a connection idle for longer is idle at the reload whatever the window.
CLOSE_WINDOW_SECONDS = 1.0
# How long the old workers may take to get the signal from the master (it starts the new ones first).
SIGNAL_WAIT_SECONDS = 30.0
# A flag left behind by a hostctl that was killed mid-reload is removed after this (upstream expire,
# every 30 s): without it every response would close its connection until the next reload.
STALE_FLAG_SECONDS = 60.0


def old_workers_signalled(old, titles):
    """
    Whether every worker of before the reload has been told to quit: it has ended (no title) or its
    title says so ("nginx: worker process is shutting down", set when the worker takes the signal).
    """
    return all(titles.get(pid) is None or "shutting down" in titles[pid] for pid in old)


def _title(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip() or None
    except OSError:
        return None


def nginx_master_pid():
    """The running nginx's master PID, or None."""
    try:
        with open(NGINX_PID_FILE) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def nginx_workers():
    """The running nginx's worker PIDs (and cache processes: every child of the master)."""
    master = nginx_master_pid()
    return sorted(child_pids(master))


def set_closing(flag, on):
    if on:
        ensure_shared_dir(os.path.dirname(flag))
        with open(flag, "w") as f:
            f.write(f"{os.getpid()}\n")
        os.chmod(flag, 0o644)
    elif os.path.exists(flag):
        os.unlink(flag)


def titles_of(pids):
    return {pid: _title(pid) for pid in pids}


def reload_closing_first(reload, workers, flag=CLOSING_FLAG, window=CLOSE_WINDOW_SECONDS, signal_wait=SIGNAL_WAIT_SECONDS):
    """
    Flag on, `window` seconds for busy connections to be told to close, `reload()`, then wait until
    every worker of before (`workers()`) has taken the signal; the flag goes on every exit. Returns
    what `reload()` returned.
    """
    old = workers()
    try:
        set_closing(flag, True)
        time.sleep(window)
        result = reload()
        deadline = time.monotonic() + signal_wait
        while not old_workers_signalled(old, titles_of(old)):
            if time.monotonic() > deadline:
                log(f"nginx: old workers not yet shutting down after {signal_wait:.0f} s; keep-alive restored anyway")
                break
            time.sleep(0.05)
    finally:
        set_closing(flag, False)
    return result


def reload_nginx():
    """Reload a running nginx, keep-alive connections closed at a response boundary first; start a stopped one. Returns what it did."""
    if not is_active("nginx"):
        return reload_or_start("nginx")
    return reload_closing_first(lambda: reload_or_start("nginx"), nginx_workers)


def cmd_nginx_reload(args):
    log(f"nginx: {reload_nginx()}")


def clear_stale_flag(flag=CLOSING_FLAG, now=None):
    """Removes a closing flag older than STALE_FLAG_SECONDS (its hostctl died mid-reload); True if it did."""
    try:
        age = (now or time.time()) - os.stat(flag).st_mtime
    except FileNotFoundError:
        return False
    if age < STALE_FLAG_SECONDS:
        return False
    set_closing(flag, False)
    log(f"nginx: removed a closing flag {age:.0f} s old (a reload that never finished)")
    return True
