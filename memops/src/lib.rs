#![no_builtins]
//! `memcpy`, `memmove` and `memcmp` for the static musl build: exported under those names on
//! x86_64 musl only (the binary links this crate only there); every other build uses its C
//! library's, and the functions are then only tested.
//!
//! musl's x86_64 `memcpy` aligns the destination one `movsb` at a time and then copies with
//! `rep movsq` whatever the length, `memmove` is that `memcpy` or a backward `rep movsq`, and
//! `memcmp` compares one byte at a time. The pipeline copies and compares mostly short byte
//! strings (event fields, SQL values, Kafka headers and keys, SQLite cells), where a `rep`
//! instruction's start-up dominates, and the static binary would ingest markedly slower than the
//! glibc build (docs/benchmarks.md has the profiles). Here lengths up to 64 bytes are copied
//! with two to four overlapping unaligned loads and stores, longer ones 64 bytes a step, from
//! 1 KiB on with `rep movsb` (fast for long copies on every x86_64 with ERMS, since 2012), a
//! backward overlapping move 64 bytes a step, and comparisons 8 bytes a step.
//!
//! Nothing here may compile to a call of `memcpy`, `memmove` or `memcmp` (it would call itself).
//! The crate is `#![no_builtins]`, as Rust's own `compiler_builtins` is for the same reason:
//! LLVM then neither turns a copy loop into a `memcpy` call (its loop-idiom pass) nor treats
//! these functions' names as the library's. The exported functions live here too, so all of
//! their code is compiled under that attribute (an `#[inline]` function called from another
//! crate would be compiled there, without it). The attribute does not stop unoptimised code
//! from moving a large value with `memcpy`, so the code also avoids the patterns on its own: no
//! value wider than 16 bytes, no loop that stores what it loaded in steps the size of the store,
//! no copy of a run-time length through `copy_nonoverlapping` (the crate's object code at
//! `opt-level` 0, 1 and 3 references none of the three names). The tests compare every
//! function with a byte-at-a-time reference for every length up to 600 and a spread of longer
//! ones, every misalignment and overlap that matters, and with the regions flush against an
//! inaccessible page (a read or write past either end faults).

#![cfg(target_arch = "x86_64")]

use std::arch::asm;
use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_storeu_si128};
use std::ptr::{read_unaligned as load, write_unaligned as store};

/// Lengths up to this are copied with overlapping loads and stores, without a loop.
const SMALL: usize = 64;
/// Lengths from this on are copied forward with `rep movsb`, shorter ones 64 bytes a step: below
/// about 1 KiB the steps are faster, above it `rep movsb` (docs/benchmarks.md has the timings).
const REP_MOVSB: usize = 1024;

/// Copies `n <= 64` bytes. Every byte is loaded before the first is stored, so the regions may
/// overlap either way.
#[inline(always)]
unsafe fn copy_small(dst: *mut u8, src: *const u8, n: usize) {
    debug_assert!(n <= SMALL);
    if n >= 32 {
        // The first and the last 32 bytes, in 16-byte registers (`copy_ends::<[u128; 2]>` put
        // them through the stack).
        let a = load(src.cast::<u128>());
        let b = load(src.add(16).cast::<u128>());
        let c = load(src.add(n - 32).cast::<u128>());
        let d = load(src.add(n - 16).cast::<u128>());
        store(dst.cast::<u128>(), a);
        store(dst.add(16).cast::<u128>(), b);
        store(dst.add(n - 32).cast::<u128>(), c);
        store(dst.add(n - 16).cast::<u128>(), d);
    } else if n >= 16 {
        copy_ends::<u128>(dst, src, n);
    } else if n >= 8 {
        copy_ends::<u64>(dst, src, n);
    } else if n >= 4 {
        copy_ends::<u32>(dst, src, n);
    } else if n >= 2 {
        copy_ends::<u16>(dst, src, n);
    } else if n == 1 {
        *dst = *src;
    }
}

