//! What kind of file a data file is, from its first bytes: Parquet or CSV, gzipped or not, and
//! for CSV the delimiter and whether the first line is a header.

use std::io::Read;
use std::path::Path;

/// How much of the (decompressed) file the CSV guesses look at.
const SNIFF_BYTES: usize = 256 * 1024;
/// Lines the delimiter and header guesses use.
const SNIFF_LINES: usize = 200;
/// Delimiters tried, in order of preference when several fit.
const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Csv { delimiter: u8, header: bool },
    Parquet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    pub kind: Kind,
    /// The file is gzip-compressed (magic bytes 1f 8b).
    pub gzip: bool,
}

/// Reads the start of `path` and guesses its layout.
pub fn sniff(path: &Path) -> Result<Sniffed, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut raw = Vec::new();
    file.take(SNIFF_BYTES as u64).read_to_end(&mut raw).map_err(|e| format!("{}: {e}", path.display()))?;
    let gzip = raw.starts_with(&[0x1f, 0x8b]);
    let head = if gzip { gunzip_head(path)? } else { raw };
    if head.starts_with(b"PAR1") {
        return Ok(Sniffed { kind: Kind::Parquet, gzip });
    }
    let text = String::from_utf8_lossy(&head);
    // A cut-off last line would look ragged; drop it unless the whole file was read.
    let complete = head.len() < SNIFF_BYTES;
    let mut lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if !complete && lines.len() > 1 {
        lines.pop();
    }
    lines.truncate(SNIFF_LINES);
    if lines.is_empty() {
        return Err(format!("{}: no text lines to read (an empty file?)", path.display()));
    }
    let delimiter = delimiter(&lines);
    Ok(Sniffed { kind: Kind::Csv { delimiter, header: has_header(&lines, delimiter) }, gzip })
}

/// The start of a gzipped file, decompressed (a truncated stream is fine: only the head is used).
fn gunzip_head(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    let mut decoder = flate2::read::GzDecoder::new(file).take(SNIFF_BYTES as u64);
    decoder.read_to_end(&mut out).map_err(|e| format!("{}: not a readable gzip file: {e}", path.display()))?;
    Ok(out)
}

/// Fields of one CSV line (double quotes respected, quotes removed).
pub(crate) fn fields(line: &str, delimiter: u8) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for ch in line.chars() {
        if ch == '"' {
            quoted = !quoted;
        } else if !quoted && ch.is_ascii() && ch as u8 == delimiter {
            out.push(String::new());
        } else if let Some(last) = out.last_mut() {
            last.push(ch);
        }
    }
    out
}

/// The delimiter that splits every line into the same number (> 1) of fields, the most fields
/// first; `,` when none does (a one-column file).
fn delimiter(lines: &[&str]) -> u8 {
    let mut best: Option<(usize, u8)> = None;
    for d in DELIMITERS {
        let counts: Vec<usize> = lines.iter().map(|l| fields(l, d).len()).collect();
        let consistent = counts.iter().all(|&c| c == counts[0]) && counts[0] > 1;
        if consistent && best.is_none_or(|(n, _)| counts[0] > n) {
            best = Some((counts[0], d));
        }
    }
    best.map(|(_, d)| d).unwrap_or(b',')
}

/// A header when some column is numeric below the first line but not on it; none when the first
/// line has a number (names are not numbers); otherwise (all text) a header when none of the
/// first line's values recurs in its column.
fn has_header(lines: &[&str], delimiter: u8) -> bool {
    let rows: Vec<Vec<String>> = lines.iter().map(|l| fields(l, delimiter)).collect();
    let numeric = |s: &str| s.trim().parse::<f64>().is_ok();
    let (first, rest) = (&rows[0], &rows[1..]);
    let column_numeric = |j: usize| {
        let mut values = rest.iter().filter_map(|r| r.get(j)).filter(|v| !v.trim().is_empty()).peekable();
        values.peek().is_some() && values.all(|v| numeric(v))
    };
    if (0..first.len()).any(|j| !numeric(&first[j]) && column_numeric(j)) {
        return true;
    }
    if first.iter().any(|f| numeric(f)) {
        return false;
    }
    (0..first.len()).all(|j| !rest.iter().any(|r| r.get(j) == Some(&first[j])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(text: &str) -> Kind {
        let lines: Vec<&str> = text.lines().collect();
        let d = delimiter(&lines);
        Kind::Csv { delimiter: d, header: has_header(&lines, d) }
    }

    #[test]
    fn delimiters_and_headers() {
        assert_eq!(csv("a,b,y\n1,2,x\n3,4,z"), Kind::Csv { delimiter: b',', header: true });
        assert_eq!(csv("1;2,5;x\n3;4,5;z"), Kind::Csv { delimiter: b';', header: false });
        assert_eq!(csv("a\tb\n1\t2"), Kind::Csv { delimiter: b'\t', header: true });
        assert_eq!(csv("\"x,1\",2\n\"y,3\",4"), Kind::Csv { delimiter: b',', header: false });
        // All text: a header row's values do not recur below it.
        assert_eq!(csv("colour,size\nred,big\nblue,small"), Kind::Csv { delimiter: b',', header: true });
        assert_eq!(csv("red,big\nblue,small\nred,small"), Kind::Csv { delimiter: b',', header: false });
    }

    #[test]
    fn gzip_and_parquet_are_recognised() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("distill-init-sniff-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let gz = dir.join("x.csv.gz");
        let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::default());
        enc.write_all(b"1;2;a\n3;4;b\n").unwrap();
        enc.finish().unwrap();
        assert_eq!(sniff(&gz).unwrap(), Sniffed { kind: Kind::Csv { delimiter: b';', header: false }, gzip: true });
        let pq = dir.join("x.bin");
        std::fs::write(&pq, b"PAR1....").unwrap();
        assert_eq!(sniff(&pq).unwrap().kind, Kind::Parquet);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
