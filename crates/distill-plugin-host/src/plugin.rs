//! Loading a plugin library, reading its descriptor, and calling its functions.

use std::collections::HashSet;
use std::ffi::CStr;
use std::fmt;
use std::os::raw::c_char;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use distill_plugin::abi::{
    ArchEntry, ArchFn, EntryFn, LossEntry, LossFn, PluginDescriptor, ABI_VERSION, ENTRY_SYMBOL, STATUS_BUFFER_TOO_SMALL, STATUS_ERROR, STATUS_OK, STATUS_PANIC,
};
use distill_plugin::{layers_from_json, validate_layers, Layer};
use libloading::Library;
use serde_json::Value;

use crate::error::{PluginError, PluginId};
use crate::file::{checked_copy, PrivateCopy};

/// Bytes offered for a plugin's error message; longer messages are truncated by the plugin.
const ERROR_BUFFER: usize = 4096;
/// First buffer offered for an architecture's JSON; the plugin asks for more if needed.
const ARCH_BUFFER: usize = 16 * 1024;
/// Upper bound on an architecture's JSON, so a broken plugin cannot make the host allocate
/// without limit.
const ARCH_BUFFER_MAX: usize = 16 * 1024 * 1024;

/// A loaded library and what its descriptor declared, copied into host memory.
struct Loaded {
    id: PluginId,
    /// Canonical path, to recognise the same library loaded twice.
    canonical: PathBuf,
    version: String,
    losses: Vec<(String, LossFn)>,
    architectures: Vec<(String, ArchFn)>,
    /// Keeps the code behind the function pointers above mapped. Every handle that can call a
    /// plugin function holds an `Arc<Loaded>`, so the library is unloaded only after the last
    /// such handle is gone.
    _library: Library,
    /// The private copy the loader mapped, alive as long as the library: the loader knows a
    /// loaded library by its path and inode, so a copy freed early would let the next library's
    /// copy reuse them (`/proc/self/fd/N`) and be mistaken for this one. Dropped after `_library`.
    _copy: PrivateCopy,
}

/// A loaded, checked plugin library. Cheap to clone (shared); the library stays loaded while
/// any clone, [`PluginLoss`] or [`PluginArch`] from it is alive.
#[derive(Clone)]
pub struct Plugin {
    inner: Arc<Loaded>,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name())
            .field("version", &self.version())
            .field("path", &self.path())
            .field("losses", &self.loss_names())
            .field("architectures", &self.architecture_names())
            .finish()
    }
}

/// Reads a NUL-terminated UTF-8 string from the descriptor.
///
/// # Safety
/// `ptr` must be null or point to a NUL-terminated string that outlives the call.
unsafe fn read_name(ptr: *const c_char, what: &str) -> Result<String, String> {
    if ptr.is_null() {
        return Err(format!("{what} is a null pointer"));
    }
    // SAFETY: guaranteed by the caller (the ABI's descriptor contract).
    let s = unsafe { CStr::from_ptr(ptr) }.to_str().map_err(|_| format!("{what} is not UTF-8"))?;
    if s.trim().is_empty() {
        return Err(format!("{what} is empty"));
    }
    Ok(s.to_string())
}

/// A descriptor table as a slice, allowing null only for an empty table.
///
/// # Safety
/// `ptr` must be null or point to `len` initialised entries that outlive the call.
unsafe fn read_table<'a, T>(ptr: *const T, len: usize, what: &str) -> Result<&'a [T], String> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(format!("{what} table has {len} entries but a null pointer"));
    }
    // SAFETY: guaranteed by the caller.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

