//! Data files as a user names them: what a path is when it is not a readable regular file,
//! compressed contents recognised by their magic bytes (whatever the name says), and the column
//! names closest to a misspelt one.

use std::io::Read;
use std::path::Path;

/// Compression recognised by the first bytes of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
}

impl Compression {
    pub fn detect(head: &[u8]) -> Option<Self> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Compression::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Compression::Zstd)
        } else {
            None
        }
    }

    fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// `Ok` when `path` is a regular file (after following links); otherwise what it is instead, in
/// words a user can act on.
pub fn regular_file(path: &Path) -> Result<(), String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(if std::fs::symlink_metadata(path).is_ok() { "a symbolic link to a file that does not exist".into() } else { "file not found".into() })
        }
        Err(e) if e.raw_os_error() == Some(40) && cfg!(target_os = "linux") => return Err("a symbolic link loop (the link points back to itself)".into()),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    if meta.is_file() {
        return Ok(());
    }
    Err(format!("is {}, not a regular file", kind(&meta)))
}

fn kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_block_device() || t.is_char_device() {
            return "a device";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else {
        "something other than a file"
    }
}

/// The file's bytes, decompressed when they are gzip or zstd; the compression found, if any.
pub fn read_decompressed(path: &Path) -> Result<(Vec<u8>, Option<Compression>), String> {
    regular_file(path)?;
    let raw = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let Some(compression) = Compression::detect(&raw) else { return Ok((raw, None)) };
    let mut out = Vec::new();
    let result = match compression {
        Compression::Gzip => flate2::read::MultiGzDecoder::new(raw.as_slice()).read_to_end(&mut out),
        Compression::Zstd => zstd::stream::read::Decoder::new(raw.as_slice()).and_then(|mut d| d.read_to_end(&mut out)),
    };
    result.map_err(|e| format!("bad {} data: {e}", compression.name()))?;
    Ok((out, Some(compression)))
}

/// Whether the file starts with gzip or zstd magic bytes (reads only its first bytes).
pub fn compression_of(path: &Path) -> Option<Compression> {
    let mut head = [0u8; 4];
    let n = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)).ok()?;
    Compression::detect(&head[..n])
}

/// Up to `n` of `names` close enough to `wanted` (edit distance, ignoring case) to be a
/// plausible misspelling of it, closest first.
pub fn closest<'a>(names: &'a [String], wanted: &str, n: usize) -> Vec<&'a str> {
    let lower = wanted.to_lowercase();
    let near = (wanted.chars().count() / 2).max(2);
    let mut scored: Vec<(usize, &str)> =
        names.iter().map(|c| (strsim::levenshtein(&c.to_lowercase(), &lower), c.as_str())).filter(|&(d, _)| d <= near).collect();
    scored.sort_by_key(|&(d, _)| d);
    scored.into_iter().take(n).map(|(_, c)| c).collect()
}

/// Which columns a user probably meant by the missing `wanted`, for an error message: the few
/// closest names, or the first few when none is close (never all of a wide table's).
pub fn suggest_column(names: &[String], wanted: &str) -> String {
    let quote = |c: &[&str]| c.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ");
    match closest(names, wanted, 3) {
        close if !close.is_empty() => format!("closest: {}; {} columns in all", quote(&close), names.len()),
        _ => {
            let first: Vec<&str> = names.iter().take(3).map(String::as_str).collect();
            format!("no similar name; the file's {} columns start {}", names.len(), quote(&first))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn closest_names_come_first_and_only_plausible_ones() {
        let mut names: Vec<String> = (0..784).map(|i| format!("px{i}")).collect();
        names.insert(0, "Label".into());
        names.push("labels".into());
        assert_eq!(closest(&names, "label", 3), vec!["Label", "labels"]);
        let text = suggest_column(&names, "label");
        assert!(text.starts_with("closest: `Label`, `labels`") && text.contains("786 columns"), "{text}");
        assert!(!text.contains("px783"));
        assert!(suggest_column(&names, "species").starts_with("no similar name; the file's 786 columns start `Label`"));
    }

    #[test]
    fn gzip_and_zstd_are_recognised_by_their_bytes_not_their_name() {
        let dir = tempdir();
        let text = b"a,b\n1,2\n";
        let gz = dir.join("data.csv");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(text).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        assert_eq!(read_decompressed(&gz).unwrap(), (text.to_vec(), Some(Compression::Gzip)));
        let zst = dir.join("data.bin");
        std::fs::write(&zst, zstd::encode_all(&text[..], 3).unwrap()).unwrap();
        assert_eq!(read_decompressed(&zst).unwrap(), (text.to_vec(), Some(Compression::Zstd)));
        std::fs::write(&zst, [0x28, 0xb5, 0x2f, 0xfd, 0, 1]).unwrap();
        assert!(read_decompressed(&zst).unwrap_err().starts_with("bad zstd data"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn paths_that_are_not_files_say_what_they_are() {
        let dir = tempdir();
        assert_eq!(regular_file(&dir).unwrap_err(), "is a directory, not a regular file");
        assert_eq!(regular_file(&dir.join("nope.csv")).unwrap_err(), "file not found");
        let link = dir.join("loop.csv");
        std::os::unix::fs::symlink(&link, &link).unwrap();
        assert!(regular_file(&link).unwrap_err().contains("symbolic link loop"));
        let dangling = dir.join("dangling.csv");
        std::os::unix::fs::symlink(dir.join("gone"), &dangling).unwrap();
        assert!(regular_file(&dangling).unwrap_err().contains("does not exist"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn tempdir() -> std::path::PathBuf {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("distill-file-{}-{t}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
