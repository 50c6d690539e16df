//! What the library logged, for tests that check a warning is given (or not given too often):
//! a logger that keeps every record in memory, installed once per test binary.

use std::sync::{Mutex, OnceLock};

/// One log record: its level and message.
#[derive(Debug, Clone)]
pub struct Logged {
    pub level: log::Level,
    pub message: String,
}

struct Capture(Mutex<Vec<Logged>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        let entry = Logged {
            level: record.level(),
            message: record.args().to_string(),
        };
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(entry);
    }

    fn flush(&self) {}
}

static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();

/// Starts keeping log records (every level) for the rest of the test binary's run; tests
/// running at the same time log into the same list, so filter what [`logged`] returns by
/// something only your test's records contain.
pub fn capture_logs() {
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        log::set_logger(capture).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Trace);
        capture
    });
}

/// The records at `level` whose message contains `needle`, oldest first.
pub fn logged(level: log::Level, needle: &str) -> Vec<String> {
    let capture = CAPTURE.get().expect("capture_logs() first");
    let records = capture.0.lock().unwrap_or_else(|e| e.into_inner());
    records
        .iter()
        .filter(|r| r.level == level && r.message.contains(needle))
        .map(|r| r.message.clone())
        .collect()
}
