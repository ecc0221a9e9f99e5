"""
The load balancer's nginx: stage a bundle, validate it with nginx -t, switch it in, reload. In a pair
the LB holding the public address changes last: its first pass validates only (--defer-if-holder), and
the program's finishing step switches it once its peer has changed and answered (--check-url) and, if
the site answered through it before the switch, still does (--site-url): the proof a move of the
public address to the changed LB would give, without dropping the holder's connections.
"""
import os
import shutil
import tempfile

from .bundle import read_stdin_bundle
from .common import Failure, http_ok, is_active, log, read_bytes, systemctl, wait_http_ok, write_atomic
from .nginx_reload import reload_nginx
from .contract import path
from .rollout import keep_rotation
from .validate import nginx_test
from .vrrp import STATE_FILE as VRRP_STATE_FILE, holds_address

NGINX_DIR = path("nginxDir")
NGINX_CONF = path("nginxConf")
LIVE_SITE = path("nginxSite")
SITE_DIR = os.path.basename(LIVE_SITE)
PREVIOUS = os.path.join(NGINX_DIR, ".pycluster-previous")
# After a switch, how long nginx has to answer its status listener before the previous configuration
# comes back: a reload that works answers within a second.
CHECK_SECONDS = 15


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


def stage_bundle(files, stage):
    """Writes the bundle into `stage` as /etc/nginx is laid out; certificates managed on the host (certbot) are kept."""
    staged_site = os.path.join(stage, SITE_DIR)
    os.makedirs(os.path.join(staged_site, "tls"), mode=0o750)
    for name, (mode, content) in files.items():
        target = os.path.join(stage, "nginx.conf") if name == "nginx.conf" else os.path.join(staged_site, name)
        with open(target, "wb") as f:
            f.write(content)
        os.chmod(target, mode)
    live_tls = os.path.join(LIVE_SITE, "tls")
    letsencrypt_links = os.path.islink(os.path.join(live_tls, "fullchain.pem"))
    if letsencrypt_links or not any(n.startswith("tls/") for n in files):
        shutil.rmtree(os.path.join(staged_site, "tls"))
        if os.path.isdir(live_tls):
            shutil.copytree(live_tls, os.path.join(staged_site, "tls"), symlinks=True)
    shutil.copy(os.path.join(NGINX_DIR, "mime.types"), stage)
    return staged_site


def install(site_from, conf_from):
    """Replaces the live site directory and nginx.conf with the given ones."""
    old = LIVE_SITE + ".pycluster-old"
    shutil.rmtree(old, ignore_errors=True)
    if os.path.isdir(LIVE_SITE):
        os.rename(LIVE_SITE, old)
    shutil.copytree(site_from, LIVE_SITE, symlinks=True)
    shutil.rmtree(old, ignore_errors=True)
    write_atomic(NGINX_CONF, read_bytes(conf_from), 0o644)


def switch(stage, staged_site):
    """Validated staged files in; the previous ones back if the installed configuration fails nginx -t."""
    shutil.rmtree(PREVIOUS, ignore_errors=True)
    os.makedirs(PREVIOUS)
    shutil.copy2(NGINX_CONF, PREVIOUS)
    if os.path.isdir(LIVE_SITE):
        shutil.copytree(LIVE_SITE, os.path.join(PREVIOUS, SITE_DIR), symlinks=True)
    install(staged_site, os.path.join(stage, "nginx.conf"))
    ok, output = nginx_test(NGINX_CONF)
    if not ok:
        install_previous()
        raise Failure(f"nginx rejected the installed configuration; the previous one was restored:\n{output}")


def install_previous():
    """The configuration from before the last switch back in place; False if there was none (a first push)."""
    if not os.path.isdir(os.path.join(PREVIOUS, SITE_DIR)):
        return False
    install(os.path.join(PREVIOUS, SITE_DIR), os.path.join(PREVIOUS, "nginx.conf"))
    return True


def restore_previous():
    """install_previous, and nginx reloaded with it; False if there was none."""
    if not install_previous():
        return False
    reload_nginx()
    return True


def undo(why):
    """The previous configuration back, and the step failed with why."""
    restored = restore_previous()
    raise Failure(
        f"{why}; "
        + ("the previous configuration was restored" if restored else "there was no previous configuration to restore")
        + " (journalctl -u nginx and the error log say why)"
    )


def defers(defer_if_holder, state_text, keepalived_active):
    """
    Whether this pass validates only: asked to (a pair's first pass) and this LB holds the public
    address by keepalived's last recorded state, so the peer takes the change first and proves it.
    """
    return defer_if_holder and keepalived_active and holds_address(state_text)


def cmd_nginx(args):
    files = read_stdin_bundle()
    for required in ("nginx.conf", "site.conf"):
        if required not in files:
            raise Failure(f"nginx bundle lacks {required}")
    stage = tempfile.mkdtemp(dir=NGINX_DIR, prefix=".pycluster-stage-")
    try:
        staged_site = stage_bundle(files, stage)
        keep_rotation(os.path.join(staged_site, "site.conf"), args.lease, args.health_path)
        if read_bytes(os.path.join(stage, "nginx.conf")) == read_bytes(NGINX_CONF) and tree_bytes(staged_site) == tree_bytes(LIVE_SITE):
            if not is_active("nginx"):
                systemctl("enable", "--now", "nginx")
            log("nginx: configuration unchanged")
            return
        ok, output = nginx_test(os.path.join(stage, "nginx.conf"))
        if not ok:
            raise Failure(f"nginx rejected the new configuration; the running configuration is unchanged:\n{output}")
        if defers(args.defer_if_holder, read_bytes(VRRP_STATE_FILE), is_active("keepalived")):
            log("nginx: configuration validated (nginx -t), not switched: this LB holds the public address, so its peer changes first and this one in the finishing step")
            return
        # Whether the site answers through this nginx now: a change must not stop it. When it does not
        # (no app node admitted yet, or every one down), the status page alone is checked, so that
        # an LB change can still land while the app tier is broken.
        site = f"{args.site_url} as {args.site_host}"
        served_before = bool(args.site_url) and http_ok(args.site_url, host=args.site_host, insecure=True)
        switch(stage, staged_site)
        action = reload_nginx()
        if args.check_url and not wait_http_ok(args.check_url, CHECK_SECONDS):
            undo(f"nginx did not answer {args.check_url} within {CHECK_SECONDS} s after the reload")
        if served_before and not wait_http_ok(args.site_url, CHECK_SECONDS, host=args.site_host, insecure=True):
            undo(f"the site ({site}) answered 200 through this nginx before the switch and not within {CHECK_SECONDS} s after it")
        if args.site_url and not served_before:
            log(f"nginx: the site ({site}) did not answer 200 before the switch either: checked nginx's status page only")
        log(f"nginx: configuration validated and {action}" + ("; the site answers through it" if served_before else ""))
    finally:
        shutil.rmtree(stage, ignore_errors=True)
