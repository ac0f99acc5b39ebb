//! Helpers shared by the end-to-end tests (`mod common;` in a test file).
//!
//! [`python`]: the interoperability tests read distill's files with Python's pyarrow and
//! safetensors. So that `cargo test --release --workspace` passes on a machine with only Rust and
//! python3, they provision those packages themselves: a virtual environment under the target
//! directory, created once (under a file lock, as test binaries and their threads run at once)
//! and reused by every later run.

#![allow(dead_code)] // each test binary uses some of these

pub mod generated;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The distill binary of this build on `args` in `cwd`, with the environment variables distill
/// reads cleared (a developer's shell may set them; a test that needs one sets it itself).
pub fn distill_command(args: &[&str], cwd: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_distill"));
    c.args(args).current_dir(cwd);
    for var in [
        "RUST_LOG",
        "DISTILL_CACHE_DIR",
        "DISTILL_MEMORY_LIMIT",
        "DISTILL_TEST_PAUSE_BEFORE_RENAME",
        "SLURM_ARRAY_TASK_ID",
        "SLURM_ARRAY_TASK_COUNT",
        "JOB_COMPLETION_INDEX",
    ] {
        c.env_remove(var);
    }
    c
}

/// [`distill_command`] run to completion.
pub fn distill_in(args: &[&str], cwd: &Path) -> Output {
    distill_command(args, cwd).output().expect("the distill binary runs")
}

/// The Python packages the interoperability tests import.
pub const PYTHON_PACKAGES: [&str; 3] = ["pyarrow", "safetensors", "numpy"];

/// The cargo target directory of this build: `CARGO_TARGET_DIR`, else the folder above the
/// profile folder holding the distill binary (`<target>/release/distill`).
pub fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_distill"));
    bin.parent().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")))
}

/// A python interpreter that imports [`PYTHON_PACKAGES`]: `$DISTILL_TEST_PYTHON` when set (used
/// as it is), else the virtual environment `<target>/py-venv`, made on first use from `python3`
/// (or `$PYTHON3`). Panics, saying what to install, when that cannot be done.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| match std::env::var_os("DISTILL_TEST_PYTHON") {
            Some(p) => PathBuf::from(p),
            None => provision(&target_dir().join("py-venv"), &PYTHON_PACKAGES).unwrap_or_else(|e| panic!("cannot provision Python for the tests: {e}")),
        })
        .clone()
}

/// Makes (or reuses) a virtual environment at `venv` with `packages` installed; returns its
/// python. A marker written last (atomically) says the environment is complete, so an
/// interrupted setup is redone rather than trusted.
pub fn provision(venv: &Path, packages: &[&str]) -> Result<PathBuf, String> {
    let parent = venv.parent().ok_or("the environment needs a parent folder")?;
    std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    let lock_path = venv.with_extension("lock");
    let lock = OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    lock.lock().map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    let python = venv.join(if cfg!(windows) { "Scripts/python.exe" } else { "bin/python" });
    let marker = venv.join(".distill-packages");
    let wanted = packages.join("\n");
    if std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted) {
        return Ok(python);
    }
    if venv.exists() {
        std::fs::remove_dir_all(venv).map_err(|e| format!("removing the incomplete {}: {e}", venv.display()))?;
    }
    let base = std::env::var_os("PYTHON3").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("python3"));
    eprintln!("setting up {} with {} (once; later runs reuse it)", venv.display(), packages.join(", "));
    create_venv(&base, venv)?;
    install(&base, &python, packages)?;
    let tmp = venv.join(".distill-packages.tmp");
    std::fs::write(&tmp, &wanted).and_then(|()| std::fs::rename(&tmp, &marker)).map_err(|e| format!("{}: {e}", marker.display()))?;
    Ok(python)
}

/// `python3 -m venv`, or without pip where the system lacks `ensurepip` (Debian's python3
/// without python3-venv); `install` then uses the system's pip.
fn create_venv(base: &Path, venv: &Path) -> Result<(), String> {
    if run(Command::new(base).args(["-m", "venv"]).arg(venv)).is_ok() {
        return Ok(());
    }
    let _ = std::fs::remove_dir_all(venv);
    run(Command::new(base).args(["-m", "venv", "--without-pip"]).arg(venv))
        .map_err(|e| format!("{} -m venv failed ({e}); install python3 with its venv module", base.display()))
}

fn install(base: &Path, python: &Path, packages: &[&str]) -> Result<(), String> {
    let quiet = ["install", "--quiet", "--disable-pip-version-check"];
    if run(Command::new(python).args(["-m", "pip", "--version"])).is_ok() {
        return run(Command::new(python).args(["-m", "pip"]).args(quiet).args(packages));
    }
    // A venv without pip: the system pip installs into it (pip >= 22.3 has --python).
    run(Command::new(base).args(["-m", "pip", "--python"]).arg(python).args(quiet).args(packages))
        .map_err(|e| format!("no pip to install {} ({e}); install python3-pip or python3-venv", packages.join(", ")))
}

fn run(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let o = command.output().map_err(|e| format!("{shown}: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!("{shown}: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
    }
}
