#!/usr/bin/python3
"""pycluster-statsd-exporter: gunicorn's statsd metrics and worker status, served to Prometheus.

gunicorn sends statsd datagrams (statsd_host in gunicorn.conf.py) to a loopback
UDP port; this keeps the values and answers GET /metrics on the node's private
address in Prometheus' text format. Debian 12 has no prometheus-statsd-exporter,
and mtail's datagram input needs newline-terminated lines, which gunicorn does
not send: hence this small stdlib-only program.

Worker status is read at each scrape from the app unit's cgroup (--unit), not
from statsd: gunicorn reports its worker count only when it changes, so after
a restart of this exporter, or once the master is gone, statsd says nothing.
  gunicorn_up{app}          1 while the unit's gunicorn master runs
  gunicorn_workers{app}     worker processes of that master, right now

Mapping of statsd lines (gunicorn 20+ with statsd_prefix "<app>"):
  <app>.gunicorn.workers:N|g               (ignored: the cgroup gives the count)
  <app>.gunicorn.requests:N|c              gunicorn_requests_total{app}
  <app>.gunicorn.request.status.NNN:N|c    gunicorn_responses_total{app,status}
  <app>.gunicorn.request.duration:MS|ms    gunicorn_request_duration_seconds{app} (histogram)
  <app>.gunicorn.log.LEVEL:N|c             gunicorn_log_messages_total{app,level}
anything else                              statsd_exporter_unmapped_total
"""
import argparse
import os
import re
import socket
import sys
import threading

from prometheus_text import Histogram, exposition, host_port, label_text, number, serve_metrics

