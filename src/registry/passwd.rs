//! Finding a named user's UID the way the container runtime will: in the image's `/etc/passwd`,
//! read from the topmost layer that has it, with the OCI layer rules for whiteouts (`.wh.name`
//! hides a path of the layers below, `.wh..wh..opq` a whole directory of them). Pure over any
//! `Read`; every byte decompressed and read is counted against a limit, so a decompression bomb
//! ends in an error, not in memory.

use std::io::Read;

use super::manifest::LayerCompression;

/// Bounds on one layer's scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanLimits {
    /// Decompressed tar bytes read from one layer before giving up.
    pub max_layer_bytes: u64,
    /// Largest `/etc/passwd` read.
    pub max_passwd_bytes: u64,
}

impl Default for ScanLimits {
    fn default() -> Self {
        ScanLimits {
            max_layer_bytes: 512 << 20,
            max_passwd_bytes: 1 << 20,
        }
    }
}

/// What one layer says about `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerScan {
    /// The layer holds the file: its content (the layers below do not matter).
    Found(Vec<u8>),
    /// The layer removes the file of the layers below (a whiteout of it, of `/etc`, or an opaque
    /// `/etc`): the image has no `/etc/passwd` unless this layer adds one.
    Removed,
    /// The layer says nothing about it: look in the layer below.
    Absent,
}

/// Why a layer could not be scanned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// More decompressed bytes than the limit.
    #[error("layer larger than {max} bytes decompressed")]
    LayerTooLarge {
        /// The limit.
        max: u64,
    },
    /// `/etc/passwd` larger than the limit.
    #[error("/etc/passwd larger than {max} bytes")]
    PasswdTooLarge {
        /// The limit.
        max: u64,
    },
    /// `/etc/passwd` is a link: the runtime would follow it through the merged filesystem, which
    /// this scan does not rebuild.
    #[error("/etc/passwd is a link in the image, not followed")]
    PasswdIsLink,
    /// Not a (compressed) tar, or the stream broke.
    #[error("unreadable layer: {0}")]
    Read(#[source] std::io::Error),
}

/// A reader that fails once more than `max` bytes have come through it.
struct Counted<R> {
    inner: R,
    read: u64,
    max: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.max {
            return Err(std::io::Error::other(LimitReached));
        }
        Ok(n)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("limit reached")]
struct LimitReached;

fn is_limit(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<LimitReached>())
}

/// The path of a tar entry relative to the image root: without `./` or `/` in front.
fn normalized(path: &std::path::Path) -> String {
    let s = path.to_string_lossy();
    let mut s: &str = &s;
    loop {
        if let Some(rest) = s.strip_prefix("./") {
            s = rest;
        } else if let Some(rest) = s.strip_prefix('/') {
            s = rest;
        } else {
            break;
        }
    }
    s.trim_end_matches('/').to_owned()
}

/// Scans one layer (its blob as `reader`, compressed as `compression`) for `/etc/passwd`.
pub fn scan_layer(
    reader: impl Read,
    compression: LayerCompression,
    limits: &ScanLimits,
) -> Result<LayerScan, ScanError> {
    let decompressed: Box<dyn Read> = match compression {
        LayerCompression::None => Box::new(reader),
        LayerCompression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        LayerCompression::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(reader)
                .map_err(|e| ScanError::Read(std::io::Error::other(e.to_string())))?,
        ),
    };
    let counted = Counted {
        inner: decompressed,
        read: 0,
        max: limits.max_layer_bytes,
    };
    let map_io = |e: std::io::Error| {
        if is_limit(&e) {
            ScanError::LayerTooLarge {
                max: limits.max_layer_bytes,
            }
        } else {
            ScanError::Read(e)
        }
    };
    let mut archive = tar::Archive::new(counted);
    let mut removed = false;
    for entry in archive.entries().map_err(map_io)? {
        let mut entry = entry.map_err(map_io)?;
        let path = normalized(&entry.path().map_err(map_io)?);
        match path.as_str() {
            "etc/passwd" => {
                let kind = entry.header().entry_type();
                if kind.is_symlink() || kind.is_hard_link() {
                    return Err(ScanError::PasswdIsLink);
                }
                if !kind.is_file() {
                    // A directory or device named passwd: no file, as for a whiteout.
                    removed = true;
                    continue;
                }
                if entry.size() > limits.max_passwd_bytes {
                    return Err(ScanError::PasswdTooLarge {
                        max: limits.max_passwd_bytes,
                    });
                }
                let mut content = Vec::new();
                (&mut entry)
                    .take(limits.max_passwd_bytes + 1)
                    .read_to_end(&mut content)
                    .map_err(map_io)?;
                if content.len() as u64 > limits.max_passwd_bytes {
                    return Err(ScanError::PasswdTooLarge {
                        max: limits.max_passwd_bytes,
                    });
                }
                // A file in the same layer as a whiteout is not hidden by it (OCI image spec,
                // "Whiteouts"): the content wins whatever came before or comes after.
                return Ok(LayerScan::Found(content));
            }
            "etc/.wh.passwd" | ".wh.etc" | "etc/.wh..wh..opq" => removed = true,
            _ => {}
        }
    }
    Ok(if removed {
        LayerScan::Removed
    } else {
        LayerScan::Absent
    })
}