impl Plugin {
    /// Loads the plugin library at `path` and checks it: the file exists, it exports
    /// `distill_plugin_entry`, its ABI version is [`ABI_VERSION`], its names are valid UTF-8 and
    /// no loss or architecture name is declared twice.
    ///
    /// Loading runs the library's initialisers: load only libraries you trust, as you would run
    /// only programs you trust. A recipe loads only the libraries it names by path.
    pub fn load(path: impl AsRef<Path>) -> Result<Plugin, PluginError> {
        let path = path.as_ref().to_path_buf();
        if std::fs::metadata(&path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
            return Err(PluginError::NotFound { path });
        }
        // The loader maps a checked private copy, never the file itself (see `file.rs`).
        let copy = checked_copy(&path).map_err(|source| PluginError::BadFile { path: path.clone(), source })?;
        // SAFETY: loading runs the library's initialisers; the caller chose to trust this
        // library by naming it (documented above).
        let library = unsafe { Library::new(copy.path()) }.map_err(|e| {
            // The loader names the copy; the user knows the library by its own path.
            let message = e.to_string().replace(&copy.path().display().to_string(), &path.display().to_string());
            PluginError::Open { path: path.clone(), message }
        })?;
        let symbol = format!("{ENTRY_SYMBOL}\0");
        // SAFETY: the symbol's type is fixed by the ABI; a library exporting that name with
        // another type is outside what we can check.
        let entry: EntryFn = unsafe { library.get::<EntryFn>(symbol.as_bytes()) }.map(|s| *s).map_err(|_| PluginError::NotAPlugin { path: path.clone() })?;

        let mut id = PluginId { name: None, path: path.clone() };
        let bad = |id: &PluginId, detail: String| PluginError::BadDescriptor { plugin: id.clone(), symbol: ENTRY_SYMBOL.to_string(), detail };
        // SAFETY: the entry symbol has the ABI's signature.
        let desc_ptr: *const PluginDescriptor = unsafe { entry() };
        if desc_ptr.is_null() {
            return Err(bad(&id, "the entry function returned a null descriptor".to_string()));
        }
        // Only `abi_version` has a fixed offset in every ABI version, so read it alone before
        // trusting the rest of the layout.
        // SAFETY: non-null, and every ABI version starts the descriptor with a u32.
        let found = unsafe { std::ptr::addr_of!((*desc_ptr).abi_version).read() };
        if found != ABI_VERSION {
            return Err(PluginError::AbiMismatch { path, found, expected: ABI_VERSION });
        }
        // SAFETY: the version matches, so the layout is ours and the data is static in the
        // library, which `library` keeps loaded.
        let desc = unsafe { &*desc_ptr };
        let name = unsafe { read_name(desc.name, "plugin name") }.map_err(|e| bad(&id, e))?;
        id.name = Some(name);
        let version = unsafe { read_name(desc.version, "plugin version") }.map_err(|e| bad(&id, e))?;

        let loss_table: &[LossEntry] = unsafe { read_table(desc.losses, desc.n_losses, "loss") }.map_err(|e| bad(&id, e))?;
        let arch_table: &[ArchEntry] = unsafe { read_table(desc.architectures, desc.n_architectures, "architecture") }.map_err(|e| bad(&id, e))?;
        let mut losses = Vec::with_capacity(loss_table.len());
        for (i, entry) in loss_table.iter().enumerate() {
            let name = unsafe { read_name(entry.name, &format!("loss {i} name")) }.map_err(|e| bad(&id, e))?;
            losses.push((name, entry.func));
        }
        let mut architectures = Vec::with_capacity(arch_table.len());
        for (i, entry) in arch_table.iter().enumerate() {
            let name = unsafe { read_name(entry.name, &format!("architecture {i} name")) }.map_err(|e| bad(&id, e))?;
            architectures.push((name, entry.func));
        }
        check_unique(&id, "loss", losses.iter().map(|(n, _)| n))?;
        check_unique(&id, "architecture", architectures.iter().map(|(n, _)| n))?;

        let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
        Ok(Plugin { inner: Arc::new(Loaded { id, canonical, version, losses, architectures, _library: library, _copy: copy }) })
    }

    /// The plugin's declared name.
    pub fn name(&self) -> &str {
        self.inner.id.name.as_deref().unwrap_or_default()
    }

    /// The plugin's declared version.
    pub fn version(&self) -> &str {
        &self.inner.version
    }

    /// The library path it was loaded from.
    pub fn path(&self) -> &Path {
        &self.inner.id.path
    }

    /// Name and path, as used in error messages.
    pub fn id(&self) -> &PluginId {
        &self.inner.id
    }

