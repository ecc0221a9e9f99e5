"""Exporters on every node and Prometheus on the monitoring node: validated with the real tools, switched, restarted, checked."""
import os
import shutil
import tempfile

from .bundle import read_stdin_bundle
from .common import Failure, is_active, log, read_bytes, run, systemctl, wait_http_ok, write_atomic
from .contract import CONTRACT
from .contract import files as contract_files

# Bundle name -> {path, service (or services, for a module several share), reloadable}. Drop-ins
# complete the Debian packages' own units (their conffiles stay untouched); pycluster-statsd-exporter
# and pycluster-access-log-exporter are units of our own.
MONITORING_FILES = contract_files("monitoring")
# Services an earlier pycluster ran and this one replaced (mtail, by pycluster-access-log-exporter).
RETIRED = CONTRACT.get("retired", {}).get("monitoring", [])
DROPIN = "60-pycluster.conf"
# Changes a running service takes with a reload (Prometheus re-reads its configuration and rules on HUP).
RELOADABLE = {name for name, f in MONITORING_FILES.items() if f.get("reloadable")}


def services_of(name, names):
    """The services a bundle file belongs to: its own, or for a shared module those of `names` (the bundle) using it."""
    entry = MONITORING_FILES[name]
    if "service" in entry:
        return [entry["service"]]
    present = {MONITORING_FILES[n].get("service") for n in names}
    return [s for s in entry["services"] if s in present]


def bundle_services(names):
    return sorted({s for n in names for s in services_of(n, names)})


def validate_monitoring(files, stage):
    """The real tools on the staged files: systemd-analyze, promtool, python. Raises Failure."""
    units = os.path.join(stage, "units")
    os.makedirs(units)
    services = bundle_services(files)
    for service in services:
        unit = f"{service}.service"
        own = files.get(unit)
        dropins = [n for n in files if MONITORING_FILES[n].get("service") == service and n.endswith(".conf")]
        if own is not None:
            with open(os.path.join(units, unit), "wb") as f:
                f.write(own[1])
        else:
            packaged = f"/lib/systemd/system/{unit}"
            if not os.path.exists(packaged):
                raise Failure(f"{unit} is not installed (its package is missing); nothing was changed")
            shutil.copy(packaged, os.path.join(units, unit))
        for name in dropins:
            os.makedirs(os.path.join(units, f"{unit}.d"), exist_ok=True)
            with open(os.path.join(units, f"{unit}.d", DROPIN), "wb") as f:
                f.write(files[name][1])
        # --man=no: the packages name their man pages, which a server image need not have.
        proc = run(["systemd-analyze", "verify", "--man=no", os.path.join(units, unit)], check=False)
        if proc.returncode != 0:
            raise Failure(f"systemd-analyze rejected {unit}; nothing was changed:\n{proc.stdout.strip()}")
    if "pycluster.yml" in files:
        conf_dir = os.path.join(stage, "prometheus")
        os.makedirs(conf_dir)
        for name in ("pycluster.yml", "pycluster-alerts.yml"):
            if name in files:
                with open(os.path.join(conf_dir, name), "wb") as f:
                    f.write(files[name][1])
            elif os.path.exists(MONITORING_FILES[name]["path"]):
                shutil.copy(MONITORING_FILES[name]["path"], conf_dir)
        proc = run(["promtool", "check", "config", os.path.join(conf_dir, "pycluster.yml")], check=False)
        if proc.returncode != 0:
            raise Failure(f"promtool rejected the Prometheus configuration; nothing was changed:\n{proc.stdout.strip()}")
    for name in sorted(n for n in files if n.endswith(".py")):
        script = os.path.join(stage, name)
        with open(script, "wb") as f:
            f.write(files[name][1])
        proc = run(["python3", "-m", "py_compile", script], check=False)
        if proc.returncode != 0:
            raise Failure(f"{name} does not compile; nothing was changed:\n{proc.stdout.strip()}")


def retired_here():
    """[(retired service, its pycluster files still on this host)], for each retired service that has any."""
    found = [(r, [p for p in r["paths"] if os.path.exists(p)]) for r in RETIRED]
    return [(r, present) for r, present in found if present]


