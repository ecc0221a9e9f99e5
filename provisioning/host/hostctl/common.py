"""What every part of hostctl uses: failures, running commands, files, systemd, HTTP checks."""
import grp
import os
import pwd
import socket
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request

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


def read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def ensure_shared_dir(directory):
    """
    A root-owned directory other users may traverse (0755) whatever the caller's umask. The
    /run/pycluster that keepalived's check created first (its umask is keepalived's, not a login
    shell's) kept nginx's workers from the closing flag and the verdict file in it: EACCES on each
    stat, and the peer could not read the verdict (pair suite scenario 6). An existing directory
    with a narrower mode is widened.
    """
    os.makedirs(directory, exist_ok=True)
    if os.stat(directory).st_mode & 0o777 != 0o755:
        os.chmod(directory, 0o755)


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


def stat_fields(text):
    """
    The fields of a /proc/<pid>/stat text after the command name: state, ppid, ... (utime and stime
    are the 12th and 13th). The name may hold spaces and parentheses, so they start after its last ")".
    """
    return text[text.rfind(")") + 2:].split()


def parse_stat(text):
    """(pid, ppid) from the text of /proc/<pid>/stat."""
    return int(text[: text.index(" ")]), int(stat_fields(text)[1])


def children_in(stat_texts, parent):
    """The PIDs whose parent is `parent`, from the texts of /proc/<pid>/stat."""
    return {pid for pid, ppid in map(parse_stat, stat_texts) if ppid == parent}


def proc_stat_texts():
    """The text of /proc/<pid>/stat of every process."""
    texts = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    texts.append(f.read())
            except OSError:  # ended while listed
                pass
    return texts


def child_pids(pid):
    """The running children of `pid` (none for 0 or None)."""
    return children_in(proc_stat_texts(), pid) if pid else set()


def systemctl(*args, check=True):
    return run(["systemctl", *args], check=check)


def is_active(unit):
    return run(["systemctl", "is-active", "--quiet", unit], check=False).returncode == 0


def reload_or_start(unit):
    """Applies a validated configuration: reload when running, else enable and start; fails (with the unit's journal) unless it runs after. Returns what it did."""
    if is_active(unit):
        systemctl("reload", unit)
        action = "reloaded"
    else:
        systemctl("enable", "--now", unit)
        action = "started"
    if not is_active(unit):
        raise Failure(f"{unit} is not running after the change:\n" + run(["journalctl", "-u", unit, "-n", "20", "--no-pager"], check=False).stdout)
    return action


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


def wait_http_ok(url, timeout, host=None, insecure=False):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_ok(url, host=host, insecure=insecure):
            return True
        time.sleep(0.5)
    return False
