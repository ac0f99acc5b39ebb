//! Logging: `tracing` to stderr (filtered by RUST_LOG, default `info`) and, once a run has a
//! directory, to its `run.log` as well.

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The current run's log file, if any. Cloned into the subscriber.
#[derive(Clone, Default)]
pub struct RunLog(Arc<Mutex<Option<File>>>);

impl RunLog {
    pub fn open(&self, path: &Path) {
        match File::create(path) {
            Ok(f) => *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(f),
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot create the run log"),
        }
    }

    pub fn close(&self) {
        if let Some(mut f) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = f.flush();
        }
    }
}

impl Write for RunLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(f) => f.write(buf),
            None => Ok(buf.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.0.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl<'a> MakeWriter<'a> for RunLog {
    type Writer = RunLog;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

pub fn init() -> RunLog {
    let log = RunLog::default();
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr = tracing_subscriber::fmt::layer().with_writer(io::stderr).with_ansi(io::stderr().is_terminal()).with_target(false).with_filter(filter());
    let file = tracing_subscriber::fmt::layer().with_writer(log.clone()).with_ansi(false).with_target(false).with_filter(filter());
    let _ = tracing_subscriber::registry().with(stderr).with(file).try_init();
    log
}
