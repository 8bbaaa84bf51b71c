#!/bin/sh
# Fetch Sendmail 8.17 (and the m4 it needs to build a .cf) without installing
# it: sendmail-bin conflicts with postfix, so the .debs are downloaded with
# apt-get and unpacked with dpkg -x into DIR/root.  Idempotent: a second run
# with a complete DIR does nothing.
#
#   tests/e2e/fetch-sendmail.sh DIR
#
# Afterwards DIR/root/usr/libexec/sendmail/sendmail is the binary (setgid bit
# dropped, so LD_LIBRARY_PATH works), DIR/root/usr/share/sendmail/cf the m4
# macros and DIR/root/usr/bin/m4 the macro processor.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi
dir=$1
root=$dir/root
stamp=$dir/.complete
packages="sendmail-bin sendmail-base sendmail-cf m4 libwrap0"

if [ -f "$stamp" ] && [ -x "$root/usr/libexec/sendmail/sendmail" ]; then
    exit 0
fi

mkdir -p "$dir/debs" "$root"
cd "$dir/debs"
# apt-get download needs package lists; fetch them once if there are none.
if ! apt-get download $packages >/dev/null 2>&1; then
    apt-get update -qq
    apt-get download $packages
fi
for deb in ./*.deb; do
    dpkg -x "$deb" "$root"
done
chmod g-s,u-s "$root/usr/libexec/sendmail/sendmail"
touch "$stamp"
