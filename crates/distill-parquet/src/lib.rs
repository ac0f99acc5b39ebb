//! A Parquet file's footer checked before polars reads it. polars trusts the footer: a corrupt
//! one (a list or string length, a row count, a column chunk's size) can make it ask for 2⁶¹
//! bytes, and the allocator's abort cannot be caught. Here the footer's thrift (compact protocol)
//! is decoded with every length bounded by the bytes that remain, and the values polars sizes its
//! buffers by are checked against the file: row counts add up, column chunks lie inside the data
//! before the footer, decoded sizes fit in memory, the schema tree is whole. Then every page's
//! header (`pages.rs`). A file that passes can still fail to decode, but as an error, not an abort.

mod pages;
mod thrift;

use pages::Chunk;

use thrift::{Struct, Value};

/// Checks the Parquet file `bytes` (the whole file); `memory`: the bytes this process may use
/// (decoded sizes above it are refused). The error says what is wrong, for the user.
pub fn check(bytes: &[u8], memory: u64) -> Result<(), String> {
    let footer = footer(bytes)?;
    let chunks = check_metadata(footer, (bytes.len() - 8 - footer.len()) as u64, memory)?;
    // Chunks lie inside the data (checked above), so these slices are in bounds.
    let mut read = |at: u64, len: usize| Ok(bytes[at as usize..at as usize + len].to_vec());
    check_chunks(&chunks, memory, &mut read)
}

/// [`check`] reading only the footer of the file at `path`.
pub fn check_file(path: &std::path::Path, memory: u64) -> Result<(), String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let size = f.metadata().map_err(|e| format!("cannot read it: {e}"))?.len();
    if size < 12 {
        return Err(format!("not a Parquet file: {size} bytes, fewer than a Parquet file's 12 bytes of magic and footer length"));
    }
    let mut head = [0u8; 4];
    f.read_exact(&mut head).map_err(|e| format!("cannot read it: {e}"))?;
    let mut tail = [0u8; 8];
    f.seek(SeekFrom::End(-8)).and_then(|_| f.read_exact(&mut tail)).map_err(|e| format!("cannot read it: {e}"))?;
    let len = magic_and_length(&head, &tail, size)?;
    let mut footer = vec![0u8; len as usize];
    f.seek(SeekFrom::End(-8 - len as i64)).and_then(|_| f.read_exact(&mut footer)).map_err(|e| format!("cannot read its footer: {e}"))?;
    let chunks = check_metadata(&footer, size - 8 - len, memory)?;
    let mut read = |at: u64, len: usize| {
        let mut window = vec![0u8; len];
        f.seek(SeekFrom::Start(at)).and_then(|_| f.read_exact(&mut window)).map_err(|e| format!("cannot read it at byte {at}: {e}"))?;
        Ok(window)
    };
    check_chunks(&chunks, memory, &mut read)
}

fn check_chunks(chunks: &[(String, Chunk)], memory: u64, read: &mut dyn FnMut(u64, usize) -> Result<Vec<u8>, String>) -> Result<(), String> {
    for (at, chunk) in chunks {
        pages::check_pages(chunk, memory, read).map_err(|e| format!("corrupt Parquet page header: {at}, {e}"))?;
    }
    Ok(())
}

fn footer(bytes: &[u8]) -> Result<&[u8], String> {
    let size = bytes.len() as u64;
    if size < 12 {
        return Err(format!("not a Parquet file: {size} bytes, fewer than a Parquet file's 12 bytes of magic and footer length"));
    }
    let len = magic_and_length(&bytes[..4], &bytes[bytes.len() - 8..], size)? as usize;
    Ok(&bytes[bytes.len() - 8 - len..bytes.len() - 8])
}

/// The footer's length from the last 8 bytes, checked against the file's size and magic.
fn magic_and_length(head: &[u8], tail: &[u8], size: u64) -> Result<u64, String> {
    if head != b"PAR1" || &tail[4..] != b"PAR1" {
        return Err("not a Parquet file (no `PAR1` magic at its start and end)".into());
    }
    let len = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as u64;
    if len == 0 || len > size - 12 {
        return Err(format!("corrupt Parquet footer: it claims {len} bytes of metadata in a file of {size} bytes"));
    }
    Ok(len)
}

