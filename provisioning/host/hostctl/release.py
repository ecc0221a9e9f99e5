"""The app's releases on a node (unpacked next to each other, each with its venv) and the LB's static files."""
import datetime
import grp
import hashlib
import json
import os
import pwd
import shutil
import tarfile

from .common import Failure, log, point_symlink, run
from .contract import path

COMPLETE = ".pycluster-complete"


def app_paths(app):
    """Where an app lives on a node (contract.json)."""
    return {
        "base": path("appBase", app=app),
        "releases": path("appReleases", app=app),
        "venvs": path("appVenvs", app=app),
        "current": path("appCurrent", app=app),
        "etc": path("appEtc", app=app),
        "conf": path("appConfig", app=app),
        "env": path("appEnv", app=app),
        "unit": path("appUnit", app=app),
        "previous": path("appPrevious", app=app),
    }


def safe_extract(archive, dest):
    """Extract a release archive, refusing anything that would land outside dest."""
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            name = os.path.normpath(member.name)
            if name.startswith(("/", "..")) or not (member.isfile() or member.isdir()):
                raise Failure(f"refusing archive entry {member.name!r}")
        tar.extractall(dest)


WHEELHOUSE = "wheels"


def requirements_hash(release_dir):
    """What decides a release's venv: its requirements (comments and blank lines aside) and the wheels it ships."""
    req = os.path.join(release_dir, "requirements.txt")
    lines = []
    if os.path.exists(req):
        lines = [l.strip() for l in open(req).read().splitlines() if l.strip() and not l.strip().startswith("#")]
    h = hashlib.sha256("\n".join(lines).encode())
    wheels = os.path.join(release_dir, WHEELHOUSE)
    for name in sorted(os.listdir(wheels)) if os.path.isdir(wheels) else []:
        with open(os.path.join(wheels, name), "rb") as f:
            h.update(b"\0" + name.encode() + b"\0" + hashlib.sha256(f.read()).digest())
    return h.hexdigest()[:12], lines


def pip_install_args(release_dir):
    """pip's arguments for a release: from its own wheelhouse only when it ships one (networks with no package index)."""
    args = ["install", "--no-input", "--disable-pip-version-check", "-r", os.path.join(release_dir, "requirements.txt")]
    wheels = os.path.join(release_dir, WHEELHOUSE)
    if os.path.isdir(wheels):
        args += ["--no-index", "--find-links", wheels]
    return args


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


def keep_releases(p, keep, protect):
    """Newest `keep` complete releases stay (plus `protect`); older ones, unused venvs and archives go."""
    if not os.path.isdir(p["releases"]):
        return []
    complete = []
    for rid in os.listdir(p["releases"]):
        marker = os.path.join(p["releases"], rid, COMPLETE)
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
        archive = path("releaseArchive", app=os.path.basename(p["base"]), release=rid)
        if os.path.exists(archive):
            os.unlink(archive)
    return removed



def list_releases(p):
    """The complete releases of a node, newest first: id, when it was completed (UTC, ISO 8601), whether it is current."""
    if not os.path.isdir(p["releases"]):
        return []
    current = os.path.basename(os.readlink(p["current"])) if os.path.islink(p["current"]) else None
    out = []
    for rid in os.listdir(p["releases"]):
        marker = os.path.join(p["releases"], rid, COMPLETE)
        if os.path.exists(marker):
            done = datetime.datetime.fromtimestamp(os.path.getmtime(marker), datetime.timezone.utc)
            out.append({"id": rid, "completed": done.strftime("%Y-%m-%dT%H:%M:%SZ"), "current": rid == current})
    return sorted(out, key=lambda r: r["completed"], reverse=True)


def cmd_releases(args):
    print(json.dumps(list_releases(app_paths(args.app))))


def cmd_release(args):
    p = app_paths(args.app)
    release = os.path.join(p["releases"], args.release)
    if os.path.exists(os.path.join(release, COMPLETE)):
        log(f"release {args.release}: already on this host")
        return
    archive = args.archive or path("releaseArchive", app=args.app, release=args.release)
    if not os.path.exists(archive):
        kept = sorted(os.listdir(p["releases"])) if os.path.isdir(p["releases"]) else []
        raise Failure(f"release {args.release} is not on this host and no archive was uploaded; releases here: {', '.join(kept) or 'none'}")
    ensure_app_user(args.user)
    for d in (p["base"], p["releases"], p["venvs"]):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)
    shutil.rmtree(release, ignore_errors=True)
    os.makedirs(release)
    safe_extract(archive, release)
    req_hash, requirements = requirements_hash(release)
    venv = ensure_venv(os.path.join(p["venvs"], req_hash), release, requirements, args.user)
    os.symlink(os.path.relpath(venv, release), os.path.join(release, ".venv"))
    run([f"{venv}/bin/python", "-m", "compileall", "-q", release], check=False)
    set_tree_owner(release, args.user)
    open(os.path.join(release, COMPLETE), "w").close()
    log(f"release {args.release}: unpacked, venv {req_hash} ({len(requirements)} requirement(s))")


def ensure_venv(venv, release, requirements, user):
    """The venv for these requirements, shared by the releases that have the same ones."""
    if not os.path.exists(os.path.join(venv, COMPLETE)):
        shutil.rmtree(venv, ignore_errors=True)
        # System site-packages: Debian's gunicorn, gevent and uvicorn serve even where no index is reachable.
        run(["python3", "-m", "venv", "--system-site-packages", venv])
        if requirements:
            run([f"{venv}/bin/pip", *pip_install_args(release)], timeout=1800)
        set_tree_owner(venv, user)
        open(os.path.join(venv, COMPLETE), "w").close()
    return venv


def cmd_static(args):
    """Unpack the static files of a release next to the others, then switch the `static` link atomically."""
    base = path("staticBase", app=args.app)
    releases = os.path.join(base, "static-releases")
    target = os.path.join(releases, args.release)
    if not os.path.exists(os.path.join(target, COMPLETE)):
        archive = path("staticArchive", app=args.app, release=args.release)
        if not os.path.exists(archive):
            raise Failure(f"static files {args.release} were not uploaded ({archive} is missing)")
        shutil.rmtree(target, ignore_errors=True)
        os.makedirs(target)
        safe_extract(archive, target)
        for dirpath, _dirs, names in os.walk(target):
            os.chmod(dirpath, 0o755)
            for name in names:
                os.chmod(os.path.join(dirpath, name), 0o644)
        open(os.path.join(target, COMPLETE), "w").close()
        os.chmod(base, 0o755)
    link = os.path.join(base, "static")
    previous = os.readlink(link) if os.path.islink(link) else None
    point_symlink(link, os.path.relpath(target, base))
    # Keep the three newest sets (clients may still hold pages that reference older files).
    done = sorted((os.path.getmtime(os.path.join(releases, d, COMPLETE)), d) for d in os.listdir(releases)
                  if os.path.exists(os.path.join(releases, d, COMPLETE)))
    for _, d in done[:-3]:
        if d != args.release:
            shutil.rmtree(os.path.join(releases, d), ignore_errors=True)
            archive = path("staticArchive", app=args.app, release=d)
            if os.path.exists(archive):
                os.unlink(archive)
    log(f"static files: {args.release} served" + (" (unchanged)" if previous == os.path.relpath(target, base) else ""))
