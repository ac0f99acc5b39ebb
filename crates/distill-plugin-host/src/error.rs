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
