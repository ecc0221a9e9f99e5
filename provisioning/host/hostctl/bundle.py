"""The file bundle on stdin: "pycluster-bundle 1\n", then per file "file <name> <octal mode> <byte length>\n<bytes>\n", then "end\n".

Subcommands map bundle names to fixed destinations (contract.json); stdin never chooses a path.
"""
import re
import sys

from .common import Failure
from .contract import CONTRACT

HEADER = (CONTRACT["bundle"]["header"] + "\n").encode()
# A plain file name, optionally under tls/: no dotfiles, no "..", no other directories.
NAME = re.compile(CONTRACT["bundle"]["namePattern"])


def parse_bundle(data):
    """{name: (mode, bytes)} from the bundle format described above."""
    if not data.startswith(HEADER):
        raise Failure("stdin is not a pycluster bundle")
    files, pos = {}, len(HEADER)
    while True:
        eol = data.index(b"\n", pos)
        line = data[pos:eol].decode()
        pos = eol + 1
        if line == "end":
            return files
        kind, name, mode, length = line.split(" ")
        if kind != "file" or not NAME.match(name):
            raise Failure(f"bad bundle entry: {line!r}")
        length = int(length)
        files[name] = (int(mode, 8), data[pos:pos + length])
        if data[pos + length:pos + length + 1] != b"\n":
            raise Failure(f"bundle entry {name} is truncated")
        pos += length + 1


def read_stdin_bundle():
    return parse_bundle(sys.stdin.buffer.read())
