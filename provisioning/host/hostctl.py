#!/usr/bin/python3
"""pycluster's agent on each host, run as root by the program's SSH commands.

Every change follows the same path: stage the new files, validate them with the
real tool (nginx -t, gunicorn --check-config, systemd-analyze verify), switch
atomically, reload, check health, and roll back if the check fails. A failed
validation leaves the running service untouched.

Files arrive on stdin as a bundle: "pycluster-bundle 1\n", then per file
"file <name> <octal mode> <byte length>\n<bytes>\n", then "end\n".
Subcommands map bundle names to fixed destinations; stdin never chooses a path.
"""
import argparse
import hashlib
import json
import os
import pwd
import re
import secrets
import grp
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

BUNDLE_HEADER = b"pycluster-bundle 1\n"
# A plain file name, optionally under tls/: no dotfiles, no "..", no other directories.
BUNDLE_NAME = re.compile(r"^(?:tls/)?[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*$")
APT = ["apt-get", "-q", "-o", "DPkg::Lock::Timeout=600"]
CLEAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Failure(Exception):
    """An error the operator must read: printed without a traceback, exit 1."""


def log(message):
    print(message, flush=True)


def run(cmd, check=True, timeout=600, **kwargs):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise Failure(f"{' '.join(cmd[:3])} ... exited {proc.returncode}:\n{proc.stdout.strip()}")
    return proc


# --- bundles and files -------------------------------------------------------

def parse_bundle(data):
    """{name: (mode, bytes)} from the bundle format described above."""
    if not data.startswith(BUNDLE_HEADER):
        raise Failure("stdin is not a pycluster bundle")
    files, pos = {}, len(BUNDLE_HEADER)
    while True:
        eol = data.index(b"\n", pos)
        line = data[pos:eol].decode()
        pos = eol + 1
        if line == "end":
            return files
        kind, name, mode, length = line.split(" ")
        if kind != "file" or not BUNDLE_NAME.match(name):
            raise Failure(f"bad bundle entry: {line!r}")
        length = int(length)
        files[name] = (int(mode, 8), data[pos:pos + length])
        if data[pos + length:pos + length + 1] != b"\n":
            raise Failure(f"bundle entry {name} is truncated")
        pos += length + 1


