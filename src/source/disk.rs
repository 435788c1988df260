//! Mounted filesystems (`/proc/self/mounts`) and their block and inode usage (statvfs).

use crate::limits::{MAX_DIM_VALUE_LEN, MAX_MOUNTS};
use crate::metric::DimValue;

/// Filesystem types that are never sampled: kernel pseudo filesystems, plus `squashfs`,
/// whose read-only images are always 100 % full (OpenWrt's `/rom`). `overlay` (OpenWrt's
/// root) and `tmpfs` are sampled.
pub const SKIPPED_FS_TYPES: &[&str] = &[
    "proc",
    "sysfs",
    "devpts",
    "devtmpfs",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "tracefs",
    "pstore",
    "bpf",
    "mqueue",
    "hugetlbfs",
    "configfs",
    "fusectl",
    "autofs",
    "binfmt_misc",
    "nsfs",
    "efivarfs",
    "rpc_pipefs",
    "selinuxfs",
    "ramfs",
    "squashfs",
];

/// Filesystem types whose statvfs may wait on a server or a user-space daemon, forever
/// when that one is gone (a hard NFS mount, a FUSE daemon that stopped answering): their
/// statvfs runs on a probe worker, never on the sampling tick. Every `fuse.*` type
/// (`fuse.sshfs`, `fuse.rclone`, …) is one too. Local filesystems stay on the tick: their
/// statvfs costs microseconds.
pub const REMOTE_FS_TYPES: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ncpfs",
    "9p",
    "ceph",
    "glusterfs",
    "lustre",
    "afs",
    "coda",
    "davfs",
    "sshfs",
    "virtiofs",
    "fuse",
    "fuseblk",
];

/// Whether a mount of `fs_type` is a network or FUSE one (see [`REMOTE_FS_TYPES`]).
pub fn is_remote(fs_type: &[u8]) -> bool {
    fs_type.starts_with(b"fuse.") || REMOTE_FS_TYPES.iter().any(|t| t.as_bytes() == fs_type)
}

/// A mount point to sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted (the `mount` dimension).
    pub point: DimValue,
    /// A network or FUSE filesystem ([`is_remote`]).
    pub remote: bool,
}

/// The mount points to sample, in mounts-file order.
pub type Mounts = heapless::Vec<Mount, MAX_MOUNTS>;

/// Parses a mounts file (`device mountpoint fstype options dump pass` lines) into `out`.
///
/// Mount points are decoded (`\040` → space); those that are not absolute, not UTF-8 or
/// longer than a [`DimValue`] are skipped, as are [`SKIPPED_FS_TYPES`]. When a mount point
/// appears twice, the later mount hides the earlier, so only the last entry counts (and
/// none if that one is skipped). Mounts beyond [`MAX_MOUNTS`] are ignored.
pub fn parse_mounts(text: &[u8], out: &mut Mounts) {
    out.clear();
    for line in text.split(|&b| b == b'\n') {
        let mut fields = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|f| !f.is_empty());
        let (Some(_device), Some(raw_point), Some(fs_type)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Some(point) = decode_mount_point(raw_point) else {
            continue;
        };
        if let Some(i) = out.iter().position(|m| m.point == point) {
            out.remove(i);
        }
        if SKIPPED_FS_TYPES.iter().any(|t| t.as_bytes() == fs_type) {
            continue;
        }
        let remote = is_remote(fs_type);
        // Full: ignore the rest silently, as documented.
        let _ = out.push(Mount { point, remote });
    }
}

/// Decodes the kernel's octal escapes (`\040` space, `\011` tab, `\012` newline,
/// `\134` backslash) in a mounts-file field. None unless the result is an absolute,
/// UTF-8 path that fits a [`DimValue`].
fn decode_mount_point(raw: &[u8]) -> Option<DimValue> {
    if raw.first() != Some(&b'/') {
        return None;
    }
    let mut buf = [0u8; MAX_DIM_VALUE_LEN];
    let mut len = 0;
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        let escaped = if b == b'\\' {
            octal(raw.get(i + 1..i + 4))
        } else {
            None
        };
        let (byte, width) = escaped.map_or((b, 1), |e| (e, 4));
        *buf.get_mut(len)? = byte;
        len += 1;
        i += width;
    }
    DimValue::try_from(std::str::from_utf8(&buf[..len]).ok()?).ok()
}

/// The byte three octal digits stand for, if they are three octal digits up to `\377`.
fn octal(digits: Option<&[u8]>) -> Option<u8> {
    digits?.iter().try_fold(0u8, |acc, &d| {
        let digit = d.checked_sub(b'0').filter(|&v| v < 8)?;
        acc.checked_mul(8)?.checked_add(digit)
    })
}

