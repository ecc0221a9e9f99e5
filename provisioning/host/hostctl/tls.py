"""The site's certificate from Let's Encrypt: certbot through nginx's ACME location, renewals reloading nginx."""
import os

from .common import Failure, log, point_symlink, read_bytes, run, systemctl, write_atomic
from .contract import path
from .validate import nginx_test

RENEWAL_HOOK = path("renewalHook")


def cmd_letsencrypt(args):
    """Obtain a certificate with certbot (HTTP-01 through nginx's ACME location), point nginx at it, keep it renewed."""
    live = path("letsencryptLive", domain=args.domain)
    if not os.path.exists(os.path.join(live, "fullchain.pem")):
        os.makedirs(args.webroot, exist_ok=True)
        run(["certbot", "certonly", "--webroot", "-w", args.webroot, "-d", args.domain, "-m", args.email,
             "--agree-tos", "--non-interactive", "--no-eff-email", "--keep-until-expiring"], timeout=600)
    write_atomic(RENEWAL_HOOK, b"#!/bin/sh\n# Installed by pycluster: renewed certificates take effect without a restart.\nnginx -t -q && systemctl reload nginx\n", 0o755)
    tls = os.path.join(path("nginxSite"), "tls")
    wanted = {"fullchain.pem": os.path.join(live, "fullchain.pem"), "privkey.pem": os.path.join(live, "privkey.pem")}
    current = {name: os.readlink(os.path.join(tls, name)) if os.path.islink(os.path.join(tls, name)) else None for name in wanted}
    if current != wanted:
        saved = {name: read_bytes(os.path.join(tls, name)) for name in wanted}
        for name, target in wanted.items():
            point_symlink(os.path.join(tls, name), target)
        ok, output = nginx_test(path("nginxConf"))
        if not ok:
            for name, content in saved.items():
                if content is not None:
                    os.unlink(os.path.join(tls, name))
                    write_atomic(os.path.join(tls, name), content, 0o600 if name == "privkey.pem" else 0o644)
            raise Failure(f"nginx rejected the Let's Encrypt certificate; the previous one is back:\n{output}")
        systemctl("reload", "nginx")
    systemctl("enable", "--now", "--quiet", "certbot.timer", check=False)
    log(f"letsencrypt: {args.domain} served with its certificate; renewal by certbot.timer")
