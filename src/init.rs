//! `distill init DATAFILE`: write a starting recipe for a data file (see `distill-init`).

use std::path::Path;

/// Writes the recipe to `out` (never over an existing file unless `force`) and says what it guessed.
pub fn command(data: &Path, label: Option<&str>, out: &Path, force: bool) -> Result<u8, String> {
    if out.exists() && !force {
        return Err(format!("{} exists; pass --force to overwrite it, or --out another file", out.display()));
    }
    let written = distill_init::recipe(&distill_init::Request { data, label, out })?;
    distill_cache::write_atomic(out, written.text.as_bytes()).map_err(|e| format!("{}: {e}", out.display()))?;
    for note in &written.notes {
        eprintln!("note: {note}");
    }
    println!("wrote {}; next: distill check {0} && distill run {0}", out.display());
    Ok(0)
}