    /// Names of the losses, in declaration order.
    pub fn loss_names(&self) -> Vec<&str> {
        self.inner.losses.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Names of the architectures, in declaration order.
    pub fn architecture_names(&self) -> Vec<&str> {
        self.inner.architectures.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// The loss called `name`, if this plugin declares it.
    pub fn loss(&self, name: &str) -> Option<PluginLoss> {
        let (name, func) = self.inner.losses.iter().find(|(n, _)| n == name)?;
        Some(PluginLoss { plugin: self.inner.clone(), name: name.clone(), func: *func })
    }

    /// The architecture called `name`, if this plugin declares it.
    pub fn architecture(&self, name: &str) -> Option<PluginArch> {
        let (name, func) = self.inner.architectures.iter().find(|(n, _)| n == name)?;
        Some(PluginArch { plugin: self.inner.clone(), name: name.clone(), func: *func })
    }

    /// What the plugin declares, for display.
    pub fn info(&self) -> PluginInfo {
        PluginInfo {
            path: self.path().to_path_buf(),
            abi_version: ABI_VERSION,
            name: self.name().to_string(),
            version: self.version().to_string(),
            losses: self.loss_names().into_iter().map(String::from).collect(),
            architectures: self.architecture_names().into_iter().map(String::from).collect(),
        }
    }
}

fn check_unique<'a>(id: &PluginId, kind: &'static str, names: impl Iterator<Item = &'a String>) -> Result<(), PluginError> {
    let mut seen = HashSet::new();
    for name in names {
        if !seen.insert(name) {
            return Err(PluginError::DuplicateName { plugin: id.clone(), kind, name: name.clone(), other: None });
        }
    }
    Ok(())
}

/// Loads the library at `path`, checks it like [`Plugin::load`], and lists what it declares
/// (for `distill plugins inspect LIB`).
pub fn inspect(path: impl AsRef<Path>) -> Result<PluginInfo, PluginError> {
    Plugin::load(path).map(|p| p.info())
}

/// What a plugin library declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// Library path.
    pub path: PathBuf,
    /// Plugin ABI version (always [`ABI_VERSION`] for a library that loaded).
    pub abi_version: u32,
    /// Declared plugin name.
    pub name: String,
    /// Declared plugin version.
    pub version: String,
    /// Loss names, in declaration order.
    pub losses: Vec<String>,
    /// Architecture names, in declaration order.
    pub architectures: Vec<String>,
}

impl fmt::Display for PluginInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |names: &[String]| if names.is_empty() { "(none)".to_string() } else { names.join(", ") };
        writeln!(f, "plugin:        {} {}", self.name, self.version)?;
        writeln!(f, "library:       {}", self.path.display())?;
        writeln!(f, "ABI version:   {}", self.abi_version)?;
        writeln!(f, "losses:        {}", list(&self.losses))?;
        write!(f, "architectures: {}", list(&self.architectures))
    }
}

/// Decodes the status of a plugin call into an error, if it is one.
fn check_status(plugin: &PluginId, symbol: &str, status: i32, err: &[u8], err_len: usize) -> Result<(), PluginError> {
    let message = || String::from_utf8_lossy(&err[..err_len.min(err.len())]).into_owned();
    let (plugin, symbol) = (plugin.clone(), symbol.to_string());
    match status {
        STATUS_OK => Ok(()),
        STATUS_ERROR => Err(PluginError::Failed { plugin, symbol, message: message() }),
        STATUS_PANIC => Err(PluginError::Panicked { plugin, symbol, message: message() }),
        other => Err(PluginError::BadOutput { plugin, symbol, message: format!("unknown status code {other}") }),
    }
}

fn params_json(params: &Value) -> String {
    // A recipe without parameters passes null; plugins always see an object.
    if params.is_null() {
        "{}".to_string()
    } else {
        params.to_string()
    }
}

/// A loss from a loaded plugin. Cheap to clone; keeps the library loaded. `Send + Sync`: the
/// ABI requires plugin functions to be callable from several threads.
#[derive(Clone)]
pub struct PluginLoss {
    plugin: Arc<Loaded>,
    name: String,
    func: LossFn,
}

impl fmt::Debug for PluginLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PluginLoss({} from {})", self.name, self.plugin.id)
    }
}

impl PluginLoss {
    /// The loss name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin providing it.
    pub fn plugin(&self) -> &PluginId {
        &self.plugin.id
    }

    fn symbol(&self) -> String {
        format!("loss `{}`", self.name)
    }

