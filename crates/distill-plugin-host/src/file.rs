//! The library file as the dynamic loader will see it. `dlopen` maps the file: a truncated
//! library, or one being rewritten while mapped, faults with SIGBUS on first touch, which no Rust
//! code can catch. So the bytes are read once, checked (a regular file; on ELF platforms the
//! header, the program and section header tables and every segment within the file), and
//! written to a private copy that nothing else writes; the loader maps the copy.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::FileProblem;

/// A checked copy of a library, private to this process; loadable by path while alive. The
/// loader keeps its own mapping, so dropping it after loading is fine.
pub(crate) struct PrivateCopy {
    path: PathBuf,
    _holder: Holder,
}

#[allow(dead_code)] // held only to keep the copy in existence
enum Holder {
    /// An anonymous in-memory file (Linux `memfd`): no file system, so no `noexec` mount or
    /// leftover file to worry about. Its descriptor is never closed: the loader recognises an
    /// already-loaded library by its path, so a later plugin given the same `/proc/self/fd/N`
    /// would be handed the earlier one. One descriptor per loaded library, for the process.
    Memory,
    Temp(tempfile::TempPath),
}

impl PrivateCopy {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads the library at `path`, checks it, and copies it; errors say what is wrong with the file.
pub(crate) fn checked_copy(path: &Path) -> Result<PrivateCopy, FileProblem> {
    let meta = std::fs::metadata(path).map_err(FileProblem::Read)?;
    if !meta.is_file() {
        return Err(FileProblem::NotRegular(file_kind(&meta)));
    }
    let bytes = std::fs::read(path).map_err(FileProblem::Read)?;
    check_library(&bytes)?;
    copy(&bytes)
}

fn file_kind(meta: &std::fs::Metadata) -> &'static str {
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
        "not a regular file"
    }
}

/// On ELF platforms every library must be a well-formed ELF shared object of this machine's
/// class and byte order; elsewhere only emptiness is checked (the loader reads the rest).
pub(crate) fn check_library(bytes: &[u8]) -> Result<(), FileProblem> {
    if bytes.is_empty() {
        return Err(FileProblem::Empty);
    }
    if cfg!(any(target_os = "macos", target_os = "ios", windows)) && !bytes.starts_with(b"\x7fELF") {
        return Ok(());
    }
    crate::elf::check(bytes)
}

fn copy(bytes: &[u8]) -> Result<PrivateCopy, FileProblem> {
    #[cfg(target_os = "linux")]
    if let Some(copy) = memory_copy(bytes) {
        return Ok(copy);
    }
    let mut tmp = tempfile::Builder::new().prefix(".distill-plugin-").suffix(std::env::consts::DLL_SUFFIX).tempfile().map_err(FileProblem::Copy)?;
    tmp.write_all(bytes).and_then(|()| tmp.flush()).map_err(FileProblem::Copy)?;
    let path = tmp.into_temp_path();
    Ok(PrivateCopy { path: path.to_path_buf(), _holder: Holder::Temp(path) })
}

/// The copy as a `memfd`, loaded through `/proc/self/fd/N`; `None` where either is unavailable
/// (then a temporary file is used).
#[cfg(target_os = "linux")]
fn memory_copy(bytes: &[u8]) -> Option<PrivateCopy> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    // SAFETY: a valid NUL-terminated name and flags; the result is checked before use.
    let fd = unsafe { libc::memfd_create(c"distill-plugin".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` is a new descriptor owned by nothing else.
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(bytes).ok()?;
    let path = PathBuf::from(format!("/proc/self/fd/{fd}"));
    if !path.exists() {
        return None; // closes the memfd
    }
    let _kept_open = file.into_raw_fd();
    Some(PrivateCopy { path, _holder: Holder::Memory })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_regular_files_are_named_for_what_they_are() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(checked_copy(dir.path()), Err(FileProblem::NotRegular("a directory"))));
        let empty = dir.path().join("empty.so");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(checked_copy(&empty), Err(FileProblem::Empty)));
        #[cfg(unix)]
        {
            let link = dir.path().join("loop.so");
            std::os::unix::fs::symlink(&link, &link).unwrap();
            let e = checked_copy(&link).err().unwrap();
            assert!(e.to_string().contains("symbolic links"), "{e}");
        }
    }

    #[test]
    fn the_copy_holds_the_same_bytes_at_a_path_of_its_own() {
        let bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let copy = copy(&bytes).unwrap();
        assert_eq!(std::fs::read(copy.path()).unwrap(), bytes);
    }
}
