#!/usr/bin/env bash
# Installs socv and leased from this source tree: both binaries, socv's shell completions, the
# man pages, and (system installs) a systemd unit for leased with its `socv` system user.
# Safe to run again: it overwrites what it installed, keeps existing configuration, and never
# enables or starts the service.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: ./install.sh [OPTIONS]

Installs socv and leased, socv's completions (bash, zsh, fish), the man pages socv(1),
socv-*(1) and leased(8), and a systemd unit for leased.

Options:
  --prefix DIR    install under DIR [default: /usr/local; with --user: ~/.local]
  --user          install for yourself only, into ~/.local: no systemd unit, no system user,
                  no root needed
  --no-systemd    skip the systemd unit, the socv system user and /etc/socv
  --no-build      install the binaries already in target/release instead of running
                  `cargo build --release --locked --workspace` (e.g. build as yourself, then
                  `sudo ./install.sh --no-build`, as root often has no cargo)
  --destdir DIR   stage every file under DIR (for packaging; also $DESTDIR); creates no user
                  and does not reload systemd
  --dry-run       print what would be done, change nothing
  -h, --help      print this help

System install (as root): binaries in PREFIX/bin; completions in
PREFIX/share/{bash-completion/completions,zsh/site-functions,fish/vendor_completions.d}; man
pages in PREFIX/share/man/man1 and man8; /etc/systemd/system/leased.service; /etc/socv with
leased.env and boards.yaml.example (existing files are kept); the `socv` system user. leased
keeps its state in /var/lib/socv.

Examples:
  sudo ./install.sh
  cargo build --release --locked --workspace && sudo ./install.sh --no-build
  ./install.sh --user
  ./install.sh --dry-run --prefix /opt/socv
EOF
}

die() {
    echo "install.sh: error: $*" >&2
    exit 1
}

say() {
    echo "install.sh: $*" >&2
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

prefix=
user_install=
systemd=1
build=1
dry_run=
destdir=${DESTDIR:-}

while [ $# -gt 0 ]; do
    case $1 in
    --prefix)
        [ $# -ge 2 ] || die "--prefix needs a directory"
        prefix=$2
        shift 2
        ;;
    --prefix=*)
        prefix=${1#--prefix=}
        shift
        ;;
    --destdir)
        [ $# -ge 2 ] || die "--destdir needs a directory"
        destdir=$2
        shift 2
        ;;
    --destdir=*)
        destdir=${1#--destdir=}
        shift
        ;;
    --user)
        user_install=1
        shift
        ;;
    --no-systemd)
        systemd=
        shift
        ;;
    --no-build)
        build=
        shift
        ;;
    --dry-run)
        dry_run=1
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "install.sh: error: unknown option '$1'" >&2
        echo "Try './install.sh --help'." >&2
        exit 2
        ;;
    esac
done

if [ -n "$user_install" ]; then
    [ -n "${HOME:-}" ] || die "--user needs \$HOME"
    prefix=${prefix:-$HOME/.local}
    systemd=
else
    prefix=${prefix:-/usr/local}
