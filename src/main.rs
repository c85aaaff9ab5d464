//! The `tributary` binary: parse the command line, load the configuration, dispatch.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use secrecy::ExposeSecret;
use tributary::app::{self, Application};
use tributary::cli::{Cli, Command, Overrides};
use tributary::config::Settings;
use tributary::telemetry;
use tributary_actors::Database;

mod allocator;

fn load(cli: &Cli, o: &Overrides) -> Result<Settings, ExitCode> {
    Settings::load(cli.config.as_deref(), &o.to_map()).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

fn run(settings: Settings) -> ExitCode {
    let (log, _flush_on_exit) = telemetry::logger_with_guard(&settings.log);
    let system = actix::System::new();
    let mut stopped_while_starting = false;
    let result = system.block_on(async {
        let mut stop = Box::pin(app::shutdown_signal());
        // A signal while starting (waiting for the database, say) stops the start: nothing has
        // been read or written yet, so there is nothing to drain.
        let app = tokio::select! {
            app = Application::build(settings, log.clone()) => app?,
            () = &mut stop => {
                slog::info!(log, "stopped while starting");
                stopped_while_starting = true;
                return Ok(());
            }
        };
        app.run_until_stopped(stop).await
    });
    if stopped_while_starting {
        // A connection attempt may still be blocking a thread of the runtime's pool, and
        // dropping the runtime would wait for it: the process exit ends it instead.
        std::mem::forget(system);
    }
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            slog::crit!(log, "tributary failed"; "error" => e.to_string());
            // A projection its table cannot take is a configuration error, found at start.
            if matches!(e, app::AppError::Config(_)) {
                2
            } else {
                1
            }
        }
    };
    drop(log);
    drop(_flush_on_exit);
    leave(code)
}

/// End the process with `code` once the service has drained and its logs are flushed, without
/// running the C libraries' exit handlers: OpenSSL's cleanup would free what a pool's or
/// librdkafka's thread may still be using (glibc has aborted such an exit with a double free).
/// Nothing is left to save: every commit is durable, and no destructor of ours runs at exit.
fn leave(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: _exit takes any int and only ends the process.
    unsafe { libc::_exit(code) }
}

fn migrate(settings: Settings) -> ExitCode {
    let (log, _flush_on_exit) = telemetry::logger_with_guard(&settings.log);
    let result = actix::System::new().block_on(async {
        let db = Database::open(&app::database_options(&settings))?;
        let url = settings.database.url.expose_secret();
        let timeout = settings.database.connect_timeout;
        app::prepare_database(&db, url, timeout, true, Some(app::MIGRATE_PATIENCE), &log, None).await
    });
    match result {
        Ok(applied) => {
            println!("migrations applied: {}", if applied.is_empty() { "none (up to date)".to_string() } else { applied.join(", ") });
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn healthcheck(url: &str, timeout: u64) -> ExitCode {
    let result = actix::System::new().block_on(async {
        let client = awc::Client::builder().timeout(Duration::from_secs(timeout)).finish();
        client.get(url).send().await.map(|r| r.status())
    });
    match result {
        Ok(status) if status.is_success() => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("unhealthy: {url} answered {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    allocator::tune_c_malloc();
    // Before any thread can touch SQLite (its settings are not thread-safe to change).
    tributary_actors::configure_library();
    let cli = Cli::parse();
    match cli.command.as_ref().unwrap_or(&Command::Run(Overrides::default())) {
        Command::Run(o) => load(&cli, o).map_or_else(|c| c, run),
        Command::Migrate(o) => load(&cli, o).map_or_else(|c| c, migrate),
        Command::CheckConfig(o) => match load(&cli, o) {
            Ok(s) => {
                println!("{}", serde_json::to_string_pretty(&s.redacted()).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Err(c) => c,
        },
        Command::Healthcheck { url, timeout } => {
            let url = match url {
                Some(url) => url.clone(),
                None => match Settings::load_http(cli.config.as_deref()) {
                    Ok(http) => tributary::config::health_url(&http.bind),
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::from(2);
                    }
                },
            };
            healthcheck(&url, *timeout)
        }
        Command::Demo(args) => tributary::demo::main(args.clone(), cli.config.as_deref()),
    }
}