/// The file metadata's fields polars sizes buffers by, against `data_end` (where the footer
/// starts) and `memory`; returns every column chunk, named by row group and column.
fn check_metadata(footer: &[u8], data_end: u64, memory: u64) -> Result<Vec<(String, Chunk)>, String> {
    let corrupt = |what: String| format!("corrupt Parquet footer: {what}");
    let meta = thrift::decode(footer).map_err(|e| corrupt(format!("the metadata does not decode ({e})")))?;
    let rows = meta.int(3).ok_or_else(|| corrupt("no row count".into()))?;
    bounded("the row count", rows, memory).map_err(corrupt)?;
    check_schema(meta.list(2).unwrap_or(&[])).map_err(corrupt)?;
    let (mut total, mut chunks) = (0i64, Vec::new());
    for (g, group) in meta.list(4).unwrap_or(&[]).iter().enumerate() {
        let group = group.as_struct().ok_or_else(|| corrupt(format!("row group {g} is not a struct")))?;
        let n = group.int(3).ok_or_else(|| corrupt(format!("row group {g} has no row count")))?;
        bounded(&format!("row group {g}'s row count"), n, memory).map_err(corrupt)?;
        total = total.saturating_add(n);
        for (c, chunk) in group.list(1).unwrap_or(&[]).iter().enumerate() {
            let Some(m) = chunk.as_struct().and_then(|s| s.field(3)).and_then(Value::as_struct) else { continue };
            let at = format!("row group {g}, column {c}");
            let chunk = check_chunk(m, data_end, memory).map_err(|e| corrupt(format!("{at}: {e}")))?;
            chunks.push((at, chunk));
        }
    }
    if total != rows {
        return Err(corrupt(format!("the row groups hold {total} rows but the file says {rows}")));
    }
    Ok(chunks)
}

pub(crate) fn bounded(what: &str, v: i64, memory: u64) -> Result<(), String> {
    if v < 0 {
        return Err(format!("{what} is negative ({v})"));
    }
    if v as u64 > memory {
        return Err(format!("{what} is {v}, more than this machine's {memory} bytes of memory could hold"));
    }
    Ok(())
}

/// A column chunk's metadata: its pages lie between the leading magic and the footer, and what
/// they decode to fits in memory.
fn check_chunk(m: &Struct, data_end: u64, memory: u64) -> Result<Chunk, String> {
    for (field, what) in [(5, "its value count"), (6, "its decoded size"), (7, "its stored size")] {
        bounded(what, m.int(field).unwrap_or(0), memory)?;
    }
    let stored = m.int(7).unwrap_or(0) as u64;
    let data = m.int(9).ok_or("no data page offset")?;
    let start = m.int(11).filter(|&d| d > 0).map_or(data, |d| d.min(data));
    if start < 4 || start as u64 >= data_end || (start as u64).saturating_add(stored) > data_end {
        return Err(format!("its pages at bytes {start}..{} lie outside the file's data (bytes 4..{data_end})", (start as u64).saturating_add(stored)));
    }
    Ok(Chunk { start: start as u64, stored, values: m.int(5).unwrap_or(0) })
}

/// The schema is a tree listed depth first: every element's `num_children` must be there.
fn check_schema(elements: &[Value]) -> Result<(), String> {
    let mut pending: u64 = 1;
    for (i, e) in elements.iter().enumerate() {
        if pending == 0 {
            return Err(format!("schema element {i} belongs to no parent"));
        }
        pending -= 1;
        let children = e.as_struct().and_then(|s| s.int(5)).unwrap_or(0);
        if children < 0 || children as u64 > elements.len() as u64 {
            return Err(format!("schema element {i} claims {children} children among {} elements", elements.len()));
        }
        pending += children as u64;
    }
    if pending != 0 || elements.is_empty() {
        return Err(format!("the schema lists {} elements but its tree needs {pending} more", elements.len()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
