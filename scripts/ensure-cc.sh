# Sourced by the build scripts: sets cc_bin to a working C compiler ($CC, else cc), installing gcc
# and libc6-dev from Debian's packages if there is none (as root only). $caller names the caller in messages.
cc_bin="${CC:-cc}"
if ! command -v "$cc_bin" >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "$caller: no C compiler; installing gcc and libc6-dev from Debian" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev >&2 ||
      { apt-get update >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends gcc libc6-dev >&2; }
  else
    echo "$caller: a C compiler (cc) is required; install gcc" >&2
    exit 1
  fi
fi