def read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def write_atomic(path, content, mode, owner="root", group="root"):
    """Write beside the target, then rename: readers see the old or the new file, never half."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".pycluster-")
    try:
        os.fchmod(fd, mode)
        os.fchown(fd, pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def point_symlink(link, target):
    """Atomically make `link` point to `target` (a new link renamed over the old one)."""
    tmp = f"{link}.pycluster-new"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def systemctl(*args, check=True):
    return run(["systemctl", *args], check=check)


def is_active(unit):
    return run(["systemctl", "is-active", "--quiet", unit], check=False).returncode == 0


# --- boot and packages -------------------------------------------------------

def cmd_wait_boot(_args):
    if shutil.which("cloud-init"):
        rc = subprocess.call(["cloud-init", "status", "--wait"], stdout=subprocess.DEVNULL)
        # 0 = done; 2 = done with recoverable errors ("degraded", cloud-init >= 23.4).
        if rc not in (0, 2):
            detail = run(["cloud-init", "status", "--long"], check=False).stdout
            raise Failure(f"cloud-init failed on this host (status {rc}):\n{detail}")
    log(f"host ready: cloud-init done, uptime {open('/proc/uptime').read().split()[0]} s")


def cmd_packages(args):
    missing = []
    for package in args.packages:
        status = run(["dpkg-query", "-W", "-f=${Status}", package], check=False).stdout
        if "install ok installed" not in status:
            missing.append(package)
    if not missing:
        log(f"packages present: {' '.join(args.packages)}")
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(APT + ["update"], env=env, timeout=900)
    run(APT + ["install", "-y", "--no-install-recommends", *missing], env=env, timeout=1800)
    log(f"installed: {' '.join(missing)}")


# --- kernel settings ---------------------------------------------------------

KERNEL_FILES = {
    "sysctl.conf": "/etc/sysctl.d/60-pycluster.conf",
    "pycluster-sysctl.service": "/etc/systemd/system/pycluster-sysctl.service",
    "nginx-limits.conf": "/etc/systemd/system/nginx.service.d/60-pycluster-limits.conf",
    "pycluster-drain-expiry.service": "/etc/systemd/system/pycluster-drain-expiry.service",
    "pycluster-drain-expiry.timer": "/etc/systemd/system/pycluster-drain-expiry.timer",
}


def apply_sysctl_file(path):
    """Apply each key; report the ones the kernel refuses instead of failing."""
    applied, refused = [], []
    for raw in open(path).read().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.lstrip("-").partition("=")
        key, value = key.strip(), value.strip()
        proc_path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(proc_path, "w") as f:
                f.write(value)
            applied.append(key)
        except OSError as e:
            refused.append(f"{key} ({e.strerror})")
    return applied, refused


def cmd_kernel(args):
    files = parse_bundle(sys.stdin.buffer.read())
    changed = []
    for name, (mode, content) in files.items():
        dest = KERNEL_FILES.get(name)
        if dest is None:
            raise Failure(f"unexpected file in kernel bundle: {name}")
        if read_bytes(dest) != content:
            write_atomic(dest, content, mode)
            changed.append(dest)
    if any(p.endswith((".service", ".conf")) and "/systemd/" in p for p in changed):
        systemctl("daemon-reload")
    systemctl("enable", "--quiet", "pycluster-sysctl.service")
    if "pycluster-drain-expiry.timer" in files:
        systemctl("enable", "--now", "--quiet", "pycluster-drain-expiry.timer")
    applied, refused = apply_sysctl_file(KERNEL_FILES["sysctl.conf"])
    log(f"kernel: {len(changed)} file(s) changed; {len(applied)} settings applied")
    if refused:
        # Containers refuse fs.* and friends; on a VM every key applies.
        log(f"kernel: refused by this kernel (not fatal): {', '.join(refused)}")


# --- nginx -------------------------------------------------------------------

NGINX_DIR = "/etc/nginx"
SITE_DIR = "pycluster"


def tree_bytes(root):
    """{relative path: bytes or link target} of a directory, for comparing staged and installed trees."""
    out = {}
    if not os.path.isdir(root):
        return out
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            out[rel] = ("link:" + os.readlink(full)).encode() if os.path.islink(full) else read_bytes(full)
    return out


def nginx_test(conf_path):
    proc = run(["nginx", "-t", "-q", "-c", conf_path], check=False)
    return proc.returncode == 0, proc.stdout.strip()


def cmd_nginx_validate(args):
    ok, output = nginx_test(args.conf)
    if not ok:
        raise Failure(f"nginx rejected the configuration:\n{output}")
    log("nginx: configuration is valid")


def cmd_nginx(args):
    files = parse_bundle(sys.stdin.buffer.read())
    for required in ("nginx.conf", "site.conf"):
        if required not in files:
            raise Failure(f"nginx bundle lacks {required}")
    live_site = os.path.join(NGINX_DIR, SITE_DIR)
    stage = tempfile.mkdtemp(dir=NGINX_DIR, prefix=".pycluster-stage-")
    try:
        staged_site = os.path.join(stage, SITE_DIR)
        os.makedirs(os.path.join(staged_site, "tls"), mode=0o750)
        for name, (mode, content) in files.items():
            target = os.path.join(stage, "nginx.conf") if name == "nginx.conf" else os.path.join(staged_site, name)
            with open(target, "wb") as f:
                f.write(content)
            os.chmod(target, mode)
        live_tls = os.path.join(live_site, "tls")
        letsencrypt_links = os.path.islink(os.path.join(live_tls, "fullchain.pem"))
        if letsencrypt_links or not any(n.startswith("tls/") for n in files):
            # Certificates managed on the host (certbot) stay as they are.
            shutil.rmtree(os.path.join(staged_site, "tls"))
            if os.path.isdir(live_tls):
                shutil.copytree(live_tls, os.path.join(staged_site, "tls"), symlinks=True)
        shutil.copy(os.path.join(NGINX_DIR, "mime.types"), stage)

        # Rotation is runtime state: servers keep their drained/admitted state across
        # configuration pushes, and a server new to the upstream waits, drained, for its
        # node's admit step (so no request reaches a node before it is healthy).
        staged_site_conf = os.path.join(staged_site, "site.conf")
        live_site_conf = os.path.join(live_site, "site.conf")
        in_rotation = upstream_state(read_bytes(live_site_conf) or b"")
        merged = read_bytes(staged_site_conf).decode()
        for server in upstream_state(merged.encode()):
            merged = set_server_down(merged, server, not in_rotation.get(server, False))
            if server not in in_rotation:
                write_lease(server, args.lease, f"http://{server}{args.health_path}")
        with open(staged_site_conf, "w") as f:
            f.write(merged)

        staged_conf = read_bytes(os.path.join(stage, "nginx.conf"))
        if staged_conf == read_bytes(os.path.join(NGINX_DIR, "nginx.conf")) and tree_bytes(staged_site) == tree_bytes(live_site):
            if not is_active("nginx"):
                systemctl("enable", "--now", "nginx")
            log("nginx: configuration unchanged")
            return

        ok, output = nginx_test(os.path.join(stage, "nginx.conf"))
        if not ok:
            raise Failure(f"nginx rejected the new configuration; the running configuration is unchanged:\n{output}")

        previous = os.path.join(NGINX_DIR, ".pycluster-previous")
        shutil.rmtree(previous, ignore_errors=True)
        os.makedirs(previous)
        shutil.copy2(os.path.join(NGINX_DIR, "nginx.conf"), previous)
        if os.path.isdir(live_site):
            shutil.copytree(live_site, os.path.join(previous, SITE_DIR), symlinks=True)

        def install(from_dir, conf_from):
            old = live_site + ".pycluster-old"
            shutil.rmtree(old, ignore_errors=True)
            if os.path.isdir(live_site):
                os.rename(live_site, old)
            shutil.copytree(from_dir, live_site, symlinks=True)
            shutil.rmtree(old, ignore_errors=True)
            write_atomic(os.path.join(NGINX_DIR, "nginx.conf"), read_bytes(conf_from), 0o644)

        install(staged_site, os.path.join(stage, "nginx.conf"))
        ok, output = nginx_test(os.path.join(NGINX_DIR, "nginx.conf"))
        if not ok:
            if os.path.isdir(os.path.join(previous, SITE_DIR)):
                install(os.path.join(previous, SITE_DIR), os.path.join(previous, "nginx.conf"))
            raise Failure(f"nginx rejected the installed configuration; the previous one was restored:\n{output}")
        if is_active("nginx"):
            systemctl("reload", "nginx")
            action = "reloaded"
        else:
            systemctl("enable", "--now", "nginx")
            action = "started"
        if not is_active("nginx"):
            raise Failure("nginx is not running after the change:\n" + run(["journalctl", "-u", "nginx", "-n", "20", "--no-pager"], check=False).stdout)
        log(f"nginx: configuration validated and {action}")
    finally:
        shutil.rmtree(stage, ignore_errors=True)


# --- monitoring ----------------------------------------------------------------

# Bundle name -> (destination, service). Drop-ins complete the Debian packages' own units (their
# conffiles stay untouched); pycluster-statsd-exporter is a unit of our own.
DROPIN = "60-pycluster.conf"
MONITORING_FILES = {
    "prometheus-node-exporter.conf": (f"/etc/systemd/system/prometheus-node-exporter.service.d/{DROPIN}", "prometheus-node-exporter"),
    "prometheus-nginx-exporter.conf": (f"/etc/systemd/system/prometheus-nginx-exporter.service.d/{DROPIN}", "prometheus-nginx-exporter"),
    "mtail.conf": (f"/etc/systemd/system/mtail.service.d/{DROPIN}", "mtail"),
    "nginx-access.mtail": ("/etc/mtail/pycluster-nginx-access.mtail", "mtail"),
    "statsd_exporter.py": ("/usr/local/lib/pycluster/statsd_exporter.py", "pycluster-statsd-exporter"),
    "pycluster-statsd-exporter.service": ("/etc/systemd/system/pycluster-statsd-exporter.service", "pycluster-statsd-exporter"),
    "prometheus.conf": (f"/etc/systemd/system/prometheus.service.d/{DROPIN}", "prometheus"),
    "pycluster.yml": ("/etc/prometheus/pycluster.yml", "prometheus"),
    "pycluster-alerts.yml": ("/etc/prometheus/pycluster-alerts.yml", "prometheus"),
}
# Changes a running service takes with a reload (Prometheus re-reads its configuration and rules on HUP).
RELOADABLE = {"pycluster.yml", "pycluster-alerts.yml"}


def validate_monitoring(files, stage):
    """The real tools on the staged files: systemd-analyze, mtail, promtool, python. Raises Failure."""
    units = os.path.join(stage, "units")
    os.makedirs(units)
    services = sorted({MONITORING_FILES[n][1] for n in files})
    for service in services:
        unit = f"{service}.service"
        own = files.get(unit)
        dropins = [n for n in files if MONITORING_FILES[n][1] == service and n.endswith(".conf")]
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
    programs = [n for n in files if n.endswith(".mtail")]
    if programs:
        progs = os.path.join(stage, "mtail")
        os.makedirs(progs)
        for name in programs:
            with open(os.path.join(progs, name), "wb") as f:
                f.write(files[name][1])
        proc = run(["mtail", "--compile_only", "--logtostderr", "--progs", progs], check=False)
        if proc.returncode != 0 or "compile errors" in proc.stdout:
            raise Failure(f"mtail rejected its program; nothing was changed:\n{proc.stdout.strip()[-3000:]}")
    if "pycluster.yml" in files:
        conf_dir = os.path.join(stage, "prometheus")
        os.makedirs(conf_dir)
        for name in ("pycluster.yml", "pycluster-alerts.yml"):
            if name in files:
                with open(os.path.join(conf_dir, name), "wb") as f:
                    f.write(files[name][1])
            elif os.path.exists(MONITORING_FILES[name][0]):
                shutil.copy(MONITORING_FILES[name][0], conf_dir)
        proc = run(["promtool", "check", "config", os.path.join(conf_dir, "pycluster.yml")], check=False)
        if proc.returncode != 0:
            raise Failure(f"promtool rejected the Prometheus configuration; nothing was changed:\n{proc.stdout.strip()}")
    if "statsd_exporter.py" in files:
        script = os.path.join(stage, "statsd_exporter.py")
        with open(script, "wb") as f:
            f.write(files["statsd_exporter.py"][1])
        proc = run(["python3", "-m", "py_compile", script], check=False)
        if proc.returncode != 0:
            raise Failure(f"statsd_exporter.py does not compile; nothing was changed:\n{proc.stdout.strip()}")


def wait_http_ok(url, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_ok(url):
            return True
        time.sleep(0.5)
    return False


def cmd_monitoring(args):
    """Stage and validate the monitoring files, switch the changed ones, restart what uses them, check the endpoints."""
    files = parse_bundle(sys.stdin.buffer.read())
    for name in files:
        if name not in MONITORING_FILES:
            raise Failure(f"unexpected file in monitoring bundle: {name}")
    endpoints = []
    for spec in args.endpoints:
        service, sep, url = spec.partition("=")
        if not sep or not url.startswith("http://"):
            raise Failure(f"bad endpoint {spec!r}: expected <service>=http://<address>:<port>/<path>")
        endpoints.append((service, url))
    services = sorted({MONITORING_FILES[n][1] for n in files})
    changed = [n for n, (_mode, content) in files.items() if read_bytes(MONITORING_FILES[n][0]) != content]
    if not changed and all(is_active(s) for s in services):
        log(f"monitoring: unchanged ({', '.join(services)})")
        return

    stage = tempfile.mkdtemp(prefix="pycluster-monitoring-")
    try:
        validate_monitoring(files, stage)
    finally:
        shutil.rmtree(stage, ignore_errors=True)

    previous = {n: read_bytes(MONITORING_FILES[n][0]) for n in changed}
    for name in changed:
        dest = MONITORING_FILES[name][0]
        write_atomic(dest, files[name][1], files[name][0])
    touched = {MONITORING_FILES[n][1] for n in changed}

    def apply(names_changed):
        if any(MONITORING_FILES[n][0].startswith("/etc/systemd/") for n in names_changed):
            systemctl("daemon-reload")
        actions = []
        for service in services:
            systemctl("enable", "--quiet", service)
            mine = [n for n in names_changed if MONITORING_FILES[n][1] == service]
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

    actions = apply(changed)
    failed = [(s, u) for s, u in endpoints if not wait_http_ok(u, args.timeout)]
    if failed:
        journals = "\n".join(run(["journalctl", "-u", s, "-n", "15", "--no-pager", "-o", "cat"], check=False).stdout for s, _ in failed)
        for name, content in previous.items():
            dest = MONITORING_FILES[name][0]
            if content is None:
                os.unlink(dest)
            else:
                write_atomic(dest, content, files[name][0])
        apply(list(previous))
        raise Failure(
            f"monitoring: {', '.join(u for _, u in failed)} did not answer within {args.timeout:.0f} s; "
            f"the previous files were restored.\n--- journal ---\n{journals}"
        )
    log(f"monitoring: {len(changed)} file(s) changed; {'; '.join(actions) or 'no restart needed'}; "
        f"{len(endpoints)} endpoint(s) answer")


def cmd_monitoring_validate(_args):
    files = parse_bundle(sys.stdin.buffer.read())
    for name in files:
        if name not in MONITORING_FILES:
            raise Failure(f"unexpected file in monitoring bundle: {name}")
    stage = tempfile.mkdtemp(prefix="pycluster-monitoring-")
    try:
        validate_monitoring(files, stage)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    log(f"monitoring: {len(files)} file(s) valid")


# --- app releases ------------------------------------------------------------

def app_paths(app):
    base = f"/srv/{app}"
    return {
        "base": base,
        "releases": f"{base}/releases",
        "venvs": f"{base}/venvs",
        "current": f"{base}/current",
        "etc": f"/etc/{app}",
        "conf": f"/etc/{app}/gunicorn.conf.py",
        "env": f"/etc/{app}/env",
        "unit": f"/etc/systemd/system/{app}.service",
        "previous": f"/etc/{app}/.previous",
    }


def archive_path(app, release):
    return f"/var/tmp/pycluster-{app}-{release}.tar.gz"


def safe_extract(archive, dest):
    """Extract a release archive, refusing anything that would land outside dest."""
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            name = os.path.normpath(member.name)
            if name.startswith(("/", "..")) or not (member.isfile() or member.isdir()):
                raise Failure(f"refusing archive entry {member.name!r}")
        tar.extractall(dest)


def requirements_hash(release_dir):
    path = os.path.join(release_dir, "requirements.txt")
    lines = []
    if os.path.exists(path):
        lines = [l.strip() for l in open(path).read().splitlines() if l.strip() and not l.strip().startswith("#")]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:12], lines


def set_tree_owner(root, group):
    gid = grp.getgrnam(group).gr_gid
    for dirpath, dirs, names in os.walk(root):
        for entry in [dirpath] + [os.path.join(dirpath, n) for n in names]:
            if os.path.islink(entry):
                continue
            os.chown(entry, 0, gid)
            mode = os.stat(entry).st_mode & 0o777
            # root writes, the app group reads; nobody else.
            os.chmod(entry, (mode & 0o750) | (0o750 if os.path.isdir(entry) else 0o640))


def ensure_app_user(user):
    try:
        pwd.getpwnam(user)
    except KeyError:
        run(["useradd", "--system", "--user-group", "--home-dir", "/nonexistent", "--no-create-home", "--shell", "/usr/sbin/nologin", user])


def cmd_release(args):
    p = app_paths(args.app)
    release = os.path.join(p["releases"], args.id)
    if os.path.exists(os.path.join(release, ".pycluster-complete")):
        log(f"release {args.id}: already on this host")
        return
    archive = args.archive or archive_path(args.app, args.id)
    if not os.path.exists(archive):
        kept = sorted(os.listdir(p["releases"])) if os.path.isdir(p["releases"]) else []
        raise Failure(f"release {args.id} is not on this host and no archive was uploaded; releases here: {', '.join(kept) or 'none'}")
    ensure_app_user(args.user)
    for d in (p["base"], p["releases"], p["venvs"]):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
    shutil.rmtree(release, ignore_errors=True)
    os.makedirs(release)
    safe_extract(archive, release)

    req_hash, requirements = requirements_hash(release)
    venv = os.path.join(p["venvs"], req_hash)
    if not os.path.exists(os.path.join(venv, ".pycluster-complete")):
        shutil.rmtree(venv, ignore_errors=True)
        # System site-packages: Debian's gunicorn, gevent and uvicorn serve even where no index is reachable.
        run(["python3", "-m", "venv", "--system-site-packages", venv])
        if requirements:
            run([f"{venv}/bin/pip", "install", "--no-input", "--disable-pip-version-check", "-r", os.path.join(release, "requirements.txt")], timeout=1800)
        set_tree_owner(venv, args.user)
        open(os.path.join(venv, ".pycluster-complete"), "w").close()
    os.symlink(os.path.relpath(venv, release), os.path.join(release, ".venv"))
    run([f"{venv}/bin/python", "-m", "compileall", "-q", release], check=False)
    set_tree_owner(release, args.user)
    open(os.path.join(release, ".pycluster-complete"), "w").close()
    log(f"release {args.id}: unpacked, venv {req_hash} ({len(requirements)} requirement(s))")


def parse_env_file(content):
    """The subset of systemd's EnvironmentFile syntax that renderEnvFile writes."""
    env = {}
    for line in content.decode().splitlines():
        if not line or line.startswith("#"):
            continue
        key, sep, rest = line.partition("=")
        if not sep or len(rest) < 2 or rest[0] != '"' or rest[-1] != '"':
            raise Failure("the env file has a line that is not KEY=\"value\"")
        value, i, body = [], 0, rest[1:-1]
        while i < len(body):
            if body[i] == "\\" and i + 1 < len(body) and body[i + 1] in '\\"`$':
                value.append(body[i + 1])
                i += 2
            else:
                value.append(body[i])
                i += 1
        env[key] = "".join(value)
    return env


