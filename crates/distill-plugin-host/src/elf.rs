//! The parts of an ELF file the dynamic loader maps, checked to lie within the file: what a
//! truncated or corrupt library gets wrong first. Not a full validation; enough that mapping
//! never reaches past the end of the file.

use crate::error::FileProblem;

const ET_DYN: u16 = 3;

/// Field offsets and sizes of the two ELF classes.
struct Layout {
    header: usize,
    phoff: usize,
    shoff: usize,
    phentsize: usize,
    /// Minimum program header entry size, and the offsets of `p_offset` and `p_filesz` in it.
    ph_min: usize,
    p_offset: usize,
    p_filesz: usize,
    word: usize,
}

const ELF32: Layout = Layout { header: 52, phoff: 28, shoff: 32, phentsize: 42, ph_min: 32, p_offset: 4, p_filesz: 16, word: 4 };
const ELF64: Layout = Layout { header: 64, phoff: 32, shoff: 40, phentsize: 54, ph_min: 56, p_offset: 8, p_filesz: 32, word: 8 };

struct Reader<'a> {
    bytes: &'a [u8],
    little: bool,
}

impl Reader<'_> {
    fn uint(&self, at: usize, size: usize) -> u64 {
        let b = &self.bytes[at..at + size];
        let mut v = 0u64;
        for i in 0..size {
            let byte = if self.little { b[size - 1 - i] } else { b[i] };
            v = (v << 8) | u64::from(byte);
        }
        v
    }
}

/// Checks an ELF shared object for this machine: magic, class and byte order, type, and that
/// the program header table, the section header table and every segment's file bytes end
/// within the file.
pub(crate) fn check(bytes: &[u8]) -> Result<(), FileProblem> {
    let len = bytes.len() as u64;
    if bytes.len() < 16 || !bytes.starts_with(b"\x7fELF") {
        return Err(FileProblem::NotElf);
    }
    let layout = match (bytes[4], cfg!(target_pointer_width = "64")) {
        (2, true) => &ELF64,
        (1, false) => &ELF32,
        (1 | 2, _) => return Err(FileProblem::WrongClass { bits: if bytes[4] == 2 { 64 } else { 32 } }),
        _ => return Err(FileProblem::NotElf),
    };
    let little = match bytes[5] {
        1 => true,
        2 => false,
        _ => return Err(FileProblem::NotElf),
    };
    if little != cfg!(target_endian = "little") {
        return Err(FileProblem::WrongByteOrder);
    }
    if bytes.len() < layout.header {
        return Err(FileProblem::Truncated { what: "the ELF header".into(), end: layout.header as u64, len });
    }
    let r = Reader { bytes, little };
    let e_type = r.uint(16, 2) as u16;
    if e_type != ET_DYN {
        return Err(FileProblem::NotShared { e_type });
    }
    let (phoff, shoff) = (r.uint(layout.phoff, layout.word), r.uint(layout.shoff, layout.word));
    let (phentsize, phnum) = (r.uint(layout.phentsize, 2), r.uint(layout.phentsize + 2, 2));
    let (shentsize, shnum) = (r.uint(layout.phentsize + 4, 2), r.uint(layout.phentsize + 6, 2));
    if phnum > 0 && (phentsize as usize) < layout.ph_min {
        return Err(FileProblem::Malformed(format!("program header entries of {phentsize} bytes")));
    }
    within(len, "the program header table", phoff, phentsize * phnum)?;
    if shoff != 0 {
        // shnum is 0 when the count is kept in the first section header; that one must fit.
        within(len, "the section header table", shoff, shentsize * shnum.max(1))?;
    }
    for i in 0..phnum {
        let at = (phoff + i * phentsize) as usize;
        let offset = r.uint(at + layout.p_offset, layout.word);
        let size = r.uint(at + layout.p_filesz, layout.word);
        within(len, &format!("segment {i}"), offset, size)?;
    }
    Ok(())
}

fn within(len: u64, what: &str, offset: u64, size: u64) -> Result<(), FileProblem> {
    match offset.checked_add(size) {
        Some(end) if end <= len => Ok(()),
        end => Err(FileProblem::Truncated { what: what.to_string(), end: end.unwrap_or(u64::MAX), len }),
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn this_binary() -> Vec<u8> {
        // A test binary is a position-independent executable: ET_DYN on Linux, like a library.
        std::fs::read(std::env::current_exe().unwrap()).unwrap()
    }

    #[test]
    fn an_intact_object_passes_and_any_truncation_fails() {
        let bytes = this_binary();
        if u16::from_le_bytes([bytes[16], bytes[17]]) != ET_DYN {
            return; // a non-PIE toolchain; the plugin tests cover real libraries
        }
        check(&bytes).unwrap();
        for cut in [bytes.len() - 1, bytes.len() / 2, 4096, 100, 63, 15, 0] {
            assert!(check(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(matches!(check(&bytes[..bytes.len() / 2]), Err(FileProblem::Truncated { .. })));
    }

    #[test]
    fn foreign_files_are_refused_by_what_they_are() {
        let mut bytes = this_binary();
        bytes[16] = 2; // ET_EXEC
        assert!(matches!(check(&bytes), Err(FileProblem::NotShared { e_type: 2 })));
        bytes[4] = 1;
        assert!(matches!(check(&bytes), Err(FileProblem::WrongClass { bits: 32 })));
        assert!(matches!(check(b"#!/bin/sh\necho not a library\n"), Err(FileProblem::NotElf)));
    }
}