/// The UID of `name` in a passwd file (`name:password:uid:gid:gecos:home:shell` lines), as the
/// runtime's user lookup reads it: the first line whose name matches, comments and malformed
/// lines skipped.
pub fn passwd_uid(passwd: &[u8], name: &str) -> Option<i64> {
    passwd
        .split(|&b| b == b'\n')
        .filter_map(|line| std::str::from_utf8(line).ok())
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let mut fields = line.split(':');
            let user = fields.next()?;
            let _password = fields.next()?;
            let uid = fields.next()?;
            (user == name).then(|| uid.trim().parse::<i64>().ok())?
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of `(path, content)`; content `None` makes a symlink to `/x`.
    fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let mut header = tar::Header::new_gnu();
            match content {
                Some(bytes) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_size(bytes.len() as u64);
                    header.set_mode(0o644);
                    builder
                        .append_data(&mut header, path, *bytes)
                        .expect("append");
                }
                None => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_size(0);
                    builder
                        .append_link(&mut header, path, "/x")
                        .expect("append link");
                }
            }
        }
        builder.into_inner().expect("tar")
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).expect("gzip");
        encoder.finish().expect("gzip")
    }

    fn zstd(bytes: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(bytes, ruzstd::encoding::CompressionLevel::Fastest)
    }

    const PASSWD: &[u8] = b"root:x:0:0:root:/root:/bin/sh\napp:x:1001:1001::/home/app:/bin/sh\n";

    #[test]
    fn finds_passwd_and_whiteouts_in_every_compression() {
        let limits = ScanLimits::default();
        type Entries<'a> = &'a [(&'a str, Option<&'a [u8]>)];
        let cases: [(Entries<'_>, LayerScan); 7] = [
            (
                &[("etc/passwd", Some(PASSWD))],
                LayerScan::Found(PASSWD.to_vec()),
            ),
            (
                &[("./etc/passwd", Some(PASSWD))],
                LayerScan::Found(PASSWD.to_vec()),
            ),
            (&[("etc/group", Some(b"g"))], LayerScan::Absent),
            (&[("etc/.wh.passwd", Some(b""))], LayerScan::Removed),
            (&[(".wh.etc", Some(b""))], LayerScan::Removed),
            (&[("etc/.wh..wh..opq", Some(b""))], LayerScan::Removed),
            (
                &[
                    ("etc/.wh..wh..opq", Some(b"")),
                    ("etc/passwd", Some(PASSWD)),
                ],
                LayerScan::Found(PASSWD.to_vec()),
            ),
        ];
        for (entries, expected) in cases {
            let tar = tar_of(entries);
            for (compression, blob) in [
                (LayerCompression::None, tar.clone()),
                (LayerCompression::Gzip, gzip(&tar)),
                (LayerCompression::Zstd, zstd(&tar)),
            ] {
                let scan = scan_layer(blob.as_slice(), compression, &limits)
                    .unwrap_or_else(|e| panic!("{entries:?} {compression:?}: {e}"));
                assert_eq!(scan, expected, "{entries:?} {compression:?}");
            }
        }
    }

    #[test]
    fn bounds_and_bad_input_are_errors() {
        let tight = ScanLimits {
            max_layer_bytes: 4096,
            max_passwd_bytes: 16,
        };
        let big = vec![0u8; 64 << 10];
        // A layer that inflates past the limit: a small gzip of a large tar.
        let bomb = gzip(&tar_of(&[("big", Some(&big))]));
        assert!(bomb.len() < 4096);
        assert!(matches!(
            scan_layer(bomb.as_slice(), LayerCompression::Gzip, &tight),
            Err(ScanError::LayerTooLarge { max: 4096 })
        ));
        assert!(matches!(
            scan_layer(
                tar_of(&[("etc/passwd", Some(PASSWD))]).as_slice(),
                LayerCompression::None,
                &tight
            ),
            Err(ScanError::PasswdTooLarge { max: 16 })
        ));
        assert!(matches!(
            scan_layer(
                tar_of(&[("etc/passwd", None)]).as_slice(),
                LayerCompression::None,
                &ScanLimits::default()
            ),
            Err(ScanError::PasswdIsLink)
        ));
        for (blob, compression) in [
            (&b"not gzip at all"[..], LayerCompression::Gzip),
            (&b"not zstd at all"[..], LayerCompression::Zstd),
            (&[1u8; 700][..], LayerCompression::None),
        ] {
            assert!(
                matches!(
                    scan_layer(blob, compression, &ScanLimits::default()),
                    Err(ScanError::Read(_))
                ),
                "{compression:?}"
            );
        }
    }

    #[test]
    fn reads_uids_as_the_runtime_does() {
        let passwd = b"# comment\nroot:x:0:0::/:/bin/sh\r\nbroken\nnobody:x:65534:65534::/:/sbin/nologin\napp:x:1001:1001::/:\napp:x:2002:2002::/:\nodd:x:abc:1::/:\n";
        for (name, uid) in [
            ("root", Some(0)),
            ("nobody", Some(65534)),
            ("app", Some(1001)),
            ("odd", None),
            ("absent", None),
            ("broken", None),
            ("", None),
        ] {
            assert_eq!(passwd_uid(passwd, name), uid, "{name}");
        }
    }
}