def retire_replaced(retired):
    """Stops and disables each retired service (from retired_here()) and removes its files."""
    actions = []
    for r, present in retired:
        systemctl("disable", "--now", "--quiet", r["service"], check=False)
        for p in present:
            os.unlink(p)
            # A drop-in's own directory (mtail.service.d) goes too once empty.
            parent = os.path.dirname(p)
            if parent.endswith(".service.d") and not os.listdir(parent):
                os.rmdir(parent)
        actions.append(f"{r['service']} stopped and disabled (replaced by {r['replacedBy']})")
    if actions:
        systemctl("daemon-reload")
    return actions


def apply_changes(services, names_changed, names):
    """Enables every service; restarts (or, for Prometheus' configuration and rules, reloads) those whose files changed."""
    if any(MONITORING_FILES[n]["path"].startswith("/etc/systemd/") for n in names_changed):
        systemctl("daemon-reload")
    actions = []
    for service in services:
        systemctl("enable", "--quiet", service)
        mine = [n for n in names_changed if service in services_of(n, names)]
        if not is_active(service):
            systemctl("restart", service, check=False)
            actions.append(f"{service} started")
        elif mine and all(n in RELOADABLE for n in mine):
            systemctl("reload", service, check=False)
            actions.append(f"{service} reloaded")
        elif mine:
            systemctl("restart", service, check=False)
            actions.append(f"{service} restarted")
    return actions


def cmd_monitoring(args):
    """Stage and validate the monitoring files, switch the changed ones, restart what uses them, check the endpoints."""
    files = read_stdin_bundle()
    for name in files:
        if name not in MONITORING_FILES:
            raise Failure(f"unexpected file in monitoring bundle: {name}")
    endpoints = []
    for spec in args.endpoints:
        service, sep, url = spec.partition("=")
        if not sep or not url.startswith("http://"):
            raise Failure(f"bad endpoint {spec!r}: expected <service>=http://<address>:<port>/<path>")
        endpoints.append((service, url))
    services = bundle_services(files)
    changed = [n for n, (_mode, content) in files.items() if read_bytes(MONITORING_FILES[n]["path"]) != content]
    retiring = retired_here()
    if not changed and not retiring and all(is_active(s) for s in services):
        log(f"monitoring: unchanged ({', '.join(services)})")
        return

    stage = tempfile.mkdtemp(prefix="pycluster-monitoring-")
    try:
        validate_monitoring(files, stage)
    finally:
        shutil.rmtree(stage, ignore_errors=True)

    # A retired service may hold the port of its replacement: it goes first. It is not brought back if
    # the replacement then fails its check (the site is untouched; only those metrics are missing).
    actions = retire_replaced(retiring)
    previous = {n: read_bytes(MONITORING_FILES[n]["path"]) for n in changed}
    for name in changed:
        dest = MONITORING_FILES[name]["path"]
        write_atomic(dest, files[name][1], files[name][0])
    actions += apply_changes(services, changed, files)
    failed = [(s, u) for s, u in endpoints if not wait_http_ok(u, args.timeout)]
    if failed:
        journals = "\n".join(run(["journalctl", "-u", s, "-n", "15", "--no-pager", "-o", "cat"], check=False).stdout for s, _ in failed)
        for name, content in previous.items():
            dest = MONITORING_FILES[name]["path"]
            if content is None:
                os.unlink(dest)
            else:
                write_atomic(dest, content, files[name][0])
        apply_changes(services, list(previous), files)
        raise Failure(
            f"monitoring: {', '.join(u for _, u in failed)} did not answer within {args.timeout:.0f} s; "
            f"the previous files were restored.\n--- journal ---\n{journals}"
        )
    log(f"monitoring: {len(changed)} file(s) changed; {'; '.join(actions) or 'no restart needed'}; "
        f"{len(endpoints)} endpoint(s) answer")


def cmd_monitoring_validate(_args):
    files = read_stdin_bundle()
    for name in files:
        if name not in MONITORING_FILES:
            raise Failure(f"unexpected file in monitoring bundle: {name}")
    stage = tempfile.mkdtemp(prefix="pycluster-monitoring-")
    try:
        validate_monitoring(files, stage)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    log(f"monitoring: {len(files)} file(s) valid")
