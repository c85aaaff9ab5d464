//! Memory: which allocator, tuned how (docs/benchmarks.md has the figures behind each choice).

/// mimalloc: less fragmentation across the worker threads than glibc's arenas (RSS), faster
/// small allocations, and the same allocator in the static musl build.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The static musl build's `memcpy`, `memmove` and `memcmp` (crate `tributary-memops`: musl's
/// are byte loops or `rep movsq` for every length). `extern crate`, because nothing calls the
/// crate by name: an unnamed dependency would not be linked at all.
#[cfg(all(target_env = "musl", target_arch = "x86_64"))]
extern crate tributary_memops;

/// How long mimalloc keeps freed pages before giving them back. At once, the pages a committed
/// batch frees come back as page faults when the next records are written into them; kept
/// longer, the steady RSS grows. The static build purges sooner: its C libraries' buffers are
/// mimalloc's too. `MIMALLOC_PURGE_DELAY` overrides it.
#[cfg(feature = "mimalloc")]
const PURGE_DELAY_MS: std::ffi::c_long = if cfg!(target_env = "musl") { 20 } else { 40 };

/// mimalloc 3's option numbers and defaults (`mi_option_purge_delay`, `mi_option_arena_eager_commit`).
#[cfg(feature = "mimalloc")]
const MI_OPTION_PURGE_DELAY: i32 = 15;
#[cfg(feature = "mimalloc")]
const MI_PURGE_DELAY_DEFAULT: std::ffi::c_long = 1000;
#[cfg(feature = "mimalloc")]
const MI_OPTION_ARENA_EAGER_COMMIT: i32 = 4;
#[cfg(feature = "mimalloc")]
const MI_ARENA_EAGER_COMMIT_DEFAULT: std::ffi::c_long = 2;

/// mimalloc 3 keeps freed pages for a second and commits arenas eagerly: under a steady ingest
/// that doubles the RSS. Set before the first allocation creates an arena (an ELF constructor),
/// each option only if it still holds mimalloc 3's default, so a `MIMALLOC_*` variable or another
/// mimalloc version keeps its own value. Nothing here allocates.
#[cfg(feature = "mimalloc")]
#[used]
#[link_section = ".init_array"]
static TUNE_ALLOCATOR: extern "C" fn() = {
    extern "C" fn tune_allocator() {
        use libmimalloc_sys::{mi_option_get, mi_option_set, mi_version};
        // SAFETY: plain getters and setters of mimalloc's option table; mimalloc reads
        // `MIMALLOC_*` from the environment itself on the first get.
        unsafe {
            if mi_version() < 300 {
                return;
            }
            if mi_option_get(MI_OPTION_PURGE_DELAY) == MI_PURGE_DELAY_DEFAULT {
                mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
            }
            if mi_option_get(MI_OPTION_ARENA_EAGER_COMMIT) == MI_ARENA_EAGER_COMMIT_DEFAULT {
                mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
            }
        }
    }
    tune_allocator
};

/// glibc's mmap threshold for the C libraries' allocations in the glibc build. glibc raises its
/// threshold to the largest mmapped block freed (up to 32 MiB), after which librdkafka's fetch
/// responses come from the heap and their memory stays with the process; fixed, they are
/// mapped and unmapped.
#[cfg(all(target_os = "linux", target_env = "gnu", feature = "mimalloc"))]
const GLIBC_MMAP_THRESHOLD: i32 = 256 * 1024;

/// In the glibc build librdkafka, SQLite and libpq allocate with glibc's malloc: fix its mmap
/// threshold, unless the user set it (`MALLOC_MMAP_THRESHOLD_`, `GLIBC_TUNABLES`). Without
/// mimalloc glibc serves the pipeline's own buffers too, and the threshold is left alone.
/// Call before any thread starts.
pub fn tune_c_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu", feature = "mimalloc"))]
    {
        let set_by_user = std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some()
            || std::env::var_os("GLIBC_TUNABLES").is_some_and(|t| t.to_string_lossy().contains("mmap_threshold"));
        if !set_by_user {
            // SAFETY: mallopt only changes a malloc parameter; no other thread runs yet.
            let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, GLIBC_MMAP_THRESHOLD) };
            debug_assert_eq!(ok, 1, "mallopt(M_MMAP_THRESHOLD) refused");
        }
    }
}