def check_app(release, conf, env_content, module, user, app):
    """gunicorn's own check (imports the app) plus loading the worker class, as the app user."""
    env = {"PATH": CLEAN_PATH, "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "APP_STATE_DIR": f"/var/lib/{app}"}
    env.update(parse_env_file(env_content))
    python = os.path.join(release, ".venv", "bin", "python")
    as_user = ["runuser", "-u", user, "--"]
    checks = [
        [python, "-m", "gunicorn", "--check-config", "-c", conf, "--chdir", release, module],
        # --check-config accepts an unknown worker_class: resolve it too.
        [python, "-c", "import sys\nfrom gunicorn.app.wsgiapp import WSGIApplication\nsys.argv = ['gunicorn'] + sys.argv[1:]\nWSGIApplication().cfg.worker_class",
         "-c", conf, "--chdir", release, module],
    ]
    for check in checks:
        proc = subprocess.run(as_user + check, cwd=release, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
        if proc.returncode != 0:
            raise Failure(f"gunicorn rejected the new configuration or release; nothing was switched:\n{proc.stdout.strip()[-3000:]}")


def free_port():
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def smoke_boot(release, conf, env_content, module, user, app, health_path, timeout=30):
    """
    Boots the new release with the new configuration on a spare loopback port (one worker, as the
    app user) and waits for its health endpoint: what validates but fails once it serves (an app on
    the wrong worker class, an import that only breaks at request time) is caught before any node
    changes.
    """
    port = free_port()
    env = {"PATH": CLEAN_PATH, "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "APP_STATE_DIR": tempfile.mkdtemp(prefix=f"{app}-smoke-")}
    os.chown(env["APP_STATE_DIR"], pwd.getpwnam(user).pw_uid, grp.getgrnam(user).gr_gid)
    env.update(parse_env_file(env_content))
    python = os.path.join(release, ".venv", "bin", "python")
    argv = ["runuser", "-u", user, "--", python, "-m", "gunicorn", "-c", conf, "--chdir", release,
            "--bind", f"127.0.0.1:{port}", "--workers", "1", "--max-requests", "0", module]
    out = tempfile.TemporaryFile()
    proc = subprocess.Popen(argv, cwd=release, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}{health_path}"
    try:
        deadline, status = time.monotonic() + timeout, None
        while time.monotonic() < deadline and proc.poll() is None:
            status = http_status(url)
            if status == 200:
                return
            if status is not None and (status >= 500 or status == NO_ANSWER):
                break
            time.sleep(0.3)
        out.seek(0)
        detail = out.read().decode(errors="replace").strip()[-3000:]
        what = f"answered {status}" if status else ("exited" if proc.poll() is not None else "did not answer")
        raise Failure(f"the new release and configuration booted on a spare port but {health_path} {what}; nothing was switched:\n{detail}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
        shutil.rmtree(env["APP_STATE_DIR"], ignore_errors=True)


def cmd_app_validate(args):
    check_app(args.release_dir, args.conf, read_bytes(args.env) if args.env else b"", args.module, args.user, args.app)
    log("gunicorn: configuration and app load")


def unit_verify(unit_path):
    proc = run(["systemd-analyze", "verify", unit_path], check=False)
    if proc.returncode != 0:
        raise Failure(f"systemd-analyze rejected the unit; nothing was switched:\n{proc.stdout.strip()}")


def cmd_unit_validate(args):
    unit_verify(args.unit)
    log("systemd: unit is valid")


def main_pid(unit):
    out = run(["systemctl", "show", "-p", "MainPID", "--value", unit], check=False).stdout.strip()
    return int(out) if out.isdigit() else 0


def children(pid):
    if not pid:
        return set()
    out = run(["ps", "--ppid", str(pid), "-o", "pid="], check=False).stdout
    return {int(x) for x in out.split()}


def http_ok(url, timeout=2.0, host=None, insecure=False):
    context = None
    if insecure:
        import ssl
        # The load balancer checking itself: its certificate may be self-signed or issued for its domain.
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    parts = urllib.parse.urlsplit(url)
    if host and parts.scheme == "https":
        # The TLS handshake must name the site too (SNI), as a browser's does: with a domain, nginx
        # refuses handshakes for any other name (ssl_reject_handshake), so the Host header alone fails.
        import http.client
        import ssl
        context = context or ssl.create_default_context()
        try:
            raw = socket.create_connection((parts.hostname, parts.port or 443), timeout=timeout)
            conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, timeout=timeout, context=context)
            conn.sock = context.wrap_socket(raw, server_hostname=host)
            try:
                conn.request("GET", parts.path or "/", headers={"Host": host})
                return conn.getresponse().status == 200
            finally:
                conn.close()
        except (OSError, http.client.HTTPException, ValueError):
            return False
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


NO_ANSWER = 0


def http_status(url, timeout=2.0):
    """
    The HTTP status of a GET; NO_ANSWER when the server accepted the connection but closed it without
    an answer (a crashing worker); None when nothing listens or answers in time.
    """
    import http.client
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except (http.client.RemoteDisconnected, ConnectionResetError):
        return NO_ANSWER
    except urllib.error.URLError as e:
        return NO_ANSWER if isinstance(e.reason, (http.client.RemoteDisconnected, ConnectionResetError)) else None
    except (OSError, ValueError):
        return None


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
            fresh = children(main_pid(app)) - old_workers
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


def node_drain(port):
    """Refuse new connections to the app port from other hosts; False (and said) when it cannot."""
    if not shutil.which("nft"):
        log("drain: nft is missing on this node: changing without a drain")
        return False
    rules = (f"add table inet {DRAIN_TABLE}\ndelete table inet {DRAIN_TABLE}\n"
             f"table inet {DRAIN_TABLE} {{\n  chain input {{\n    type filter hook input priority -5;\n"
             f"    iif lo accept\n    tcp dport {port} ct state new reject with tcp reset\n  }}\n}}\n")
    proc = run(["nft", "-f", "-"], input=rules, check=False)
    if proc.returncode != 0:
        log(f"drain: nft refused ({proc.stdout.strip()}): changing without a drain")
        return False
    return True


def node_undrain():
    if shutil.which("nft"):
        run(["nft", "delete", "table", "inet", DRAIN_TABLE], check=False)


def keep_releases(p, keep, protect):
    """Newest `keep` complete releases stay (plus `protect`); older ones, unused venvs and archives go."""
    if not os.path.isdir(p["releases"]):
        return []
    complete = []
    for rid in os.listdir(p["releases"]):
        marker = os.path.join(p["releases"], rid, ".pycluster-complete")
        if os.path.exists(marker):
            complete.append((os.path.getmtime(marker), rid))
    complete.sort(reverse=True)
    kept = {rid for _, rid in complete[:keep]} | set(protect)
    removed = []
    for _, rid in complete:
        if rid not in kept:
            shutil.rmtree(os.path.join(p["releases"], rid), ignore_errors=True)
            removed.append(rid)
    used = {os.path.basename(os.readlink(os.path.join(p["releases"], r, ".venv"))) for r in kept if os.path.islink(os.path.join(p["releases"], r, ".venv"))}
    for venv in os.listdir(p["venvs"]) if os.path.isdir(p["venvs"]) else []:
        if venv not in used:
            shutil.rmtree(os.path.join(p["venvs"], venv), ignore_errors=True)
    for rid in removed:
        archive = archive_path(os.path.basename(p["base"]), rid)
        if os.path.exists(archive):
            os.unlink(archive)
    return removed


def cmd_app(args):
    p = app_paths(args.app)
    files = parse_bundle(sys.stdin.buffer.read())
    release = os.path.join(p["releases"], args.release)
    if not os.path.exists(os.path.join(release, ".pycluster-complete")):
        raise Failure(f"release {args.release} is not on this host (run the release step first)")
    unit_name = f"{args.app}.service"
    new = {
        "conf": files["gunicorn.conf.py"][1],
        "unit": files[unit_name][1],
        "env": files["env"][1] if "env" in files else b"",
    }
    old = {k: read_bytes(p[k]) for k in ("conf", "unit", "env")}
    # Nothing was ever started here (the check step may already have pointed `current` at this release).
    first_deploy = old["unit"] is None
    old_target = os.readlink(p["current"]) if os.path.islink(p["current"]) and not first_deploy else None
    new_target = os.path.relpath(release, p["base"])
    venv_of = lambda rel: os.readlink(os.path.join(p["base"], rel, ".venv")) if rel and os.path.islink(os.path.join(p["base"], rel, ".venv")) else None
    changed = [k for k in ("conf", "unit", "env") if old[k] != new[k]]
    if old_target != new_target:
        changed.append("release")
    restart = any(k in changed for k in ("unit", "env")) or venv_of(old_target) != venv_of(new_target)
    health_url = f"http://{args.bind}{args.health_path}"

    if not changed and is_active(args.app) and not args.check_only:
        log(f"{args.app}: unchanged (release {args.release})")
        return

    ensure_app_user(args.user)
    os.makedirs(p["etc"], exist_ok=True)
    os.chmod(p["etc"], 0o750)
    os.chown(p["etc"], 0, grp.getgrnam(args.user).gr_gid)
    if old_target is None:
        # First deploy: nothing serves yet, and gunicorn validates `chdir` (= current) while reading its config.
        point_symlink(p["current"], new_target)

    stage = tempfile.mkdtemp(dir=p["etc"], prefix=".stage-")
    os.chmod(stage, 0o750)
    os.chown(stage, 0, grp.getgrnam(args.user).gr_gid)
    drained = False
    try:
        staged = {"conf": os.path.join(stage, "gunicorn.conf.py"), "unit": os.path.join(stage, unit_name), "env": os.path.join(stage, "env")}
        write_atomic(staged["conf"], new["conf"], 0o640, "root", args.user)
        write_atomic(staged["unit"], new["unit"], 0o644)
        write_atomic(staged["env"], new["env"], 0o600)
        unit_verify(staged["unit"])
        check_app(release, staged["conf"], new["env"], args.module, args.user, args.app)
        if args.check_only:
            # Validated and smoke-booted on this node; nothing switched. No node changes before every node passed.
            smoke_boot(release, staged["conf"], new["env"], args.module, args.user, args.app, args.health_path)
            log(f"{args.app}: release {args.release} and configuration validated and smoke-booted ({', '.join(changed) or 'no change'})")
            return

        # Switch: keep what ran before, so a failed gate can restore it.
        shutil.rmtree(p["previous"], ignore_errors=True)
        os.makedirs(p["previous"], mode=0o700)
        for k in ("conf", "unit", "env"):
            if old[k] is not None:
                write_atomic(os.path.join(p["previous"], k), old[k], 0o600)
        port = int(args.bind.rsplit(":", 1)[1])
        drained = node_drain(port) if not args.no_drain else False
        old_workers = children(main_pid(args.app))
        write_atomic(p["conf"], new["conf"], 0o640, "root", args.user)
        write_atomic(p["env"], new["env"], 0o600)
        write_atomic(p["unit"], new["unit"], 0o644)
        point_symlink(p["current"], new_target)
        if "unit" in changed:
            systemctl("daemon-reload")
        systemctl("enable", "--quiet", unit_name)
        if not is_active(args.app):
            action = "started"
            systemctl("start", unit_name, check=False)
        elif restart:
            action = "restarted"
            old_workers = set()
            systemctl("restart", unit_name, check=False)
        else:
            action = "reloaded (HUP)"
            systemctl("reload", unit_name)

        failure = gate(args.app, health_url, args.workers, old_workers, args.gate_timeout)
        if not failure and drained:
            node_undrain()
        if failure:
            journal = run(["journalctl", "-u", unit_name, "-n", "25", "--no-pager", "-o", "cat"], check=False).stdout
            for k in ("conf", "unit", "env"):
                saved = read_bytes(os.path.join(p["previous"], k))
                if saved is not None:
                    write_atomic(p[k], saved, 0o640 if k == "conf" else (0o600 if k == "env" else 0o644), "root", args.user if k == "conf" else "root")
            if old_target:
                point_symlink(p["current"], old_target)
            systemctl("daemon-reload")
            if old_target:
                systemctl("restart", unit_name, check=False)
                back = gate(args.app, health_url, 1, set(), args.gate_timeout)
                if back is None:
                    node_undrain()
                state = "healthy again, back in rotation" if back is None else f"still unhealthy ({back}), left drained"
                raise Failure(
                    f"{args.app}: the change failed its health gate ({failure}); rolled back to {old_target}, {state}. "
                    f"The rollout stops here; nodes not yet updated keep the old version.\n--- journal ---\n{journal}"
                )
            systemctl("stop", unit_name, check=False)
            raise Failure(f"{args.app}: the first deploy failed its health gate ({failure}).\n--- journal ---\n{journal}")

        removed = keep_releases(p, args.keep, [args.release])
        log(f"{args.app}: {', '.join(changed)} changed; {action}; healthy; release {args.release}" + (f"; pruned {len(removed)} old release(s)" if removed else ""))
    except BaseException:
        # Whatever went wrong: a node that serves well goes back into rotation.
        if drained and is_active(args.app) and http_ok(health_url):
            node_undrain()
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def cmd_status(args):
    p = app_paths(args.app)
    current = os.readlink(p["current"]) if os.path.islink(p["current"]) else None
    releases = sorted(os.listdir(p["releases"])) if os.path.isdir(p["releases"]) else []
    pid = main_pid(args.app)
    print(json.dumps({
        "current": os.path.basename(current) if current else None,
        "releases": releases,
        "active": is_active(args.app),
        "mainPid": pid,
        "workers": sorted(children(pid)),
    }))


# --- load balancer: static files and certificates ---------------------------

def cmd_static(args):
    """Unpack the static files of a release next to the others, then switch the `static` link atomically."""
    base = f"/var/www/{args.app}"
    releases = os.path.join(base, "static-releases")
    target = os.path.join(releases, args.id)
    if not os.path.exists(os.path.join(target, ".pycluster-complete")):
        archive = f"/var/tmp/pycluster-static-{args.app}-{args.id}.tar.gz"
        if not os.path.exists(archive):
            raise Failure(f"static files {args.id} were not uploaded ({archive} is missing)")
        shutil.rmtree(target, ignore_errors=True)
        os.makedirs(target)
        safe_extract(archive, target)
        for dirpath, _dirs, names in os.walk(target):
            os.chmod(dirpath, 0o755)
            for name in names:
                os.chmod(os.path.join(dirpath, name), 0o644)
        open(os.path.join(target, ".pycluster-complete"), "w").close()
        os.chmod(base, 0o755)
    link = os.path.join(base, "static")
    previous = os.readlink(link) if os.path.islink(link) else None
    point_symlink(link, os.path.relpath(target, base))
    # Keep the three newest sets (clients may still hold pages that reference older files).
    done = sorted((os.path.getmtime(os.path.join(releases, d, ".pycluster-complete")), d) for d in os.listdir(releases)
                  if os.path.exists(os.path.join(releases, d, ".pycluster-complete")))
    for _, d in done[:-3]:
        if d != args.id:
            shutil.rmtree(os.path.join(releases, d), ignore_errors=True)
            archive = f"/var/tmp/pycluster-static-{args.app}-{d}.tar.gz"
            if os.path.exists(archive):
                os.unlink(archive)
    log(f"static files: {args.id} served" + (" (unchanged)" if previous == os.path.relpath(target, base) else ""))


RENEWAL_HOOK = "/etc/letsencrypt/renewal-hooks/deploy/pycluster-reload-nginx"
DNS_POLL_SECONDS = 5


def resolve_ipv4(name):
    """The IPv4 addresses this host's resolver (resolv.conf, as the system's tools see it) gives for name."""
    try:
        infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({info[4][0] for info in infos})


def dns_problem(domain, expected, addresses, managed):
    """None when domain resolves to the load balancer's address only; else what the operator must do.

    The CA fetches the HTTP-01 challenge from the address the domain resolves to (and picks any
    one of several A records), so anything but exactly the LB's address cannot be validated.
    """
    if addresses == [expected]:
        return None
    found = f"resolves to {', '.join(addresses)}" if addresses else "does not resolve"
    if managed:
        fix = (f"this stack's A record for {domain} (dnsZone) points at {expected} but the load balancer's resolver "
               f"does not see it yet: check that the zone's registrar delegates it to OVH's name servers")
    else:
        fix = (f"point an A record for {domain} at {expected}, or set dnsZone to the zone of {domain} at OVH "
               f"so that `pulumi up` manages the record")
    return (f"{domain} {found} here, not the load balancer's public address {expected}: Let's Encrypt validates "
            f"the domain at the address it resolves to. To fix: {fix}; the site serves a temporary certificate "
            f"meanwhile; run `pulumi up` again once {domain} resolves to {expected}.")


def wait_for_dns(domain, expected, managed, wait_seconds):
    """Returns once domain resolves to expected; raises with dns_problem's advice after wait_seconds."""
    deadline = time.monotonic() + wait_seconds
    while True:
        problem = dns_problem(domain, expected, resolve_ipv4(domain), managed)
        if problem is None:
            return
        if time.monotonic() >= deadline:
            raise Failure(problem)
        time.sleep(DNS_POLL_SECONDS)


def cmd_letsencrypt(args):
    """Obtain a certificate with certbot (HTTP-01 through nginx's ACME location), point nginx at it, keep it renewed."""
    # Before anything else: certbot would fail (and count against the CA's rate limits) while the
    # domain points elsewhere. The site keeps its temporary certificate meanwhile.
    wait_for_dns(args.domain, args.expect_address, args.managed_record, args.wait)
    live = f"/etc/letsencrypt/live/{args.domain}"
    if not os.path.exists(os.path.join(live, "fullchain.pem")):
        os.makedirs(args.webroot, exist_ok=True)
        run(["certbot", "certonly", "--webroot", "-w", args.webroot, "-d", args.domain, "-m", args.email,
             "--server", args.server, "--agree-tos", "--non-interactive", "--no-eff-email", "--keep-until-expiring"], timeout=600)
    write_atomic(RENEWAL_HOOK, b"#!/bin/sh\n# Installed by pycluster: renewed certificates take effect without a restart.\nnginx -t -q && systemctl reload nginx\n", 0o755)
    tls = os.path.join(NGINX_DIR, SITE_DIR, "tls")
    wanted = {"fullchain.pem": os.path.join(live, "fullchain.pem"), "privkey.pem": os.path.join(live, "privkey.pem")}
    current = {name: os.readlink(os.path.join(tls, name)) if os.path.islink(os.path.join(tls, name)) else None for name in wanted}
    if current != wanted:
        saved = {name: read_bytes(os.path.join(tls, name)) for name in wanted}
        for name, target in wanted.items():
            point_symlink(os.path.join(tls, name), target)
        ok, output = nginx_test(os.path.join(NGINX_DIR, "nginx.conf"))
        if not ok:
            for name, content in saved.items():
                if content is not None:
                    os.unlink(os.path.join(tls, name))
                    write_atomic(os.path.join(tls, name), content, 0o600 if name == "privkey.pem" else 0o644)
            raise Failure(f"nginx rejected the Let's Encrypt certificate; the previous one is back:\n{output}")
        systemctl("reload", "nginx")
    systemctl("enable", "--now", "--quiet", "certbot.timer", check=False)
    log(f"letsencrypt: {args.domain} served with its certificate; renewal by certbot.timer")


# --- load balancer: upstream membership and gates ---------------------------

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
LEASES = "/var/lib/pycluster/drains"
SITE_CONF = os.path.join(NGINX_DIR, SITE_DIR, "site.conf")


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
    ok, output = nginx_test(os.path.join(NGINX_DIR, "nginx.conf"))
    if not ok:
        write_atomic(SITE_CONF, old, 0o644)
        raise Failure(f"nginx rejected the upstream change; restored:\n{output}")
    systemctl("reload", "nginx")
    return True


NGINX_ERROR_LOG = "/var/log/nginx/error.log"


def last_upstream_error(server):
    """When nginx last failed to reach `server` (its error log), or None."""
    import datetime
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


def main():
    parser = argparse.ArgumentParser(prog="hostctl")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("wait-boot").set_defaults(func=cmd_wait_boot)
    s = sub.add_parser("packages")
    s.add_argument("packages", nargs="+")
    s.set_defaults(func=cmd_packages)
    sub.add_parser("kernel").set_defaults(func=cmd_kernel)
    s = sub.add_parser("nginx")
    s.add_argument("--health-path", default="/healthz")
    s.add_argument("--lease", type=float, default=300)
    s.set_defaults(func=cmd_nginx)
    s = sub.add_parser("nginx-validate")
    s.add_argument("--conf", required=True)
    s.set_defaults(func=cmd_nginx_validate)
    s = sub.add_parser("monitoring")
    s.add_argument("endpoints", nargs="*", help="<service>=<url> that must answer 200 after a change")
    s.add_argument("--timeout", type=float, default=60)
    s.set_defaults(func=cmd_monitoring)
    s = sub.add_parser("monitoring-validate", help="validate a monitoring bundle (stdin) with the real tools; change nothing")
    s.set_defaults(func=cmd_monitoring_validate)
    s = sub.add_parser("release")
    for a in ("--app", "--id", "--user"):
        s.add_argument(a, required=True)
    s.add_argument("--archive")
    s.set_defaults(func=cmd_release)
    s = sub.add_parser("app")
    for a in ("--app", "--release", "--user", "--module", "--bind", "--health-path"):
        s.add_argument(a, required=True)
    s.add_argument("--workers", type=int, required=True)
    s.add_argument("--keep", type=int, default=5)
    s.add_argument("--gate-timeout", type=float, default=60)
    s.add_argument("--check-only", action="store_true", help="stage and validate, switch nothing")
    s.add_argument("--no-drain", action="store_true", help="no other node could take the traffic: change without a drain")
    s.set_defaults(func=cmd_app)
    s = sub.add_parser("app-validate")
    for a in ("--app", "--release-dir", "--conf", "--module", "--user"):
        s.add_argument(a, required=True)
    s.add_argument("--env")
    s.set_defaults(func=cmd_app_validate)
    s = sub.add_parser("unit-validate")
    s.add_argument("--unit", required=True)
    s.set_defaults(func=cmd_unit_validate)
    s = sub.add_parser("static")
    s.add_argument("--app", required=True)
    s.add_argument("--id", required=True)
    s.set_defaults(func=cmd_static)
    s = sub.add_parser("letsencrypt")
    s.add_argument("--domain", required=True)
    s.add_argument("--email", required=True)
    s.add_argument("--webroot", default="/var/www/acme")
    s.add_argument("--server", required=True, help="the ACME directory URL")
    s.add_argument("--expect-address", required=True, help="the load balancer's public address, where the domain must point")
    s.add_argument("--wait", type=float, default=0, help="seconds to wait for the domain to resolve there")
    s.add_argument("--managed-record", action="store_true", help="the stack manages the domain's A record (dnsZone)")
    s.set_defaults(func=cmd_letsencrypt)
    s = sub.add_parser("status")
    s.add_argument("--app", required=True)
    s.set_defaults(func=cmd_status)
    s = sub.add_parser("upstream")
    s.add_argument("action", choices=["drain", "undrain", "expire", "settle"])
    s.add_argument("--fail-timeout", type=float, default=10)
    s.add_argument("--max-wait", type=float, default=60)
    s.add_argument("--server")
    s.add_argument("--lease", type=float, default=300, help="seconds a drain lasts without its admit step")
    s.add_argument("--health", help="the node's health URL, checked before a lease returns it")
    s.set_defaults(func=cmd_upstream)
    s = sub.add_parser("gate")
    s.add_argument("--url", required=True)
    s.add_argument("--timeout", type=float, default=60)
    s.add_argument("--host-header")
    s.add_argument("--insecure", action="store_true")
    s.set_defaults(func=cmd_gate)
    args = parser.parse_args()
    try:
        args.func(args)
    except Failure as e:
        print(f"hostctl {args.command}: {e}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
