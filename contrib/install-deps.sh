#!/usr/bin/env bash
# Install what building Portcullis needs on Debian 12, and with --test what
# its test suite needs too (Postfix, swaks, miltertest, ...).  Creates the
# system user the daemon drops to (milter.user) and the directory of the
# memory store's snapshot.  Run as root (contrib/as-root
# contrib/install-deps.sh); safe to run again.
set -euo pipefail

build_packages=(
  cmake g++ make pkg-config
  libmilter-dev libopendkim-dev libspf2-dev libopendmarc-dev libhiredis-dev libunbound-dev
  libtomlplusplus-dev libre2-dev libcli11-dev prometheus-cpp-dev
  # Debian's libunbound.pc requires these (Requires.private), or pkg-config
  # refuses to find libunbound.
  libevent-dev nettle-dev
  # DMARC's organizational domains (auth.public_suffix_list); its tests
  # also read the list's own test cases from it.
  publicsuffix
  # docs/man/mkman.py, which writes the man pages at build time
  python3
)
test_packages=(
  libgtest-dev postfix swaks miltertest m4 iproute2 util-linux bsdutils
  redis-server unbound libbenchmark-dev
  # the RFC 7208 SPF test suite (rfc7208-tests.yml.gz) and its reader
  python3-spf python3-yaml
  # DKIM: dkimpy's signed test messages and signing (tests/dkim, the DKIM
  # unit tests), Ed25519 keys for it, and opendkim-genkey for RSA keys
  python3-dkim python3-nacl opendkim-tools
  # the man pages rendered as man shows them, checked for warnings
  man-db groff-base
  # the Debian package (tests/e2e/test_package.py): building, checking
  # and installing it; promtool (in prometheus) for contrib/monitoring's
  # alert rules; bash-completion loads contrib/bash-completion's script
  debhelper dpkg-dev fakeroot lintian prometheus bash-completion
)

packages=("${build_packages[@]}")
if [ "${1:-}" = "--test" ]; then packages+=("${test_packages[@]}"); fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: run as root: contrib/as-root contrib/install-deps.sh $*" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Postfix must install without touching a system configuration.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -q
apt-get install -y -q --no-install-recommends "${packages[@]}"

if ! getent passwd portcullis >/dev/null; then
  adduser --system --group --no-create-home --home /nonexistent portcullis >/dev/null
fi
# The memory store's snapshot (store.snapshot) lives here.
install -d -o portcullis -g portcullis -m 0750 /var/lib/portcullis
