"""Kernel settings: the sysctl drop-in and the units that apply it at boot."""
from .bundle import read_stdin_bundle
from .common import Failure, log, read_bytes, systemctl, write_atomic
from .contract import files as contract_files

KERNEL_FILES = contract_files("kernel")


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


def cmd_kernel(_args):
    files = read_stdin_bundle()
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
