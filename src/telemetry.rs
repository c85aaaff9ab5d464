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

/// Build the root logger. The async drain keeps logging off the data path's threads.
pub fn logger(settings: &LogSettings) -> Logger {
    let level = level_of(&settings.level);
    let drain = match settings.format {
        LogFormat::Term => {
            let decorator = slog_term::TermDecorator::new().stderr().build();
            let d = slog_term::FullFormat::new(decorator).build().fuse();
            slog_async::Async::new(d).chan_size(4096).build().fuse().filter_level(level).fuse().map(slog::Fuse)
        }
        LogFormat::Json => {
            let d = slog_json::Json::new(std::io::stderr()).add_default_keys().build().fuse();
            slog_async::Async::new(d).chan_size(4096).build().fuse().filter_level(level).fuse().map(slog::Fuse)
        }
    };
    Logger::root(drain, o!("service" => "tributary"))
}

/// A logger that drops everything (tests that do not care).
pub fn discard() -> Logger {
    Logger::root(slog::Discard, o!())
}