/// Copies `n` bytes, `size_of::<T>() <= n <= 2 * size_of::<T>()`, as the first and the last
/// `T` (overlapping in the middle), both loaded before either is stored.
#[inline(always)]
unsafe fn copy_ends<T>(dst: *mut u8, src: *const u8, n: usize) {
    let w = std::mem::size_of::<T>();
    debug_assert!(w <= n && n <= 2 * w);
    let first = load(src.cast::<T>());
    let last = load(src.add(n - w).cast::<T>());
    store(dst.cast::<T>(), first);
    store(dst.add(n - w).cast::<T>(), last);
}

/// Copies `n > 64` bytes forward: correct when `dst` does not lie inside `src..src + n`. Below
/// [`REP_MOVSB`] 64 bytes a step, the last `n % 64` with [`copy_small`] (when `dst` lies below
/// `src`, every store lands below the bytes still to be read); from there on with `rep movsb`
/// (a forward byte copy is what the instruction is defined as, whatever the hardware does
/// internally).
#[inline(always)]
unsafe fn copy_forward(dst: *mut u8, src: *const u8, n: usize) {
    debug_assert!(n > SMALL);
    if n >= REP_MOVSB {
        // SAFETY: the caller guarantees both ranges are valid; the direction flag is clear on
        // entry to any function (System V ABI).
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _, options(nostack, preserves_flags));
        return;
    }
    let mut i = 0;
    while i + 64 <= n {
        copy_block(dst.add(i), src.add(i));
        i += 64;
    }
    copy_small(dst.add(i), src.add(i), n - i);
}

/// Copies 64 bytes as four 16-byte SSE2 values, all four loaded before any is stored. Not as
/// one 64-byte value: a loop that stores what it loaded, in steps the size of the store, is
/// what LLVM's loop-idiom pass turns into a call of `memcpy`, and unoptimised code moves such
/// a value with a call of `memcpy` too.
#[inline(always)]
unsafe fn copy_block(dst: *mut u8, src: *const u8) {
    let (s, d) = (src.cast::<__m128i>(), dst.cast::<__m128i>());
    let a = _mm_loadu_si128(s);
    let b = _mm_loadu_si128(s.add(1));
    let c = _mm_loadu_si128(s.add(2));
    let e = _mm_loadu_si128(s.add(3));
    _mm_storeu_si128(d, a);
    _mm_storeu_si128(d.add(1), b);
    _mm_storeu_si128(d.add(2), c);
    _mm_storeu_si128(d.add(3), e);
}

/// `memcpy`: copies `n` bytes from `src` to `dst`, which must not overlap.
///
/// # Safety
/// As C's `memcpy`: `src` readable and `dst` writable for `n` bytes, not overlapping.
#[inline]
pub unsafe fn copy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if n <= SMALL {
        copy_small(dst, src, n);
    } else {
        copy_forward(dst, src, n);
    }
    dst
}

/// `memmove`: copies `n` bytes from `src` to `dst`; the regions may overlap.
///
/// # Safety
/// As C's `memmove`: `src` readable and `dst` writable for `n` bytes.
#[inline]
pub unsafe fn copy_overlapping(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if n <= SMALL {
        copy_small(dst, src, n);
    } else if (dst as usize).wrapping_sub(src as usize) >= n {
        // `dst` before `src`, or past its end: a forward copy never overwrites a byte it has
        // yet to read.
        copy_forward(dst, src, n);
    } else {
        copy_backward(dst, src, n);
    }
    dst
}

/// Copies `n > 64` bytes from the end down, 64 at a time (all four loads of a step before its
/// stores), then the first `n % 64` with [`copy_small`]. Correct when `dst` lies inside
/// `src..src + n`: each step's stores land at or above the bytes it has just read, never on
/// bytes still to be read.
#[inline(never)]
unsafe fn copy_backward(dst: *mut u8, src: *const u8, n: usize) {
    let mut end = n;
    while end >= 64 {
        copy_block(dst.add(end - 64), src.add(end - 64));
        end -= 64;
    }
    copy_small(dst, src, end);
}

