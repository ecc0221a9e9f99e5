"""The contract shared with the program (contract.json): paths, bundle file names, subcommands."""
import json
import pkgutil

CONTRACT = json.loads(pkgutil.get_data(__package__, "contract.json").decode())
PATHS = CONTRACT["paths"]
FILES = CONTRACT["files"]


def path(name, **values):
    """A path of the contract with its {placeholders} filled in."""
    return PATHS[name].format(**values)


def files(bundle, **values):
    """{bundle name: destination} of a bundle kind, placeholders filled in (names may hold them too)."""
    out = {}
    for name, dest in FILES[bundle].items():
        out[name.format(**values)] = dest.format(**values) if isinstance(dest, str) else {**dest, "path": dest["path"].format(**values)}
    return out
