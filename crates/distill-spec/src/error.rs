//! Errors that point at a place in a pipeline file.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a pipeline file: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecError {
    pub file: PathBuf,
    /// 1-based line and column, when known.
    pub position: Option<(usize, usize)>,
    /// Dotted key path such as `student.loss.temperature`; empty for the whole document.
    pub key: String,
    pub message: String,
}

impl SpecError {
    pub fn new(file: &Path, position: Option<(usize, usize)>, key: &str, message: impl Into<String>) -> Self {
        Self { file: file.to_path_buf(), position, key: key.to_string(), message: message.into() }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in a pipeline file (validation reports them all, not just the first).
#[derive(Debug, Clone, PartialEq)]
pub struct SpecErrors(pub Vec<SpecError>);

impl SpecErrors {
    pub fn single(e: SpecError) -> Self {
        Self(vec![e])
    }
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}
