# Sourced by the scripts beside it: makes sure a tool a check needs is there, installing Debian's
# package when it is not (as root, or through passwordless sudo). When it cannot, it fails: a
# check that cannot run is a failed check, never a skipped one.

# Runs "$@" as root.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo "$@"
  else
    echo "error: root (or passwordless sudo) is needed to run: $*" >&2
    return 1
  fi
}

# Installs Debian packages with apt-get.
apt_install() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: apt-get not found; install $* by hand" >&2
    return 1
  fi
  echo "--- installing $* (apt-get)" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

# node (at least major version $1) and npm; Debian's nodejs and npm when either is missing.
need_node() {
  local min=$1 major
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if ! apt_install nodejs npm; then
      echo "error: node and npm are missing and could not be installed" >&2
      return 1
    fi
  fi
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt "$min" ]; then
    echo "error: node $(node --version) is too old; this check needs node $min or newer" >&2
    return 1
  fi
}

# Chromium, as $CHROMIUM (default: `chromium` on the PATH); Debian's chromium when absent.
need_chromium() {
  if [ -z "${CHROMIUM:-}" ]; then
    if ! command -v chromium >/dev/null 2>&1 && ! apt_install chromium; then
      echo "error: chromium is missing and could not be installed" >&2
      return 1
    fi
    CHROMIUM=$(command -v chromium) || {
      echo "error: chromium is not on the PATH after installing it" >&2
      return 1
    }
  fi
  if [ ! -x "$CHROMIUM" ]; then
    echo "error: CHROMIUM=$CHROMIUM is not an executable" >&2
    return 1
  fi
  export CHROMIUM
}