    /// Mean loss over the batch and its gradient with respect to the student logits.
    ///
    /// `student` and `teacher` are row-major `n × k` with `n = labels.len()`; `params` is the
    /// loss's parameter object from the recipe (`Value::Null` for none). Errors, each naming the
    /// plugin and the loss: buffer lengths or labels that do not fit `k` (checked before the
    /// call), an error or panic inside the plugin, and a loss value or gradient entry that is
    /// NaN or infinite.
    pub fn value_and_grad(&self, student: &[f32], teacher: Option<&[f32]>, labels: &[u32], k: usize, params: &Value) -> Result<(f64, Vec<f32>), PluginError> {
        let n = labels.len();
        let bad_input = |message: String| PluginError::BadInput { plugin: self.plugin.id.clone(), symbol: self.symbol(), message };
        let len = n.checked_mul(k).ok_or_else(|| bad_input(format!("batch shape {n} × {k} overflows")))?;
        if k == 0 && n > 0 {
            return Err(bad_input("class count k is 0".to_string()));
        }
        if student.len() != len {
            return Err(bad_input(format!("student logits have {} values, expected {n} × {k} = {len}", student.len())));
        }
        if let Some(t) = teacher {
            if t.len() != len {
                return Err(bad_input(format!("teacher logits have {} values, expected {n} × {k} = {len}", t.len())));
            }
        }
        if let Some((row, y)) = labels.iter().enumerate().find(|(_, &y)| y as usize >= k) {
            return Err(bad_input(format!("label {y} in row {row} is out of range for {k} classes")));
        }
        let params = params_json(params);
        // NaN-filled, so a plugin that reports success without writing shows up as non-finite.
        let mut grad = vec![f32::NAN; len];
        let mut loss = f64::NAN;
        let mut err = vec![0u8; ERROR_BUFFER];
        let mut err_len = 0usize;
        // SAFETY: every buffer has the size the LossFn contract requires, and `self.plugin`
        // keeps the library loaded for the duration of the call.
        let status = unsafe {
            (self.func)(
                student.as_ptr(),
                teacher.map_or(std::ptr::null(), <[f32]>::as_ptr),
                labels.as_ptr(),
                n,
                k,
                params.as_ptr(),
                params.len(),
                &mut loss,
                grad.as_mut_ptr(),
                err.as_mut_ptr(),
                err.len(),
                &mut err_len,
            )
        };
        check_status(&self.plugin.id, &self.symbol(), status, &err, err_len)?;
        let non_finite = |what: String, value: f64| PluginError::NonFinite { plugin: self.plugin.id.clone(), symbol: self.symbol(), what, value };
        if !loss.is_finite() {
            return Err(non_finite("loss value".to_string(), loss));
        }
        if let Some((i, g)) = grad.iter().enumerate().find(|(_, g)| !g.is_finite()) {
            return Err(non_finite(format!("gradient at row {}, class {}", i / k, i % k), *g as f64));
        }
        Ok((loss, grad))
    }
}

/// An architecture from a loaded plugin. Cheap to clone; keeps the library loaded.
#[derive(Clone)]
pub struct PluginArch {
    plugin: Arc<Loaded>,
    name: String,
    func: ArchFn,
}

impl fmt::Debug for PluginArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PluginArch({} from {})", self.name, self.plugin.id)
    }
}

impl PluginArch {
    /// The architecture name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The plugin providing it.
    pub fn plugin(&self) -> &PluginId {
        &self.plugin.id
    }

    fn symbol(&self) -> String {
        format!("architecture `{}`", self.name)
    }

