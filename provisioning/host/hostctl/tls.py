"""The site's certificate from Let's Encrypt: certbot through nginx's ACME location, renewals reloading nginx."""
import os
import socket
import time

from .common import Failure, log, point_symlink, read_bytes, run, systemctl, write_atomic
from .contract import CONTRACT, path
from .nginx_reload import reload_nginx
from .validate import nginx_test

RENEWAL_HOOK = path("renewalHook")
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
    live = path("letsencryptLive", domain=args.domain)
    if not os.path.exists(os.path.join(live, "fullchain.pem")):
        os.makedirs(args.webroot, exist_ok=True)
        run(["certbot", "certonly", "--webroot", "-w", args.webroot, "-d", args.domain, "-m", args.email,
             "--server", args.server, "--agree-tos", "--non-interactive", "--no-eff-email", "--keep-until-expiring"], timeout=600)
    write_atomic(RENEWAL_HOOK, b"#!/bin/sh\n# Installed by pycluster: renewed certificates take effect without a restart.\nnginx -t -q && python3 " + CONTRACT["agent"]["file"].encode() + b" nginx-reload\n", 0o755)
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
        reload_nginx()
    systemctl("enable", "--now", "--quiet", "certbot.timer", check=False)
    log(f"letsencrypt: {args.domain} served with its certificate; renewal by certbot.timer")
