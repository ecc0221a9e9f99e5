"""The real tools on what is about to serve: gunicorn's own check, a smoke boot on a spare port, systemd-analyze verify."""
import grp
import os
import pwd
import shutil
import subprocess
import tempfile
import time

from .common import CLEAN_PATH, Failure, NO_ANSWER, http_status, log, read_bytes, run

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


def nginx_test(conf_path):
    proc = run(["nginx", "-t", "-q", "-c", conf_path], check=False)
    return proc.returncode == 0, proc.stdout.strip()


def cmd_nginx_validate(args):
    ok, output = nginx_test(args.conf)
    if not ok:
        raise Failure(f"nginx rejected the configuration:\n{output}")
    log("nginx: configuration is valid")