/// The statvfs counters tocsin uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsStats {
    /// Size in fragments (`f_blocks`).
    pub blocks: u64,
    /// Free fragments (`f_bfree`).
    pub bfree: u64,
    /// Fragments free to unprivileged users (`f_bavail`).
    pub bavail: u64,
    /// Inodes (`f_files`).
    pub files: u64,
    /// Free inodes (`f_ffree`).
    pub ffree: u64,
}

impl FsStats {
    /// `disk.used_percent` as `df` computes it (without its rounding up):
    /// 100 × used / (used + avail), used = blocks − bfree, avail = bavail.
    /// None for an empty filesystem.
    pub fn used_percent(&self) -> Option<f64> {
        if self.blocks == 0 {
            return None;
        }
        let used = self.blocks.saturating_sub(self.bfree);
        let denominator = u128::from(used) + u128::from(self.bavail);
        (denominator > 0).then(|| 100.0 * used as f64 / denominator as f64)
    }

    /// `disk.inodes_used_percent` = 100 × (files − ffree) / files; None when the
    /// filesystem reports no inodes (vfat, btrfs).
    pub fn inodes_used_percent(&self) -> Option<f64> {
        let used = self.files.saturating_sub(self.ffree);
        (self.files > 0).then(|| 100.0 * used as f64 / self.files as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(text: &str) -> Vec<String> {
        let mut out = Mounts::new();
        parse_mounts(text.as_bytes(), &mut out);
        out.iter().map(|m| m.point.to_string()).collect()
    }

    #[test]
    fn network_and_fuse_mounts_are_remote() {
        let text = "/dev/sda1 / ext4 rw 0 0
                    srv:/export /mnt/nfs nfs4 rw,hard 0 0
                    //nas/share /mnt/smb cifs rw 0 0
                    user@host: /mnt/ssh fuse.sshfs rw 0 0
                    /dev/sdb1 /mnt/ntfs fuseblk rw 0 0
                    tmpfs /tmp tmpfs rw 0 0
                    fusectl /sys/fs/fuse/connections fusectl rw 0 0
";
        let mut out = Mounts::new();
        parse_mounts(text.as_bytes(), &mut out);
        let got: Vec<(&str, bool)> = out.iter().map(|m| (m.point.as_str(), m.remote)).collect();
        assert_eq!(
            got,
            [
                ("/", false),
                ("/mnt/nfs", true),
                ("/mnt/smb", true),
                ("/mnt/ssh", true),
                ("/mnt/ntfs", true),
                ("/tmp", false),
            ]
        );
        for t in SKIPPED_FS_TYPES {
            assert!(!is_remote(t.as_bytes()), "{t}");
        }
        assert!(!is_remote(b"fusefoo") && !is_remote(b"ext4") && !is_remote(b"overlay"));
    }

    #[test]
    fn skips_pseudo_and_squashfs_keeps_overlay_and_tmpfs() {
        let text = "/dev/root /rom squashfs ro,relatime,errors=continue 0 0\n\
                    proc /proc proc rw,nosuid,nodev,noexec,noatime 0 0\n\
                    sysfs /sys sysfs rw,nosuid,nodev,noexec,noatime 0 0\n\
                    cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n\
                    tmpfs /tmp tmpfs rw,nosuid,nodev,noatime 0 0\n\
                    /dev/ubi0_1 /overlay ubifs rw,noatime,assert=read-only,ubi=0,vol=1 0 0\n\
                    overlayfs:/overlay / overlay rw,noatime,lowerdir=/,upperdir=/overlay/upper 0 0\n\
                    tmpfs /dev tmpfs rw,nosuid,noexec,noatime,size=512k,mode=755 0 0\n\
                    devpts /dev/pts devpts rw,nosuid,noexec,noatime,mode=600 0 0\n\
                    debugfs /sys/kernel/debug debugfs rw,noatime 0 0\n\
                    none /sys/fs/bpf bpf rw,nosuid,nodev,noexec,noatime,mode=700 0 0\n";
        assert_eq!(points(text), ["/tmp", "/overlay", "/", "/dev"]);
    }

    #[test]
    fn every_listed_type_is_skipped() {
        let mut text = String::new();
        for t in SKIPPED_FS_TYPES {
            text.push_str(&format!("x /{t} {t} rw 0 0\n"));
        }
        assert!(points(&text).is_empty());
    }

    #[test]
    fn decodes_octal_escapes() {
        let text = "/dev/sdb1 /media/usb\\040disk vfat rw 0 0\n\
                    /dev/sdc1 /mnt/tab\\011and\\134back ext4 rw 0 0\n\
                    /dev/sdd1 /mnt/not\\08escape ext4 rw 0 0\n\
                    /dev/sde1 /mnt/short\\04 ext4 rw 0 0\n\
                    /dev/sdf1 /mnt/caf\\303\\251 ext4 rw 0 0\n";
        assert_eq!(
            points(text),
            [
                "/media/usb disk",
                "/mnt/tab\tand\\back",
                "/mnt/not\\08escape",
                "/mnt/short\\04",
                "/mnt/café",
            ]
        );
        assert_eq!(octal(Some(b"400")), None);
        assert_eq!(octal(Some(b"377")), Some(255));
    }

    #[test]
    fn duplicate_mount_points_keep_the_last() {
        let text = "/dev/sda1 /data ext4 rw 0 0\n\
                    /dev/sda2 / ext4 rw 0 0\n\
                    /dev/sdb1 /data xfs rw 0 0\n";
        assert_eq!(points(text), ["/", "/data"]);
        // Hidden by a pseudo filesystem: not sampled at all.
        let text = "/dev/sda1 /mnt ext4 rw 0 0\nproc /mnt proc rw 0 0\n";
        assert!(points(text).is_empty());
    }

    #[test]
    fn fewer_fields_garbage_and_empty() {
        assert!(points("").is_empty());
        assert!(points("\n\n").is_empty());
        assert!(points("/dev/sda1 /\n/dev/sda1\n").is_empty());
        assert!(points("none relative ext4 rw 0 0\n").is_empty());
        assert!(points("\u{0}\u{1}garbage \u{7f} \n").is_empty());
        let mut out = Mounts::new();
        parse_mounts(b"/dev/sda1 /bad\xff ext4 rw 0 0\n\xff\xfe\xfd", &mut out);
        assert!(out.is_empty());
        // Three fields are enough.
        assert_eq!(points("/dev/sda1 / ext4"), ["/"]);
    }

    #[test]
    fn too_long_mount_points_are_skipped() {
        let fits = format!("/{}", "a".repeat(MAX_DIM_VALUE_LEN - 1));
        let too_long = format!("/{}", "b".repeat(MAX_DIM_VALUE_LEN));
        // Escapes count as one byte once decoded.
        let escaped = format!("/{}\\040", "c".repeat(MAX_DIM_VALUE_LEN - 2));
        let text =
            format!("x {fits} ext4 rw 0 0\nx {too_long} ext4 rw 0 0\nx {escaped} ext4 rw 0 0\n");
        let expected_escaped = format!("/{} ", "c".repeat(MAX_DIM_VALUE_LEN - 2));
        assert_eq!(points(&text), [fits, expected_escaped]);
    }

    #[test]
    fn at_most_max_mounts() {
        let text: String = (0..MAX_MOUNTS + 5)
            .map(|i| format!("/dev/x{i} /m{i} ext4 rw 0 0\n"))
            .collect();
        let got = points(&text);
        assert_eq!(got.len(), MAX_MOUNTS);
        assert_eq!(got[MAX_MOUNTS - 1], format!("/m{}", MAX_MOUNTS - 1));
    }

    #[test]
    fn used_percent_like_df() {
        // 1000 blocks, 400 free, 350 available to users: used 600 of 950.
        let s = FsStats {
            blocks: 1000,
            bfree: 400,
            bavail: 350,
            files: 0,
            ffree: 0,
        };
        assert_eq!(s.used_percent(), Some(100.0 * 600.0 / 950.0));
        assert_eq!(s.inodes_used_percent(), None);
        let full = FsStats {
            blocks: 1000,
            bfree: 50,
            bavail: 0,
            ..s
        };
        assert_eq!(full.used_percent(), Some(100.0));
    }

    #[test]
    fn inodes_used_percent() {
        let s = FsStats {
            blocks: 1,
            bfree: 1,
            bavail: 1,
            files: 200,
            ffree: 150,
        };
        assert_eq!(s.inodes_used_percent(), Some(25.0));
        let bogus = FsStats { ffree: 300, ..s };
        assert_eq!(bogus.inodes_used_percent(), Some(0.0));
    }

    #[test]
    fn empty_filesystems_give_no_sample() {
        assert_eq!(FsStats::default().used_percent(), None);
        assert_eq!(FsStats::default().inodes_used_percent(), None);
        // All blocks reserved and free: used + avail is 0.
        let s = FsStats {
            blocks: 10,
            bfree: 10,
            bavail: 0,
            files: 0,
            ffree: 0,
        };
        assert_eq!(s.used_percent(), None);
    }

    #[test]
    fn huge_numbers() {
        let max = u64::MAX;
        let s = FsStats {
            blocks: max,
            bfree: 0,
            bavail: max,
            files: max,
            ffree: 0,
        };
        assert_eq!(s.used_percent(), Some(50.0));
        assert_eq!(s.inodes_used_percent(), Some(100.0));
        // bfree > blocks (a confused driver): used saturates at 0.
        let s = FsStats {
            blocks: 1,
            bfree: max,
            bavail: 1,
            files: 1,
            ffree: max,
        };
        assert_eq!(s.used_percent(), Some(0.0));
        assert_eq!(s.inodes_used_percent(), Some(0.0));
    }
}
