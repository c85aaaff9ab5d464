//! Logging: slog to stderr, human-readable (`slog-term`) or JSON lines (`log.format = json`).

use slog::{o, Drain, Level, Logger};

use crate::config::{LogFormat, LogSettings};

fn level_of(name: &str) -> Level {
    match name.to_ascii_lowercase().as_str() {
        "trace" => Level::Trace,
        "debug" => Level::Debug,
        "warn" | "warning" => Level::Warning,
        "error" => Level::Error,
        "critical" => Level::Critical,
        _ => Level::Info,
    }
}

/// A writer that replaces stderr (the demo routes log lines through its progress bar).
pub type Output = Box<dyn std::io::Write + Send>;

/// The formatting drain for the configured format, to stderr or to `output`.
fn format_drain(format: LogFormat, output: Option<Output>) -> Box<dyn Drain<Ok = (), Err = slog::Never> + Send> {
    match (format, output) {
        (LogFormat::Term, None) => {
            let decorator = slog_term::TermDecorator::new().stderr().build();
            Box::new(slog_term::FullFormat::new(decorator).build().fuse())
        }
        (LogFormat::Term, Some(out)) => Box::new(slog_term::FullFormat::new(slog_term::PlainDecorator::new(out)).build().fuse()),
        (LogFormat::Json, None) => Box::new(slog_json::Json::new(std::io::stderr()).add_default_keys().build().fuse()),
        (LogFormat::Json, Some(out)) => Box::new(slog_json::Json::new(out).add_default_keys().build().fuse()),
    }
}

/// Build the root logger. The async drain keeps logging off the data path's threads; keep the
/// returned guard alive until exit: dropping it flushes what is still queued.
pub fn logger_with_guard(settings: &LogSettings) -> (Logger, slog_async::AsyncGuard) {
    logger_to(settings, None)
}

/// [`logger_with_guard`], writing to `output` instead of stderr.
pub fn logger_to(settings: &LogSettings, output: Option<Output>) -> (Logger, slog_async::AsyncGuard) {
    let (drain, guard) = slog_async::Async::new(format_drain(settings.format, output)).chan_size(4096).build_with_guard();
    let drain = drain.fuse().filter_level(level_of(&settings.level)).fuse();
    (Logger::root(drain, o!("service" => "tributary")), guard)
}

/// A logger that flushes when its last clone is dropped (tests, embedding).
pub fn logger(settings: &LogSettings) -> Logger {
    let drain = slog_async::Async::new(format_drain(settings.format, None)).chan_size(4096).build().fuse();
    Logger::root(drain.filter_level(level_of(&settings.level)).fuse(), o!("service" => "tributary"))
}

/// A logger that drops everything (tests that do not care).
pub fn discard() -> Logger {
    Logger::root(slog::Discard, o!())
}
