"""A host's first steps: wait for cloud-init, install the packages that are missing."""
import os
import shutil
import subprocess

from .common import Failure, log, run

APT = ["apt-get", "-q", "-o", "DPkg::Lock::Timeout=600"]


def cmd_wait_boot(_args):
    if shutil.which("cloud-init"):
        rc = subprocess.call(["cloud-init", "status", "--wait"], stdout=subprocess.DEVNULL)
        # 0 = done; 2 = done with recoverable errors ("degraded", cloud-init >= 23.4).
        if rc not in (0, 2):
            detail = run(["cloud-init", "status", "--long"], check=False).stdout
            raise Failure(f"cloud-init failed on this host (status {rc}):\n{detail}")
    log(f"host ready: cloud-init done, uptime {open('/proc/uptime').read().split()[0]} s")


def missing_packages(packages):
    missing = []
    for package in packages:
        status = run(["dpkg-query", "-W", "-f=${Status}", package], check=False).stdout
        if "install ok installed" not in status:
            missing.append(package)
    return missing


def cmd_packages(args):
    missing = missing_packages(args.packages)
    if not missing:
        log(f"packages present: {' '.join(args.packages)}")
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(APT + ["update"], env=env, timeout=900)
    run(APT + ["install", "-y", "--no-install-recommends", *missing], env=env, timeout=1800)
    log(f"installed: {' '.join(missing)}")
