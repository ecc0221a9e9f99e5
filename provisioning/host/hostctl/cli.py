"""hostctl's command line, built from contract.json: the subcommands and flags the program may use, and nothing else."""
import argparse
import sys

from . import boot, kernel, monitoring, nginx, nginx_reload, release, rollout, tls, validate, vrrp
from .common import Failure
from .contract import CONTRACT

HANDLERS = {
    "wait-boot": boot.cmd_wait_boot,
    "packages": boot.cmd_packages,
    "kernel": kernel.cmd_kernel,
    "nginx": nginx.cmd_nginx,
    "nginx-reload": nginx_reload.cmd_nginx_reload,
    "nginx-validate": validate.cmd_nginx_validate,
    "monitoring": monitoring.cmd_monitoring,
    "monitoring-validate": monitoring.cmd_monitoring_validate,
    "release": release.cmd_release,
    "releases": release.cmd_releases,
    "app": rollout.cmd_app,
    "app-validate": validate.cmd_app_validate,
    "unit-validate": validate.cmd_unit_validate,
    "static": release.cmd_static,
    "letsencrypt": tls.cmd_letsencrypt,
    "upstream": rollout.cmd_upstream,
    "gate": rollout.cmd_gate,
    "keepalived": vrrp.cmd_keepalived,
    "vrrp-check": vrrp.cmd_vrrp_check,
    "vrrp-notify": vrrp.cmd_vrrp_notify,
}

TYPES = {"string": str, "int": int, "float": float}


def parser():
    p = argparse.ArgumentParser(prog="hostctl", description="pycluster's agent on each host")
    sub = p.add_subparsers(dest="command", required=True)
    for name, spec in CONTRACT["commands"].items():
        s = sub.add_parser(name, help=spec.get("help"))
        for flag, f in spec["flags"].items():
            if f["type"] == "flag":
                s.add_argument(f"--{flag}", action="store_true", help=f.get("help"))
            else:
                s.add_argument(f"--{flag}", type=TYPES[f["type"]], required=f.get("required", False), default=f.get("default"), help=f.get("help"))
        positional = spec.get("positional")
        if positional:
            kwargs = {k: positional[k] for k in ("nargs", "choices", "help") if k in positional}
            s.add_argument(positional["name"], **kwargs)
        s.set_defaults(func=HANDLERS[name])
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except Failure as e:
        print(f"hostctl {args.command}: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
