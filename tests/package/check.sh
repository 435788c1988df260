#!/usr/bin/env bash
# Checks what cross/package made (target/packages/, or $1) with the standard tools:
#   .deb: `ar` members and their order, the control fields dpkg reads, the files and their
#         modes, conffiles, the unit's ExecStart, the binary's ELF machine, and lintian
#         (no error or warning left: the ones that are the design are overridden in the
#         package itself, README says why);
#   .ipk: the outer format OpenWrt's ipkg-build makes (a gzip'd tar of ./debian-binary,
#         ./data.tar.gz, ./control.tar.gz in that order), the control fields opkg reads
#         (Package, Version, Architecture, Installed-Size, Description; Architecture the
#         one in the file name), conffiles, the procd init script, the sysupgrade keep.d
#         entry, a config whose state_dir is on flash, and the ELF machine per OpenWrt
#         architecture name.
# Every package built target must be there (one .ipk per OpenWrt name cross/package lists).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir="${1:-target/packages}"
need=()
command -v lintian >/dev/null || need+=(lintian)
command -v readelf >/dev/null || need+=(binutils)
command -v ar >/dev/null || need+=(binutils)
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
fail() {
    echo "   FAIL: $*" >&2
    exit 1
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ELF machine (readelf's words) and data encoding expected per package architecture.
elf_of() {
    case "$1" in
        amd64 | x86_64) echo "X86-64 little" ;;
        arm64 | aarch64_*) echo "AArch64 little" ;;
        armhf | arm_*) echo "ARM little" ;;
        mipsel_*) echo "MIPS little" ;;
        mips_*) echo "MIPS big" ;;
        *) echo "unknown" ;;
    esac
}
check_elf() { # FILE ARCH
    local want got_m got_e
    want=$(elf_of "$2")
    got_m=$(readelf -h "$1" | sed -n 's/^ *Machine: *//p')
    got_e=$(readelf -h "$1" | sed -n 's/^ *Data: *.*, \([a-z]*\) endian/\1/p')
    case "$got_m" in
        *"${want% *}"* | "Advanced Micro Devices X86-64") ;;
        *) fail "$1: ELF machine '$got_m', want ${want% *} for $2" ;;
    esac
    [ "$got_e" = "${want#* }" ] || fail "$1: $got_e endian, want ${want#* } for $2"
    readelf -l "$1" | grep -q 'Requesting program interpreter' && fail "$1: not static"
    return 0
}
field() { # CONTROL-FILE NAME
    sed -n "s/^$2: //p" "$1" | head -1
}