fi
[ -n "$prefix" ] || die "--prefix must not be empty"
case $prefix in
/*) ;;
*) prefix=$(pwd)/$prefix ;;
esac
prefix=${prefix%/}
case $destdir in
'' | /*) ;;
*) destdir=$(pwd)/$destdir ;;
esac
destdir=${destdir%/}

bindir=$prefix/bin
datadir=$prefix/share
unitdir=/etc/systemd/system
confdir=/etc/socv
statedir=/var/lib/socv

# Runs a command, or only shows it under --dry-run.
run() {
    if [ -n "$dry_run" ]; then
        printf '  would run:'
        printf ' %q' "$@"
        printf '\n'
    else
        "$@"
    fi
}

# ensure_dir DIR [MODE [INSTALL-OPTION...]]: creates DIR (default mode 0755) unless it exists;
# an existing directory keeps its owner and mode.
dirs_made=" "
ensure_dir() {
    local dir=$1 mode=${2:-0755}
    shift $(($# < 2 ? $# : 2))
    [ ! -d "$dir" ] || return 0
    case $dirs_made in *" $dir "*) return 0 ;; esac
    run install -d -m "$mode" "$@" "$dir"
    dirs_made="$dirs_made$dir "
}

# install_file MODE SOURCE TARGET [INSTALL-OPTION...]: copies SOURCE to DESTDIR+TARGET, creating
# its directory; the options (e.g. -g socv) go to install(1).
install_file() {
    local mode=$1 src=$2 dst=$destdir$3
    shift 3
    [ -f "$src" ] || die "$src is missing (a broken checkout?)"
    ensure_dir "$(dirname "$dst")"
    run install -m "$mode" "$@" "$src" "$dst"
    [ -n "$dry_run" ] || echo "  $dst"
}

# Like install_file, but keeps a TARGET that exists: it is the administrator's now.
install_config() {
    local dst=$destdir$3
    if [ -e "$dst" ]; then
        echo "  $dst (exists, kept)"
        return 0
    fi
    install_file "$@"
}

# --- checks, before anything is changed ------------------------------------------------------

if [ -n "$systemd" ] && [ -z "$destdir" ] && [ -z "$dry_run" ] && [ "$(id -u)" != 0 ]; then
    die "a system install with the systemd unit needs root: run it with sudo, or give --user
(into ~/.local) or --no-systemd (binaries, completions and man pages only)"
fi
if [ -z "$dry_run" ]; then
    # The deepest directory of the prefix that exists must be writable.
    probe=$destdir$prefix
    while [ ! -e "$probe" ]; do probe=$(dirname "$probe"); done
    [ -w "$probe" ] || die "cannot write to $probe: run it with sudo, or give --user or --prefix DIR"
fi

target_dir=${CARGO_TARGET_DIR:-$repo/target}
case $target_dir in
/*) ;;
*) target_dir=$repo/$target_dir ;;
esac
release=$target_dir/release

# --- build -----------------------------------------------------------------------------------

if [ -n "$build" ]; then
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found: build as yourself with \`cargo build --release --locked --workspace\`, then run \`sudo ./install.sh --no-build\`"
    say "building socv and leased (release)"
    (cd "$repo" && run cargo build --release --locked --workspace)
fi
if [ -z "$dry_run" ]; then
    for bin in socv leased; do
        [ -x "$release/$bin" ] ||
            die "$release/$bin not found: build it with \`cargo build --release --locked --workspace\` (or drop --no-build)"
    done
fi

# --- files -----------------------------------------------------------------------------------

[ -z "$dry_run" ] || say "dry run: nothing is changed"
say "installing into ${destdir:+$destdir (staged for) }$prefix"
install_file 0755 "$release/socv" "$bindir/socv"
install_file 0755 "$release/leased" "$bindir/leased"

install_file 0644 "$repo/completions/socv.bash" "$datadir/bash-completion/completions/socv"
install_file 0644 "$repo/completions/_socv" "$datadir/zsh/site-functions/_socv"
install_file 0644 "$repo/completions/socv.fish" "$datadir/fish/vendor_completions.d/socv.fish"

shopt -s nullglob
pages1=("$repo"/man/*.1)
pages8=("$repo"/man/*.8)
shopt -u nullglob
if [ ${#pages1[@]} -eq 0 ] || [ ${#pages8[@]} -eq 0 ]; then
    die "no man pages in $repo/man (regenerate them with ./completions/generate.sh)"
fi
for page in "${pages1[@]}"; do
    install_file 0644 "$page" "$datadir/man/man1/$(basename "$page")"
done
for page in "${pages8[@]}"; do
    install_file 0644 "$page" "$datadir/man/man8/$(basename "$page")"
done

# --- systemd ---------------------------------------------------------------------------------

if [ -n "$systemd" ]; then
    say "installing the systemd unit and /etc/socv"
    unit=$(mktemp)
    trap 'rm -f "$unit"' EXIT
    sed "s|^ExecStart=/usr/local/bin/leased |ExecStart=$bindir/leased |" \
        "$repo/leased/leased.service" >"$unit"
    grep -q "^ExecStart=$bindir/leased " "$unit" ||
        die "leased/leased.service has no 'ExecStart=/usr/local/bin/leased ...' line to adapt"
    echo "  leased.service runs $bindir/leased"
    install_file 0644 "$unit" "$unitdir/leased.service"

    if [ -n "$destdir" ]; then
        say "staged install: create the socv system user on the target (useradd --system --user-group --home-dir $statedir --no-create-home --shell /usr/sbin/nologin socv)"
        ensure_dir "$destdir$confdir" 0750
        install_config 0640 "$repo/leased/leased.env" "$confdir/leased.env"
        install_file 0644 "$repo/boards.yaml" "$confdir/boards.yaml.example"
    else
        if getent passwd socv >/dev/null 2>&1; then
            echo "  user socv (exists, kept)"
        else
            nologin=$(command -v nologin || echo /usr/sbin/nologin)
            run useradd --system --user-group --home-dir "$statedir" --no-create-home \
                --shell "$nologin" --comment "socv lab daemon (leased)" socv
            [ -n "$dry_run" ] || echo "  user socv (created)"
        fi
        # Configuration is root's; leased (group socv) may only read it: it holds secrets.
        ensure_dir "$confdir" 0750 -o root -g socv
        install_config 0640 "$repo/leased/leased.env" "$confdir/leased.env" -o root -g socv
        install_file 0644 "$repo/boards.yaml" "$confdir/boards.yaml.example"
        if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
            run systemctl daemon-reload
        fi
    fi
fi

# --- what next -------------------------------------------------------------------------------

echo
if [ -n "$dry_run" ]; then
    say "dry run done: nothing was changed"
else
    say "done"
fi
case ":${PATH:-}:" in
*":$bindir:"*) ;;
*) echo "Note: $bindir is not on your PATH; add it, e.g. export PATH=\"$bindir:\$PATH\"" ;;
esac
if [ -n "$user_install" ]; then
    if [ "$datadir" = "${XDG_DATA_HOME:-$HOME/.local/share}" ]; then
        echo "Completions: bash and fish find them by themselves; zsh needs in ~/.zshrc, before compinit:"
    else
        cat <<EOF
Completions: bash needs in ~/.bashrc:   source $datadir/bash-completion/completions/socv
             fish needs in config.fish: source $datadir/fish/vendor_completions.d/socv.fish
             zsh needs in ~/.zshrc, before compinit:
EOF
    fi
    cat <<EOF
  fpath+=($datadir/zsh/site-functions)
Run leased yourself, e.g.:  leased --boards boards.yaml
Then:                       socv status
EOF
elif [ -n "$systemd" ]; then
    if [ -e "$destdir$confdir/boards.yaml" ]; then
        lab_step="sudo editor $confdir/boards.yaml   (exists; compare with boards.yaml.example)"
    else
        lab_step="sudo cp $confdir/boards.yaml.example $confdir/boards.yaml && sudo editor $confdir/boards.yaml"
    fi
    cat <<EOF
Next steps (the service is not enabled or started):
  1. Describe the lab:  $lab_step
  2. Settings, secrets: sudo editor $confdir/leased.env   (REDIS_URL, LEASED_TOKENS, board passwords)
  3. Start it:          sudo systemctl enable --now leased
  4. Check it:          systemctl status leased; journalctl -u leased -f; socv status
EOF
fi