LINE = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+):(?P<value>-?[0-9.eE+-]+)\|(?P<type>c|g|ms|h|s)(?:\|@(?P<rate>[0-9.]+))?(?:\|#.*)?$")
METRIC = re.compile(r"^(?:(?P<app>[A-Za-z0-9_-]+)\.)?gunicorn\.(?P<rest>.+)$")

HELP = {
    "gunicorn_up": ("gauge", "1 while the app unit's gunicorn master process runs."),
    "gunicorn_workers": ("gauge", "Worker processes of the gunicorn master (from the app unit's cgroup)."),
    "gunicorn_requests_total": ("counter", "Requests gunicorn answered."),
    "gunicorn_responses_total": ("counter", "Responses gunicorn sent, by HTTP status."),
    "gunicorn_request_duration_seconds": ("histogram", "Time gunicorn spent on a request."),
    "gunicorn_log_messages_total": ("counter", "Messages gunicorn logged, by level."),
    "statsd_exporter_datagrams_total": ("counter", "statsd datagrams received."),
    "statsd_exporter_unmapped_total": ("counter", "statsd lines that are not gunicorn metrics, or malformed."),
}


class Store:
    """The current values; every update and every rendering holds the lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.gauges = {}      # (name, labels) -> value
        self.counters = {}    # (name, labels) -> value
        self.histograms = {}  # labels -> Histogram
        self.counters[("statsd_exporter_datagrams_total", ())] = 0
        self.counters[("statsd_exporter_unmapped_total", ())] = 0

    def add(self, name, labels, value):
        key = (name, labels)
        self.counters[key] = self.counters.get(key, 0) + value

    def observe(self, labels, seconds):
        self.histograms.setdefault(labels, Histogram()).observe(seconds)

    def datagram(self, data):
        with self.lock:
            self.add("statsd_exporter_datagrams_total", (), 1)
            for line in data.decode("ascii", "replace").splitlines():
                if line.strip():
                    self.line(line.strip())

    def line(self, line):
        m = LINE.match(line)
        g = METRIC.match(m.group("name")) if m else None
        if not g:
            self.add("statsd_exporter_unmapped_total", (), 1)
            return
        value, kind = float(m.group("value")), m.group("type")
        rate = float(m.group("rate") or 1) or 1.0
        app = (("app", g.group("app")),) if g.group("app") else ()
        rest = g.group("rest")
        status = re.match(r"^request\.status\.(\d{3})$", rest)
        level = re.match(r"^log\.([a-z]+)$", rest)
        if rest == "workers" and kind == "g":
            pass
        elif rest == "requests" and kind == "c":
            self.add("gunicorn_requests_total", app, value / rate)
        elif status and kind == "c":
            self.add("gunicorn_responses_total", app + (("status", status.group(1)),), value / rate)
        elif rest == "request.duration" and kind in ("ms", "h"):
            self.observe(app, value / 1000.0)
        elif level and kind == "c":
            self.add("gunicorn_log_messages_total", app + (("level", level.group(1)),), value / rate)
        else:
            self.add("statsd_exporter_unmapped_total", (), 1)

    def render(self, extra_gauges=()):
        with self.lock:
            series = {}
            for name, labels, value in extra_gauges:
                series.setdefault(name, []).append(f"{name}{label_text(labels)} {number(value)}")
            for (name, labels), value in list(self.gauges.items()) + list(self.counters.items()):
                series.setdefault(name, []).append(f"{name}{label_text(labels)} {number(value)}")
            for labels, h in self.histograms.items():
                name = "gunicorn_request_duration_seconds"
                series.setdefault(name, []).extend(h.lines(name, labels))
        return exposition(series, HELP)


# Where a systemd unit's processes are listed: cgroup v2, or the v1 "systemd" and "unified" hierarchies.
CGROUP_LAYOUTS = ("system.slice/{unit}/cgroup.procs", "systemd/system.slice/{unit}/cgroup.procs", "unified/system.slice/{unit}/cgroup.procs")


def unit_processes(cgroup_root, unit):
    """PIDs in the unit's cgroup, or None when the unit has no cgroup (not running)."""
    for layout in CGROUP_LAYOUTS:
        try:
            with open(os.path.join(cgroup_root, layout.format(unit=unit))) as f:
                return [int(line) for line in f.read().split()]
        except (FileNotFoundError, ValueError):
            continue
    return None


def parent_of(pid):
    """The parent of a running process; None when it is gone or a zombie (dead, waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
            state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
        return None if state in ("Z", "X") else int(ppid)
    except (OSError, IndexError, ValueError):
        return None


def worker_status(cgroup_root, unit):
    """(master running, its worker processes): the master is the unit's process whose parent is outside it."""
    pids = unit_processes(cgroup_root, unit) or []
    parents = {pid: parent_of(pid) for pid in pids}
    masters = [pid for pid, ppid in parents.items() if ppid is not None and ppid not in parents]
    if not masters:
        return 0, 0
    master = min(masters)
    return 1, sum(1 for ppid in parents.values() if ppid == master)


def serve(store, statsd, listen, unit=None, app=None, cgroup_root="/sys/fs/cgroup"):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(statsd)

    def receive():
        while True:
            data, _ = udp.recvfrom(65535)
            store.datagram(data)

    threading.Thread(target=receive, daemon=True).start()

    def render():
        extra = []
        if unit:
            up, workers = worker_status(cgroup_root, unit)
            labels = (("app", app),) if app else ()
            extra = [("gunicorn_up", labels, up), ("gunicorn_workers", labels, workers)]
        return store.render(extra)

    print(f"pycluster-statsd-exporter: statsd on udp {statsd[0]}:{statsd[1]}, metrics on http://{listen[0]}:{listen[1]}/metrics", flush=True)
    serve_metrics(listen, render)


def main():
    parser = argparse.ArgumentParser(prog="pycluster-statsd-exporter")
    parser.add_argument("--statsd", default="127.0.0.1:9125", help="UDP host:port gunicorn sends statsd to")
    parser.add_argument("--listen", required=True, help="host:port of the /metrics endpoint")
    parser.add_argument("--unit", help="the app's systemd unit, e.g. webapp.service: its gunicorn master and workers are counted")
    parser.add_argument("--app", help="value of the app label of the worker status (the statsd prefix labels the rest)")
    parser.add_argument("--cgroup-root", default="/sys/fs/cgroup")
    args = parser.parse_args()
    try:
        serve(Store(), host_port(args.statsd), host_port(args.listen), args.unit, args.app, args.cgroup_root)
    except OSError as e:
        print(f"pycluster-statsd-exporter: {e}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