debs=$(ls "$dir"/*.deb 2>/dev/null || true)
ipks=$(ls "$dir"/*.ipk 2>/dev/null || true)
[ -n "$debs" ] || fail "no .deb in $dir (run cross/package)"
[ -n "$ipks" ] || fail "no .ipk in $dir (run cross/package)"

echo "== .deb ($(echo "$debs" | wc -w))"
for f in $debs; do
    b=$(basename "$f")
    arch=${b%.deb}
    arch=${arch##*_}
    [ "$(ar t "$f" | xargs)" = "debian-binary control.tar.xz data.tar.xz" ] ||
        fail "$b: ar members $(ar t "$f" | xargs)"
    [ "$(ar p "$f" debian-binary)" = 2.0 ] || fail "$b: debian-binary is not 2.0"
    d="$work/$b"
    mkdir -p "$d"
    dpkg-deb -e "$f" "$d/DEBIAN"
    dpkg-deb -x "$f" "$d/root"
    c="$d/DEBIAN/control"
    for k in Package Version Architecture Maintainer Installed-Size Description; do
        [ -n "$(field "$c" "$k")" ] || fail "$b: no $k"
    done
    [ "$(field "$c" Package)" = tocsin ] || fail "$b: Package"
    [ "$(field "$c" Architecture)" = "$arch" ] || fail "$b: Architecture $(field "$c" Architecture), file says $arch"
    [ "$arch" != armhf ] || [ -n "$(ls target/arm-unknown-linux-musleabihf/release/tocsin 2>/dev/null)" ] ||
        fail "$b: an armhf package without the ARMv6 build"
    [ "$(cat "$d/DEBIAN/conffiles")" = /etc/tocsin/tocsin.toml ] || fail "$b: conffiles"
    [ -f "$d/root/etc/tocsin/tocsin.toml" ] || fail "$b: no /etc/tocsin/tocsin.toml"
    [ "$(stat -c %a "$d/root/usr/bin/tocsin")" = 755 ] || fail "$b: /usr/bin/tocsin mode"
    grep -qx 'ExecStart=/usr/bin/tocsin run -c /etc/tocsin/tocsin.toml' \
        "$d/root/lib/systemd/system/tocsin.service" || fail "$b: unit's ExecStart"
    dpkg-deb -c "$f" | awk '{ print $2 }' | grep -qvx 'root/root' && fail "$b: a file not owned by root"
    for s in postinst prerm postrm; do
        [ -x "$d/DEBIAN/$s" ] || fail "$b: no $s"
        sh -n "$d/DEBIAN/$s" || fail "$b: $s does not parse"
    done
    grep -q 'daemon-reload' "$d/DEBIAN/postinst" || fail "$b: postinst without daemon-reload"
    # Installing neither enables nor starts it (the shipped config's receiver is an example).
    grep -E 'enable|start' "$d/DEBIAN/postinst" | grep -Ev 'try-restart|^ *(echo|#)' | grep -q . &&
        fail "$b: postinst enables or starts the agent"
    grep -q 'rm -rf /etc/tocsin /var/lib/tocsin /var/lib/private/tocsin' "$d/DEBIAN/postrm" ||
        fail "$b: postrm purge does not remove the config and the state"
    check_elf "$d/root/usr/bin/tocsin" "$arch"
    tags=$(lintian --fail-on none "$f" 2>/dev/null | grep -E '^[EW]: ' || true)
    [ -z "$tags" ] || fail "$b: lintian: $tags"
    echo "   ok: $b ($(field "$c" Version), lintian: no error or warning)"
done

echo "== .ipk ($(echo "$ipks" | wc -w))"
for f in $ipks; do
    b=$(basename "$f")
    arch=${b%.ipk}
    arch=${arch#tocsin_*_}
    gzip -t "$f" || fail "$b: outer archive is not gzip"
    [ "$(tar -tzf "$f" | xargs)" = "./debian-binary ./data.tar.gz ./control.tar.gz" ] ||
        fail "$b: members $(tar -tzf "$f" | xargs) (ipkg-build: ./debian-binary ./data.tar.gz ./control.tar.gz)"
    tar -tvzf "$f" | awk '{ print $2 }' | grep -qvx '0/0' && fail "$b: a member not owned by 0/0"
    d="$work/$b"
    mkdir -p "$d/data" "$d/control"
    tar -xzf "$f" -C "$d"
    [ "$(cat "$d/debian-binary")" = 2.0 ] || fail "$b: debian-binary"
    tar -xzf "$d/data.tar.gz" -C "$d/data"
    tar -xzf "$d/control.tar.gz" -C "$d/control"
    c="$d/control/control"
    for k in Package Version Architecture Installed-Size Description; do
        [ -n "$(field "$c" "$k")" ] || fail "$b: no $k"
    done
    # opkg reads "Field: value" lines; a continuation line starts with a space.
    grep -Evq '^([A-Z][A-Za-z-]*: .*| .+)$' "$c" && fail "$b: a control line opkg would not parse: $(grep -Ev '^([A-Z][A-Za-z-]*: .*| .+)$' "$c")"
    [ "$(field "$c" Package)" = tocsin ] || fail "$b: Package"
    [ "$(field "$c" Architecture)" = "$arch" ] || fail "$b: Architecture $(field "$c" Architecture), file says $arch"
    [[ "$(field "$c" Installed-Size)" =~ ^[0-9]+$ ]] || fail "$b: Installed-Size"
    [ "$(cat "$d/control/conffiles")" = /etc/tocsin/tocsin.toml ] || fail "$b: conffiles"
    [ -f "$d/data/etc/tocsin/tocsin.toml" ] || fail "$b: conffile not in data"
    grep -qx 'state_dir      = "/etc/tocsin/state"' "$d/data/etc/tocsin/tocsin.toml" ||
        fail "$b: state_dir is not on flash"
    [ "$(stat -c %a "$d/data/usr/bin/tocsin")" = 755 ] || fail "$b: /usr/bin/tocsin mode"
    [ "$(stat -c %a "$d/data/etc/init.d/tocsin")" = 755 ] || fail "$b: init script mode"
    [ "$(head -1 "$d/data/etc/init.d/tocsin")" = '#!/bin/sh /etc/rc.common' ] || fail "$b: not an rc.common script"
    grep -q '^USE_PROCD=1' "$d/data/etc/init.d/tocsin" || fail "$b: not a procd service"
    [ "$(cat "$d/data/lib/upgrade/keep.d/tocsin")" = /etc/tocsin/ ] || fail "$b: keep.d"
    for s in postinst prerm; do
        sh -n "$d/control/$s" || fail "$b: $s does not parse"
    done
    check_elf "$d/data/usr/bin/tocsin" "$arch"
    echo "   ok: $b"
done

# Completeness: every built target has its packages, under every name cross/package lists.
for t in $(bash -c 'source cross/lib.sh; cross_targets'); do
    [ -x "target/$t/release/tocsin" ] || continue
    archs=$(sed -n "/^ipk_archs()/,/^}/p" cross/package | awk -v t="$t" '$1 == t")" { f = 1 } f { print } f && /;;/ { exit }' |
        tr ' \\' '\n\n' | grep -E '^[a-z0-9]+(_[a-z0-9.-]+)?$' | grep -v "^echo$" || true)
    for a in $archs; do
        ls "$dir"/tocsin_*_"$a".ipk >/dev/null 2>&1 || fail "no .ipk for $a ($t)"
    done
done
echo "   ok: one .ipk per OpenWrt architecture name of every built target"
