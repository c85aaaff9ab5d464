//! The `tributary` binary: parse the command line, load the configuration, dispatch.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tributary::app::{self, Application};
use tributary::cli::{Cli, Command, Overrides};
use tributary::config::Settings;
use tributary::telemetry;
use tributary_actors::storage::Database;

/// mimalloc: less fragmentation across the worker threads than glibc's arenas (RSS), faster
/// small allocations, and the same allocator in the static musl build.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The static musl build's `memcpy`, `memmove` and `memcmp` (crate `tributary-memops`: musl's
/// cost the static binary ~21 % of its writer's and parsers' time). `extern crate`, because
/// nothing calls the crate by name: an unnamed dependency would not be linked at all.
#[cfg(all(target_env = "musl", target_arch = "x86_64"))]
extern crate tributary_memops;

fn load(cli: &Cli, o: &Overrides) -> Result<Settings, ExitCode> {
    Settings::load(cli.config.as_deref(), &o.to_map()).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(2)
    })
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not when it
/// is first awaited, so that a signal during the start is seen (see `run`) instead of killing
/// the process half-way.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, Signal, SignalKind};
    // A signal whose handler could not be installed never arrives.
    async fn arrives(signal: Option<Signal>) {
        match signal {
            Some(mut s) => drop(s.recv().await),
            None => futures::future::pending().await,
        }
    }
    let (term, int) = (signal(SignalKind::terminate()).ok(), signal(SignalKind::interrupt()).ok());
    async move {
        tokio::select! {
            () = arrives(term) => {}
            () = arrives(int) => {}
        }
    }
}

fn run(settings: Settings) -> ExitCode {
    let (log, _flush_on_exit) = telemetry::logger_with_guard(&settings.log);
    let system = actix::System::new();
    let mut stopped_while_starting = false;
    let result = system.block_on(async {
        let mut stop = Box::pin(shutdown_signal());
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
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            slog::crit!(log, "tributary failed"; "error" => e.to_string());
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn migrate(settings: Settings) -> ExitCode {
    let (log, _flush_on_exit) = telemetry::logger_with_guard(&settings.log);
    let result = actix::System::new().block_on(async {
        let db = Database::open(&app::database_options(&settings))?;
        app::migrate(&db, Duration::from_secs(30), &log).await
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

/// mimalloc 3 keeps freed pages for a second (its arena multiplier is 1, unlike mimalloc 2's 10)
/// and commits arenas eagerly: under a steady ingest that doubles the RSS. Purge after 40 ms
/// instead and commit on demand (measured with bench/: about half the RSS). Not at once: the
/// pages a batch frees after its commit are what the next records are written into, and purged
/// they come back as page faults in the poll thread. The delay trades memory for CPU along one
/// curve (bench/, SQLite phase, alternating runs; docs/benchmarks.md, sessions 8 and 11):
/// purging at once cost 11–17 % more CPU per event than 10 ms; 40 ms ran ~5 % faster than 10 ms
/// (six pairs) for 3–6 MiB more steady RSS (8–11 MiB in the static build, where C's allocations
/// are mimalloc's too: 52–56 against 44–45 MiB), 150 ms ~8 % faster for ~10 MiB more, past the
/// 64 MiB aim. The static build therefore purges after 20 ms: at 40 ms its PostgreSQL runs
/// reached 54–66 MiB steady (libpq's and librdkafka's buffers are mimalloc's there), at 20 ms
/// 53–58, for ~3–5 % more CPU per event (session 12). `MIMALLOC_PURGE_DELAY` in the environment
/// moves along that curve. This runs as an ELF constructor, before the first allocation creates
/// an arena (set later, the arena option no longer matters). The option numbers are mimalloc 3's;
/// each is set only if it still holds mimalloc 3's default, so a `MIMALLOC_*` environment
/// variable, or another mimalloc version, keeps its own value. Nothing here allocates.
#[cfg(feature = "mimalloc")]
#[used]
#[link_section = ".init_array"]
static TUNE_ALLOCATOR: extern "C" fn() = {
    extern "C" fn tune_allocator() {
        use libmimalloc_sys::{mi_option_get, mi_option_set, mi_version};
        const PURGE_DELAY: i32 = 15; // mi_option_purge_delay, default 1000 (ms)
        const ARENA_EAGER_COMMIT: i32 = 4; // mi_option_arena_eager_commit, default 2
                                           // SAFETY: plain getters/setters of mimalloc's option table; mimalloc reads `MIMALLOC_*`
                                           // from the environment itself on the first get.
        unsafe {
            if mi_version() < 300 {
                return;
            }
            if mi_option_get(PURGE_DELAY) == 1000 {
                mi_option_set(PURGE_DELAY, if cfg!(target_env = "musl") { 20 } else { 40 });
            }
            if mi_option_get(ARENA_EAGER_COMMIT) == 2 {
                mi_option_set(ARENA_EAGER_COMMIT, 0);
            }
        }
    }
    tune_allocator
};

/// In the glibc build, librdkafka, SQLite and libpq allocate with glibc's malloc (the static
/// build gives them mimalloc; Rust's own allocations use mimalloc in both). Its mmap threshold
/// rises to the largest mmapped block freed so far (up to 32 MiB) and its trim threshold to twice
/// that, so after the first large blocks are freed — librdkafka's fetch responses, allocated
/// whole and freed once their last message is — blocks of that size come from the heap, and what
/// they free stays with the process. A fixed 256 KiB threshold (which also keeps the trim
/// threshold at its 128 KiB default) maps such blocks and unmaps them on free: 4–8 MiB less
/// steady RSS in bench/ (SQLite 51.1/52.8 vs 59.5/60.3 MiB, PostgreSQL 55.4/55.9 vs 63.1/60.1,
/// alternating pairs; docs/benchmarks.md, session 9). Not done if the user set the threshold
/// (`MALLOC_MMAP_THRESHOLD_`, `GLIBC_TUNABLES`), nor without mimalloc, where it would also map
/// and unmap the pipeline's own large buffers (not measured).
#[cfg(all(target_os = "linux", target_env = "gnu", feature = "mimalloc"))]
fn tune_glibc_malloc() {
    let set_by_user = std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some()
        || std::env::var_os("GLIBC_TUNABLES").is_some_and(|t| t.to_string_lossy().contains("mmap_threshold"));
    if !set_by_user {
        // SAFETY: mallopt only changes a malloc parameter; called before any thread starts.
        let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024) };
        debug_assert_eq!(ok, 1, "mallopt(M_MMAP_THRESHOLD) refused");
    }
}

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu", feature = "mimalloc"))]
    tune_glibc_malloc();
    // Before any thread can touch SQLite (its settings are not thread-safe to change).
    tributary_actors::storage::sqlite::configure_library();
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
        Command::Demo(args) => {
            let level = std::env::var("TRIBUTARY_LOG__LEVEL").unwrap_or_else(|_| "warn".into());
            // Hidden until the demo draws it; log lines go through it so they never break it.
            let bar = indicatif::ProgressBar::hidden();
            let output: telemetry::Output = Box::new(tributary::demo::BarWriter::new(bar.clone()));
            let (log, _flush_on_exit) = telemetry::logger_to(&tributary::config::LogSettings { level, ..Default::default() }, Some(output));
            match tributary::demo::run(args.clone(), log, bar) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("demo failed: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
