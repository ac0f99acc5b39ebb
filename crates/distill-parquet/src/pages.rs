//! Page headers, checked before polars decodes the pages. Each page's header (uncompressed
//! thrift, before its data) gives the value counts polars sizes its buffers by: a negative count
//! becomes a huge `usize` there, and the allocation of ~2⁶¹ bytes aborts (found by fuzzing).
//! Every page must lie inside its column chunk, and its counts must be non-negative and within
//! the chunk's value count.

use crate::bounded;
use crate::thrift::{self, Struct};

/// A page header is read from at most this many bytes (statistics can make headers long).
const HEADER_WINDOW: u64 = 1 << 16;

/// Where a column chunk's pages are (from the footer) and the values it holds.
pub(crate) struct Chunk {
    pub start: u64,
    pub stored: u64,
    pub values: i64,
}

/// Checks every page header of `chunk`; `read(offset, len)` gives the file's bytes.
pub(crate) fn check_pages(chunk: &Chunk, memory: u64, read: &mut dyn FnMut(u64, usize) -> Result<Vec<u8>, String>) -> Result<(), String> {
    let end = chunk.start + chunk.stored;
    let (mut at, mut values, mut page) = (chunk.start, 0i64, 0usize);
    while at < end {
        let window = read(at, (end - at).min(HEADER_WINDOW) as usize)?;
        let (header, len) = thrift::decode_prefix(&window).map_err(|e| format!("page {page} at byte {at}: its header does not decode ({e})"))?;
        let size = check_page(&header, chunk, memory).map_err(|e| format!("page {page} at byte {at}: {e}"))?;
        values = values.saturating_add(data_values(&header));
        if values > chunk.values {
            return Err(format!("page {page} at byte {at}: the pages hold more values than the chunk's {}", chunk.values));
        }
        at = at.saturating_add(len as u64).saturating_add(size);
        if at > end {
            return Err(format!("page {page} ends at byte {at}, past its column chunk's end at byte {end}"));
        }
        page += 1;
    }
    Ok(())
}

/// One page header's sizes and counts; returns the page's stored size.
fn check_page(header: &Struct, chunk: &Chunk, memory: u64) -> Result<u64, String> {
    let stored = header.int(3).ok_or("no compressed page size")?;
    bounded("its compressed size", stored, memory)?;
    bounded("its uncompressed size", header.int(2).ok_or("no uncompressed page size")?, memory)?;
    // Data page v1 (5) and v2 (8): counts within the chunk; a dictionary page (7): within its bytes.
    for (field, counts) in [(5, &[(1, "its value count")][..]), (8, &[(1, "its value count"), (2, "its null count"), (3, "its row count")])] {
        let Some(h) = header.field(field).and_then(|v| v.as_struct()) else { continue };
        for &(id, what) in counts {
            let n = h.int(id).unwrap_or(0);
            if n < 0 || n > chunk.values {
                return Err(format!("{what} is {n}, outside 0..={} (the chunk's values)", chunk.values));
            }
        }
        if field != 8 {
            continue;
        }
        let levels = h.int(5).unwrap_or(0).max(0).saturating_add(h.int(6).unwrap_or(0).max(0));
        if h.int(5).unwrap_or(0) < 0 || h.int(6).unwrap_or(0) < 0 || levels > stored {
            return Err(format!("its level lengths ({:?}, {:?}) do not fit its {stored} bytes", h.int(5), h.int(6)));
        }
    }
    if let Some(d) = header.field(7).and_then(|v| v.as_struct()) {
        let n = d.int(1).unwrap_or(0);
        let uncompressed = header.int(2).unwrap_or(0);
        if n < 0 || n > uncompressed {
            return Err(format!("its dictionary count is {n}, outside 0..={uncompressed} (its uncompressed bytes)"));
        }
    }
    Ok(stored as u64)
}

/// The values a data page holds (0 for other pages).
fn data_values(header: &Struct) -> i64 {
    [5, 8].iter().find_map(|&f| header.field(f).and_then(|v| v.as_struct()).and_then(|h| h.int(1))).unwrap_or(0)
}
