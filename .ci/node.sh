# Sourced by .ci/run (bash): puts a Node.js whose major is at least the one in .nvmrc first on PATH.
# Debian's node may be older and apt has no newer one; the npm registry publishes the official
# binaries as node-linux-<arch>, so the newest release of that major is unpacked into .ci/.node/
# (git-ignored). Needs npm, tar and a node of any version; prints which Node it chose and why.

ci_use_node() {
    local top want system have arch tmp version
    top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    want="$(tr -d '[:space:]' < "$top/.nvmrc")"
    want="${want#v}"
    want="${want%%.*}"
    case "$want" in
        "" | *[!0-9]*) echo "node.sh: .nvmrc should name a Node major such as 22" >&2; return 1 ;;
    esac

    system="$(node --version 2>/dev/null || true)"
    have="${system#v}"
    have="${have%%.*}"
    if [ -n "$have" ] && [ "$have" -ge "$want" ] 2>/dev/null; then
        echo "Node: $(command -v node) $(node --version), the system's (.nvmrc asks for $want)"
        return 0
    fi

    case "$(uname -m)" in
        x86_64) arch=x64 ;;
        aarch64) arch=arm64 ;;
        *) echo "node.sh: no node-linux package for $(uname -m); install Node $want yourself" >&2; return 1 ;;
    esac

    tmp="$(mktemp -d)"
    # npm pack fetches a registry tarball and checks its integrity without running any script.
    if ! (cd "$tmp" && npm pack --silent "node-linux-$arch@$want" >/dev/null) ||
        ! tar -xzf "$tmp"/node-linux-"$arch"-*.tgz -C "$tmp"; then
        rm -rf "$tmp"
        echo "node.sh: could not get node-linux-$arch@$want from the npm registry" >&2
        return 1
    fi
    version="$("$tmp/package/bin/node" --version || true)"
    case "$version" in
        "v$want".*) ;;
        *) rm -rf "$tmp"; echo "node.sh: node-linux-$arch@$want unpacked ${version:-no working node}" >&2; return 1 ;;
    esac
    mkdir -p "$top/.ci/.node"
    if [ ! -x "$top/.ci/.node/$version/bin/node" ]; then
        rm -rf "$top/.ci/.node/$version"
        mv "$tmp/package" "$top/.ci/.node/$version"
    fi
    rm -rf "$tmp"

    export PATH="$top/.ci/.node/$version/bin:$PATH"
    echo "Node: $(command -v node) $(node --version), node-linux-$arch from the npm registry" \
        "(the system's is ${system:-missing}; .nvmrc asks for $want)"
}

ci_use_node
