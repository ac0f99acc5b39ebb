//! Errors from loading and calling plugins. Each one names the library path, the plugin name
//! when known, and the symbol involved, so a user can tell which plugin to fix.

use std::fmt;
use std::path::PathBuf;

/// Which plugin an error is about: its library path and, once read, its declared name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginId {
    /// The plugin's declared name; `None` before the descriptor could be read.
    pub name: Option<String>,
    /// The library path as given to [`Plugin::load`](crate::Plugin::load).
    pub path: PathBuf,
}

impl fmt::Display for PluginId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "plugin `{name}` ({})", self.path.display()),
            None => write!(f, "plugin library {}", self.path.display()),
        }
    }
}

/// Everything that can go wrong with a plugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The library file does not exist.
    #[error("plugin library {} does not exist", .path.display())]
    NotFound {
        /// The path that was tried.
        path: PathBuf,
    },

    /// The file cannot be a loadable library (checked before the dynamic loader sees it).
    #[error("plugin library {}: {source}", .path.display())]
    BadFile {
        /// The library path.
        path: PathBuf,
        /// What is wrong with the file.
        #[source]
        source: FileProblem,
    },

    /// The dynamic loader refused the file (not a shared library, wrong architecture, missing
    /// dependency).
    #[error("cannot load plugin library {}: {message}", .path.display())]
    Open {
        /// The library path.
        path: PathBuf,
        /// The loader's message.
        message: String,
    },

    /// The library loads but does not export the entry symbol.
    #[error("{} is not a distill plugin (no `distill_plugin_entry`)", .path.display())]
    NotAPlugin {
        /// The library path.
        path: PathBuf,
    },

    /// The plugin was built against another version of the plugin ABI.
    #[error(
        "{} was built for distill plugin ABI version {found}, but this distill supports version \
         {expected} (symbol `distill_plugin_entry`); rebuild the plugin against the matching distill-plugin crate",
        .path.display()
    )]
    AbiMismatch {
        /// The library path.
        path: PathBuf,
        /// The version the plugin declares.
        found: u32,
        /// [`ABI_VERSION`](distill_plugin::ABI_VERSION).
        expected: u32,
    },

    /// The descriptor behind the entry symbol is malformed (null pointers, names that are not
    /// UTF-8 or empty).
    #[error("{plugin}: malformed descriptor from `{symbol}`: {detail}")]
    BadDescriptor {
        /// The plugin.
        plugin: PluginId,
        /// The symbol involved.
        symbol: String,
        /// What is wrong.
        detail: String,
    },

    /// A loss or architecture name occurs twice (in one plugin, or in two plugins of a registry).
    #[error("{plugin}: {kind} `{name}` is declared more than once{}", .other.as_ref().map(|o| format!(" (also in {o})")).unwrap_or_default())]
    DuplicateName {
        /// The plugin whose declaration clashes.
        plugin: PluginId,
        /// `loss` or `architecture`.
        kind: &'static str,
        /// The clashing name.
        name: String,
        /// The other plugin declaring it, when it is another plugin (boxed to keep errors small).
        other: Option<Box<PluginId>>,
    },

    /// A recipe asks for a loss or architecture no loaded plugin provides.
    #[error("no plugin provides {kind} `{name}`; available: {}", if .available.is_empty() { "none".to_string() } else { .available.join(", ") })]
    Unknown {
        /// `loss` or `architecture`.
        kind: &'static str,
        /// The name asked for.
        name: String,
        /// The names that are available, sorted.
        available: Vec<String>,
    },

    /// The host's arguments do not fit the call (wrong buffer lengths, labels out of range);
    /// detected before calling the plugin.
    #[error("{plugin}, {symbol}: {message}")]
    BadInput {
        /// The plugin.
        plugin: PluginId,
        /// The symbol, e.g. ``loss `cosine_kd` ``.
        symbol: String,
        /// What is wrong.
        message: String,
    },

    /// The plugin function returned an error.
    #[error("{plugin}, {symbol} failed: {message}")]
    Failed {
        /// The plugin.
        plugin: PluginId,
        /// The symbol.
        symbol: String,
        /// The plugin's message.
        message: String,
    },

    /// The plugin function panicked; the panic was caught inside the plugin.
    #[error("{plugin}, {symbol} {message}")]
    Panicked {
        /// The plugin.
        plugin: PluginId,
        /// The symbol.
        symbol: String,
        /// The panic message (starts with "panicked").
        message: String,
    },

    /// The plugin returned a NaN or infinite number.
    #[error("{plugin}, {symbol} returned a non-finite {what}: {value}")]
    NonFinite {
        /// The plugin.
        plugin: PluginId,
        /// The symbol.
        symbol: String,
        /// Which number, e.g. `loss value` or `gradient at row 3, class 1`.
        what: String,
        /// The offending value.
        value: f64,
    },

    /// The plugin returned something that breaks the contract (unknown status, invalid layer
    /// JSON, a network that does not fit the data).
    #[error("{plugin}, {symbol} returned an invalid result: {message}")]
    BadOutput {
        /// The plugin.
        plugin: PluginId,
        /// The symbol.
        symbol: String,
        /// What is wrong.
        message: String,
    },
}

/// What is wrong with a plugin library file, found before it is loaded.
#[derive(Debug, thiserror::Error)]
pub enum FileProblem {
    /// The path exists but is a directory, FIFO, socket or device.
    #[error("is {0}, not a library file")]
    NotRegular(&'static str),
    /// It cannot be read (including a symbolic link loop).
    #[error("cannot read it: {0}")]
    Read(#[source] std::io::Error),
    /// It is empty.
    #[error("the file is empty")]
    Empty,
    /// It does not start with the ELF magic bytes.
    #[error("not an ELF shared library (no ELF header)")]
    NotElf,
    /// An ELF file of the other word size.
    #[error("a {bits}-bit ELF file; this distill is {}-bit", usize::BITS)]
    WrongClass {
        /// 32 or 64.
        bits: u32,
    },
    /// An ELF file of the other byte order.
    #[error("an ELF file of the other byte order than this machine's")]
    WrongByteOrder,
    /// An ELF file that is not a shared object (an executable, an object file).
    #[error("an ELF file of type {e_type}, not a shared library (type 3); build the plugin with crate-type = [\"cdylib\"]")]
    NotShared {
        /// `e_type` from the header.
        e_type: u16,
    },
    /// A part the loader maps ends past the end of the file: a truncated or corrupt copy.
    #[error("truncated or corrupt: {what} ends at byte {end} but the file has {len} bytes")]
    Truncated {
        /// Which part, e.g. `segment 2`.
        what: String,
        /// Where it ends.
        end: u64,
        /// The file's size.
        len: u64,
    },
    /// A header field that no loader accepts.
    #[error("malformed ELF header: {0}")]
    Malformed(String),
    /// The private copy that is loaded cannot be written.
    #[error("cannot make a private copy to load: {0}")]
    Copy(#[source] std::io::Error),
}