/// `memcmp`: compares `n` bytes as unsigned bytes; negative, zero or positive as `a` sorts
/// before, equal to or after `b`.
///
/// # Safety
/// As C's `memcmp`: both readable for `n` bytes.
#[inline]
pub unsafe fn compare(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    // 8 bytes a step; read big-endian, the first differing byte decides the order.
    while i + 8 <= n {
        let x = u64::from_be(load(a.add(i).cast::<u64>()));
        let y = u64::from_be(load(b.add(i).cast::<u64>()));
        if x != y {
            return if x < y { -1 } else { 1 };
        }
        i += 8;
    }
    if n >= 8 {
        // The last 0–7 bytes, as the last 8 (re-reading some that compared equal).
        let x = u64::from_be(load(a.add(n - 8).cast::<u64>()));
        let y = u64::from_be(load(b.add(n - 8).cast::<u64>()));
        return (x > y) as i32 - (x < y) as i32;
    }
    while i < n {
        let (x, y) = (*a.add(i), *b.add(i));
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// The C names, in the static musl build only. Defined in the binary's own link (the binary
/// names this crate with `extern crate`), so the linker resolves every call — Rust's, and
/// librdkafka's, SQLite's, libpq's — to these before it searches musl's `libc.a`; `memcpy` and
/// `memmove` are replaced together because musl's `memmove` jumps into its `memcpy`'s object.
/// musl's `bcmp` calls `memcmp`, so it follows.
#[cfg(target_env = "musl")]
mod exports {
    use std::ffi::{c_int, c_void};

    /// # Safety
    /// C's `memcpy` contract.
    #[no_mangle]
    pub unsafe extern "C" fn memcpy(dst: *mut c_void, src: *const c_void, n: usize) -> *mut c_void {
        super::copy(dst.cast(), src.cast(), n).cast()
    }

    /// # Safety
    /// C's `memmove` contract.
    #[no_mangle]
    pub unsafe extern "C" fn memmove(dst: *mut c_void, src: *const c_void, n: usize) -> *mut c_void {
        super::copy_overlapping(dst.cast(), src.cast(), n).cast()
    }

    /// # Safety
    /// C's `memcmp` contract.
    #[no_mangle]
    pub unsafe extern "C" fn memcmp(a: *const c_void, b: *const c_void, n: usize) -> c_int {
        super::compare(a.cast(), b.cast(), n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hint::black_box;

    /// One implementation of the three functions under test.
    struct Impl {
        name: &'static str,
        copy: unsafe fn(*mut u8, *const u8, usize) -> *mut u8,
        copy_overlapping: unsafe fn(*mut u8, *const u8, usize) -> *mut u8,
        compare: unsafe fn(*const u8, *const u8, usize) -> i32,
    }

    /// The Rust functions; in the musl build also the C names as the linker resolved them, the
    /// ones every caller in the static binary gets.
    fn impls() -> Vec<Impl> {
        let rust = Impl { name: "rust", copy, copy_overlapping, compare };
        #[cfg(target_env = "musl")]
        let all = vec![
            rust,
            Impl { name: "C names", copy: c_names::copy, copy_overlapping: c_names::copy_overlapping, compare: c_names::compare },
        ];
        #[cfg(not(target_env = "musl"))]
        let all = vec![rust];
        all
    }

    /// `memcpy`, `memmove`, `memcmp` called by their C names.
    #[cfg(target_env = "musl")]
    mod c_names {
        use std::ffi::{c_int, c_void};

        extern "C" {
            fn memcpy(dst: *mut c_void, src: *const c_void, n: usize) -> *mut c_void;
            fn memmove(dst: *mut c_void, src: *const c_void, n: usize) -> *mut c_void;
            fn memcmp(a: *const c_void, b: *const c_void, n: usize) -> c_int;
        }

        pub(super) unsafe fn copy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
            memcpy(dst.cast(), src.cast(), n).cast()
        }

        pub(super) unsafe fn copy_overlapping(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
            memmove(dst.cast(), src.cast(), n).cast()
        }

        pub(super) unsafe fn compare(a: *const u8, b: *const u8, n: usize) -> i32 {
            memcmp(a.cast(), b.cast(), n)
        }

        /// The linker resolved the C names to this crate's exports, not musl's.
        #[test]
        fn the_c_names_are_these_functions() {
            assert_eq!(memcpy as usize, super::super::exports::memcpy as usize);
            assert_eq!(memmove as usize, super::super::exports::memmove as usize);
            assert_eq!(memcmp as usize, super::super::exports::memcmp as usize);
        }
    }

    /// Byte-at-a-time references (`black_box` keeps them from being turned into the library's
    /// own calls).
    fn reference_move(buf: &mut [u8], dst: usize, src: usize, n: usize) {
        let tmp: Vec<u8> = (0..n).map(|i| black_box(buf[src + i])).collect();
        for (i, byte) in tmp.into_iter().enumerate() {
            buf[dst + i] = black_box(byte);
        }
    }

    fn reference_compare(a: &[u8], b: &[u8]) -> i32 {
        for (x, y) in a.iter().zip(b) {
            if black_box(*x) != black_box(*y) {
                return if x < y { -1 } else { 1 };
            }
        }
        0
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ 0x5a).collect()
    }

    /// Every length up to 600, either side of where `rep movsb` takes over, and longer ones.
    fn lengths() -> impl Iterator<Item = usize> {
        (0..600).chain([REP_MOVSB - 1, REP_MOVSB, REP_MOVSB + 1, REP_MOVSB + 77, 4099, 8192, 65_537])
    }

    /// x86_64 Linux's page size.
    #[cfg(target_os = "linux")]
    const PAGE: usize = 4096;

    /// `len` bytes whose last byte is followed by an inaccessible page, and a pointer to them.
    #[cfg(target_os = "linux")]
    struct Guarded {
        base: *mut u8,
        map_len: usize,
        len: usize,
    }

    #[cfg(target_os = "linux")]
    impl Guarded {
        fn new(len: usize) -> Guarded {
            let map_len = (len.div_ceil(PAGE) + 1) * PAGE;
            // SAFETY: an anonymous private mapping, then its last page made inaccessible.
            unsafe {
                let base = libc::mmap(
                    std::ptr::null_mut(),
                    map_len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                );
                assert_ne!(base, libc::MAP_FAILED);
                assert_eq!(libc::mprotect(base.cast::<u8>().add(map_len - PAGE).cast(), PAGE, libc::PROT_NONE), 0);
                Guarded { base: base.cast(), map_len, len }
            }
        }

        /// The `len` bytes, ending at the inaccessible page.
        fn ptr(&self) -> *mut u8 {
            unsafe { self.base.add(self.map_len - PAGE - self.len) }
        }
    }

    #[cfg(target_os = "linux")]
    impl Drop for Guarded {
        fn drop(&mut self) {
            unsafe { libc::munmap(self.base.cast(), self.map_len) };
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn nothing_is_read_or_written_past_the_end() {
        for f in impls() {
            eprintln!("{}", f.name);
            // Source and destination each end flush against an inaccessible page: a read or write
            // of one byte too many faults (and the test process dies).
            for n in lengths() {
                let (src, dst) = (Guarded::new(n), Guarded::new(n));
                let want = pattern(n, 9);
                unsafe {
                    std::ptr::copy_nonoverlapping(want.as_ptr(), src.ptr(), n);
                    (f.copy)(dst.ptr(), src.ptr(), n);
                    assert_eq!(std::slice::from_raw_parts(dst.ptr(), n), &want[..], "copy of {n}");
                    assert_eq!((f.compare)(src.ptr(), dst.ptr(), n), 0, "compare of {n}");
                    // A move within one buffer, to its end from 1 and 40 bytes before (backward),
                    // and from its end down (forward).
                    for shift in [1usize, 40] {
                        if shift < n {
                            let m = n - shift;
                            let mut reference = want.clone();
                            reference_move(&mut reference, shift, 0, m);
                            std::ptr::copy_nonoverlapping(want.as_ptr(), src.ptr(), n);
                            (f.copy_overlapping)(src.ptr().add(shift), src.ptr(), m);
                            assert_eq!(std::slice::from_raw_parts(src.ptr(), n), &reference[..], "move of {m} up by {shift}");
                            let mut reference = want.clone();
                            reference_move(&mut reference, 0, shift, m);
                            std::ptr::copy_nonoverlapping(want.as_ptr(), src.ptr(), n);
                            (f.copy_overlapping)(src.ptr(), src.ptr().add(shift), m);
                            assert_eq!(std::slice::from_raw_parts(src.ptr(), n), &reference[..], "move of {m} down by {shift}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn copy_matches_a_byte_copy_for_every_length_and_misalignment() {
        for f in impls() {
            eprintln!("{}", f.name);
            for n in lengths() {
                for (src_off, dst_off) in [(0, 0), (1, 0), (0, 3), (7, 5), (15, 9)] {
                    let src = pattern(n + 32, n as u8);
                    let mut got = vec![0xeeu8; n + 64];
                    let mut want = got.clone();
                    let ret = unsafe { (f.copy)(got.as_mut_ptr().add(dst_off + 16), src.as_ptr().add(src_off), n) };
                    assert_eq!(ret, unsafe { got.as_mut_ptr().add(dst_off + 16) });
                    want[dst_off + 16..dst_off + 16 + n].copy_from_slice(&src[src_off..src_off + n]);
                    // Guard bytes either side stay untouched.
                    assert_eq!(got, want, "copy of {n} bytes, offsets {src_off}/{dst_off}");
                }
            }
        }
    }

    #[test]
    fn copy_overlapping_matches_a_byte_move_for_every_overlap() {
        for f in impls() {
            eprintln!("{}", f.name);
            for n in lengths() {
                // Shifts of the destination against the source, both ways: 0 is a copy onto itself,
                // small shifts are the hardest overlaps, n and more do not overlap at all.
                for shift in [0usize, 1, 2, 7, 8, 15, 16, 17, 31, 63, 64, 65, 130, n / 2, n, n + 3] {
                    for forward in [true, false] {
                        let mut got = pattern(2 * n + 200, shift as u8);
                        let mut want = got.clone();
                        let (src, dst) = if forward { (8, 8 + shift) } else { (8 + shift, 8) };
                        let ret = unsafe { (f.copy_overlapping)(got.as_mut_ptr().add(dst), got.as_ptr().add(src), n) };
                        assert_eq!(ret, unsafe { got.as_mut_ptr().add(dst) });
                        reference_move(&mut want, dst, src, n);
                        assert_eq!(got, want, "move of {n} bytes from {src} to {dst}");
                    }
                }
            }
        }
    }

    #[test]
    fn compare_orders_like_unsigned_bytes_at_the_first_difference() {
        for f in impls() {
            eprintln!("{}", f.name);
            for n in lengths() {
                let a = pattern(n, 1);
                assert_eq!(unsafe { (f.compare)(a.as_ptr(), a.clone().as_ptr(), n) }, 0, "equal, {n} bytes");
                // A difference at each of several positions, in both directions, including bytes
                // ≥ 0x80 (unsigned order) and a later difference the other way that must not count.
                for pos in [0, 1, 6, 7, 8, 9, 15, 16, n / 2, n.saturating_sub(9), n.saturating_sub(8), n.saturating_sub(1)] {
                    if pos >= n {
                        continue;
                    }
                    for (x, y) in [(0x00u8, 0xffu8), (0x7f, 0x80), (0x41, 0x42)] {
                        let (mut l, mut r) = (a.clone(), a.clone());
                        l[pos] = x;
                        r[pos] = y;
                        if pos + 1 < n {
                            l[n - 1] = 0xff;
                            r[n - 1] = 0x00;
                        }
                        let got = unsafe { (f.compare)(l.as_ptr(), r.as_ptr(), n) };
                        assert_eq!(got.signum(), reference_compare(&l, &r), "{n} bytes, difference at {pos}");
                        let back = unsafe { (f.compare)(r.as_ptr(), l.as_ptr(), n) };
                        assert_eq!(back.signum(), -reference_compare(&l, &r), "{n} bytes, reversed, at {pos}");
                    }
                }
            }
        }
    }

    #[test]
    fn compare_reads_only_n_bytes() {
        for f in impls() {
            eprintln!("{}", f.name);
            // Differences just past the end do not count.
            for n in 0..40 {
                let a = pattern(n + 8, 3);
                let mut b = a.clone();
                for byte in &mut b[n..] {
                    *byte = !*byte;
                }
                assert_eq!(unsafe { (f.compare)(a.as_ptr(), b.as_ptr(), n) }, 0, "{n} bytes");
            }
        }
    }
}
