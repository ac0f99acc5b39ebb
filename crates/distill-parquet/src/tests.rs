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
