use super::*;

const GOOD: &[u8] = include_bytes!("../../../tests/fuzz/seeds/load_parquet/planted.parquet");
const GIB: u64 = 1 << 30;

/// `GOOD` with its footer replaced by `meta` (the length and magic after it fixed up).
fn with_footer(meta: &[u8]) -> Vec<u8> {
    let len = u32::from_le_bytes(GOOD[GOOD.len() - 8..GOOD.len() - 4].try_into().unwrap()) as usize;
    let mut out = GOOD[..GOOD.len() - 8 - len].to_vec();
    out.extend_from_slice(meta);
    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
    out.extend_from_slice(b"PAR1");
    out
}

#[test]
fn a_good_file_passes() {
    check(GOOD, GIB).unwrap();
}

#[test]
fn sizes_magic_and_lengths_are_checked() {
    assert!(check(b"PAR1PAR1", GIB).unwrap_err().contains("fewer than"));
    assert!(check(&GOOD[..GOOD.len() - 1], GIB).unwrap_err().contains("magic"));
    let mut long = GOOD.to_vec();
    let n = long.len();
    long[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(check(&long, GIB).unwrap_err().contains("claims 4294967295 bytes of metadata"));
}

#[test]
fn huge_lengths_and_counts_are_refused_before_anything_is_allocated() {
    // Field 2 (schema) a list of structs whose declared length is 2^60.
    let list = [0x29, 0xfc, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x10, 0x00];
    let e = check(&with_footer(&list), GIB).unwrap_err();
    assert!(e.contains("does not decode") && e.contains("a length of 1152921504606846976"), "{e}");
    // version 1, an empty schema list... a row count of 2^61 (field 3, i64 zigzag).
    let mut rows = vec![0x15, 0x02, 0x19, 0x0c, 0x16];
    let mut v = (1u64 << 61) << 1;
    while v >= 0x80 {
        rows.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    rows.extend([v as u8, 0x00]);
    let e = check(&with_footer(&rows), GIB).unwrap_err();
    assert!(e.contains("the row count is 2305843009213693952, more than"), "{e}");
    // Nesting without end.
    let deep: Vec<u8> = std::iter::repeat_n(0x1c, 200).collect();
    assert!(check(&with_footer(&deep), GIB).unwrap_err().contains("nested deeper"));
}

#[test]
fn a_negative_page_value_count_is_refused() {
    // Found by fuzzing: one byte changed in a data page's header made its value count negative,
    // and polars' reserve of that many bits (as a usize) aborted.
    let e = check(include_bytes!("../../../tests/fixtures/data/corrupt-page-header.parquet"), GIB).unwrap_err();
    assert!(e.starts_with("corrupt Parquet page header: row group 0, column ") && e.contains("its value count is -"), "{e}");
}

#[test]
fn pages_must_fill_their_chunk() {
    // The good file's first data page header with its compressed size made larger than the chunk.
    let mut bad = GOOD.to_vec();
    // A page header starts right after the leading magic: field 1 (type, i32), field 2
    // (uncompressed size), field 3 (compressed size), each a zigzag varint.
    assert_eq!(bad[4], 0x15, "a page header at byte 4");
    let (header, _) = thrift::decode_prefix(&bad[4..]).unwrap();
    let stored = header.int(3).unwrap();
    let mut at = 5;
    while bad[at] & 0x80 != 0 {
        at += 1; // the type's varint
    }
    at += 1;
    assert_eq!(bad[at], 0x15);
    at += 1;
    while bad[at] & 0x80 != 0 {
        at += 1; // the uncompressed size
    }
    at += 1;
    assert_eq!(bad[at], 0x15);
    // Bump the compressed size's lowest 6 bits of value (zigzag: value << 1 in the first byte).
    bad[at + 1] |= 0x7e;
    let (after, _) = thrift::decode_prefix(&bad[4..]).unwrap();
    assert!(after.int(3).unwrap() > stored);
    let e = check(&bad, GIB).unwrap_err();
    assert!(e.contains("corrupt Parquet page header") && e.contains("past its column chunk's end"), "{e}");
}