    /// The network for `inputs` features and `classes` classes, as layers in the host's
    /// vocabulary, already checked with [`validate_layers`] (widths fit, ends with `classes`
    /// outputs). `params` is the architecture's parameter object (`Value::Null` for none).
    pub fn describe(&self, inputs: usize, classes: usize, params: &Value) -> Result<Vec<Layer>, PluginError> {
        let params = params_json(params);
        let bad_output = |message: String| PluginError::BadOutput { plugin: self.plugin.id.clone(), symbol: self.symbol(), message };
        let mut cap = ARCH_BUFFER;
        // Two tries: the plugin reports the size it needs after the first.
        for _ in 0..2 {
            let mut out = vec![0u8; cap];
            let mut out_len = 0usize;
            let mut err = vec![0u8; ERROR_BUFFER];
            let mut err_len = 0usize;
            // SAFETY: buffer sizes as the ArchFn contract requires; `self.plugin` keeps the
            // library loaded.
            let status = unsafe {
                (self.func)(
                    inputs,
                    classes,
                    params.as_ptr(),
                    params.len(),
                    out.as_mut_ptr(),
                    out.len(),
                    &mut out_len,
                    err.as_mut_ptr(),
                    err.len(),
                    &mut err_len,
                )
            };
            if status == STATUS_BUFFER_TOO_SMALL {
                if out_len <= cap || out_len > ARCH_BUFFER_MAX {
                    return Err(bad_output(format!("asked for a {out_len}-byte buffer after being offered {cap}")));
                }
                cap = out_len;
                continue;
            }
            check_status(&self.plugin.id, &self.symbol(), status, &err, err_len)?;
            if out_len > out.len() {
                return Err(bad_output(format!("claims {out_len} bytes written into a {cap}-byte buffer")));
            }
            let text = std::str::from_utf8(&out[..out_len]).map_err(|_| bad_output("the JSON is not UTF-8".to_string()))?;
            let layers = layers_from_json(text).map_err(bad_output)?;
            validate_layers(inputs, classes, &layers).map_err(bad_output)?;
            return Ok(layers);
        }
        Err(bad_output("still asks for a larger buffer after being given the size it asked for".to_string()))
    }
}

/// Several loaded plugins, looked up by loss or architecture name. Names are unique across the
/// registry; loading the same library twice is a no-op.
#[derive(Clone, Debug, Default)]
pub struct PluginRegistry {
    plugins: Vec<Plugin>,
}

impl PluginRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads the library at `path` (see [`Plugin::load`]) and adds it (see [`add`](Self::add)).
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<Plugin, PluginError> {
        let plugin = Plugin::load(path)?;
        self.add(plugin.clone())?;
        Ok(plugin)
    }

    /// Adds a loaded plugin. A loss or architecture name that another plugin in the registry
    /// already declares is an error naming both plugins; the same library (same canonical
    /// path) added again is ignored.
    pub fn add(&mut self, plugin: Plugin) -> Result<(), PluginError> {
        if self.plugins.iter().any(|p| p.inner.canonical == plugin.inner.canonical) {
            return Ok(());
        }
        for existing in &self.plugins {
            let clash = |kind: &'static str, name: &str| PluginError::DuplicateName {
                plugin: plugin.id().clone(),
                kind,
                name: name.to_string(),
                other: Some(Box::new(existing.id().clone())),
            };
            if let Some(name) = plugin.loss_names().into_iter().find(|n| existing.loss(n).is_some()) {
                return Err(clash("loss", name));
            }
            if let Some(name) = plugin.architecture_names().into_iter().find(|n| existing.architecture(n).is_some()) {
                return Err(clash("architecture", name));
            }
        }
        self.plugins.push(plugin);
        Ok(())
    }

    /// The loaded plugins, in the order they were added.
    pub fn plugins(&self) -> &[Plugin] {
        &self.plugins
    }

    /// The loss called `name`, from whichever plugin declares it.
    pub fn loss(&self, name: &str) -> Option<PluginLoss> {
        self.plugins.iter().find_map(|p| p.loss(name))
    }

    /// The architecture called `name`, from whichever plugin declares it.
    pub fn architecture(&self, name: &str) -> Option<PluginArch> {
        self.plugins.iter().find_map(|p| p.architecture(name))
    }

    /// Like [`loss`](Self::loss), but an unknown name is an error listing the available losses.
    pub fn require_loss(&self, name: &str) -> Result<PluginLoss, PluginError> {
        self.loss(name).ok_or_else(|| PluginError::Unknown { kind: "loss", name: name.to_string(), available: self.loss_names() })
    }

    /// Like [`architecture`](Self::architecture), but an unknown name is an error listing the
    /// available architectures.
    pub fn require_architecture(&self, name: &str) -> Result<PluginArch, PluginError> {
        self.architecture(name).ok_or_else(|| PluginError::Unknown { kind: "architecture", name: name.to_string(), available: self.architecture_names() })
    }

    /// All loss names, sorted.
    pub fn loss_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.plugins.iter().flat_map(|p| p.loss_names()).map(String::from).collect();
        names.sort();
        names
    }

    /// All architecture names, sorted.
    pub fn architecture_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.plugins.iter().flat_map(|p| p.architecture_names()).map(String::from).collect();
        names.sort();
        names
    }
}
