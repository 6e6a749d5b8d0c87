//! The CLI's allocator on Linux: blocks of 64 KiB and more come straight from the kernel
//! (`mmap`), everything else from the system allocator.
//!
//! Every smoltcp socket owns two `tcpBuffer` rings (64 KiB each by default), allocated zeroed.
//! Pages the kernel maps are zero until written, so a socket that carries a short exchange
//! makes one page of each resident, and one waiting in SYN-SENT none: Linux, too, allocates
//! socket memory only for what is queued. glibc serves a zeroed 64 KiB from its heap whenever a
//! free chunk there is large enough, and then writes all of it (`calloc`'s memset), so a run
//! with thousands of connections open at once held every byte of their buffers, more or less
//! of them from one build to the next as the heap's free chunks happened to fall (16,000 at
//! once: 540 to 690 MB resident; with this allocator about 250 MB). Raising glibc's mmap
//! threshold (`M_MMAP_THRESHOLD`, what the CLI did before) does not prevent that: glibc maps
//! only the requests its free lists cannot serve.
//!
//! A large block is one mapping: `mremap` grows or shrinks it (no copy for the event queue or
//! a recording that grows), `munmap` returns it.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod linux {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::ptr;

    /// Blocks from this size on are mappings of their own.
    const LARGE: usize = 64 * 1024;
    /// Mappings are page-aligned; a block that asks for more alignment goes to `System`.
    const PAGE: usize = 4096;

    pub struct Alloc;

    fn large(l: &Layout) -> bool {
        l.size() >= LARGE && l.align() <= PAGE
    }

    /// A fresh mapping of `size` bytes (zero pages), or null.
    unsafe fn map(size: usize) -> *mut u8 {
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing.
        let p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            ptr::null_mut()
        } else {
            p.cast()
        }
    }

    // SAFETY: every block is either a mapping of exactly its layout's size (large layouts,
    // from `map`/`mremap`, returned with `munmap` of the same size) or `System`'s (every other
    // layout); `large` decides which from the layout alone, so each block goes back to where
    // it came from.
    unsafe impl GlobalAlloc for Alloc {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            if large(&l) {
                // SAFETY: see `map`.
                unsafe { map(l.size()) }
            } else {
                // SAFETY: forwarded with the caller's layout.
                unsafe { System.alloc(l) }
            }
        }

        unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
            if large(&l) {
                // SAFETY: see `map`; its pages read as zero.
                unsafe { map(l.size()) }
            } else {
                // SAFETY: forwarded with the caller's layout.
                unsafe { System.alloc_zeroed(l) }
            }
        }

        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            if large(&l) {
                // SAFETY: `p` is a mapping of `l.size()` bytes made by `map` or `mremap`.
                unsafe {
                    libc::munmap(p.cast(), l.size());
                }
            } else {
                // SAFETY: `p` came from `System` with this layout.
                unsafe { System.dealloc(p, l) }
            }
        }

        unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
            // SAFETY: the caller guarantees a valid layout for `new_size` with `l`'s align.
            let new = unsafe { Layout::from_size_align_unchecked(new_size, l.align()) };
            match (large(&l), large(&new)) {
                // SAFETY: `p` is a mapping of `l.size()` bytes; the kernel moves it if needed.
                (true, true) => unsafe {
                    let q = libc::mremap(p.cast(), l.size(), new_size, libc::MREMAP_MAYMOVE);
                    if q == libc::MAP_FAILED {
                        ptr::null_mut()
                    } else {
                        q.cast()
                    }
                },
                // SAFETY: `p` came from `System` with layout `l`.
                (false, false) => unsafe { System.realloc(p, l, new_size) },
                // From one kind to the other: a new block, the bytes both hold, the old one
                // returned.
                _ => {
                    // SAFETY: `new` is a valid layout; `p` holds `l.size()` readable bytes.
                    unsafe {
                        let q = self.alloc(new);
                        if !q.is_null() {
                            ptr::copy_nonoverlapping(p, q, l.size().min(new_size));
                            self.dealloc(p, l);
                        }
                        q
                    }
                }
            }
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub use linux::Alloc;

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use std::alloc::{GlobalAlloc, Layout};

    #[test]
    fn large_blocks_are_zeroed_grow_shrink_and_keep_their_bytes() {
        let a = super::Alloc;
        let big = Layout::from_size_align(64 * 1024, 8).unwrap();
        // SAFETY: each block is used within its size and returned with its layout.
        unsafe {
            let p = a.alloc_zeroed(big);
            assert!(!p.is_null());
            assert!((0..big.size()).all(|i| *p.add(i) == 0));
            *p.add(100) = 7;
            let q = a.realloc(p, big, 1 << 20);
            assert_eq!(*q.add(100), 7);
            let small = a.realloc(q, Layout::from_size_align(1 << 20, 8).unwrap(), 200);
            assert_eq!(*small.add(100), 7);
            let back = a.realloc(small, Layout::from_size_align(200, 8).unwrap(), 70_000);
            assert_eq!(*back.add(100), 7);
            a.dealloc(back, Layout::from_size_align(70_000, 8).unwrap());
        }
    }
}
