//! A cache of small freed blocks in front of the component's allocator.
//!
//! Each delivery allocates a few small blocks in the component and frees them when its
//! batch has been handed over: the subject the host writes in, the `Topic` key, the
//! metadata vector, the buffer wit-bindgen lowers that vector into. A publish allocates
//! its topic, payload and header vector the same way. wasi-libc's dlmalloc spent about
//! 250 instructions on each of those allocations and frees, more than the component's own
//! mapping of the delivery (counted with callgrind, docs/benchmarks.md). Here a freed
//! block of up to 256 bytes goes onto a free list of its size class and the next request
//! of that class takes it back in a few instructions.
//!
//! Blocks of a class are always obtained from the inner allocator with the class's full
//! size, so any request of the class fits in any of them, and a block that leaves the
//! cache goes back with the layout it came with. A list holds at most [`MAX_CACHED`]
//! blocks; beyond that frees go straight through, so the cache keeps at most ~64 KiB that
//! dlmalloc would otherwise have kept in its own free lists. When the inner allocator
//! fails (the host's memory cap), so does this one: the null is passed on.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::ptr;

/// Block sizes of the classes; a request is served from the first that fits it.
const CLASS_SIZES: [usize; 6] = [8, 16, 32, 64, 128, 256];
/// Alignment of every cached block: the inner allocator's own minimum on wasm32, so its
/// plain `malloc` path serves them. Requests aligned more strictly go straight through.
const CLASS_ALIGN: usize = 8;
/// Freed blocks a class keeps at most.
const MAX_CACHED: usize = 128;

/// One size class: a singly linked list threaded through the freed blocks themselves.
#[derive(Clone, Copy)]
struct FreeList {
    head: *mut u8,
    len: usize,
}

/// Small-block cache over `A`. For single-threaded use only: the component is one thread
/// (wasm32 without the atomics feature), which is where it is installed.
pub struct BlockCache<A> {
    lists: UnsafeCell<[FreeList; CLASS_SIZES.len()]>,
    inner: A,
}

// SAFETY: installed as the global allocator only on targets without threads (see lib.rs),
// and used by one thread at a time in the tests; no list is ever touched concurrently.
unsafe impl<A: Sync> Sync for BlockCache<A> {}

impl<A> BlockCache<A> {
    pub const fn new(inner: A) -> Self {
        Self {
            lists: UnsafeCell::new(
                [FreeList {
                    head: ptr::null_mut(),
                    len: 0,
                }; CLASS_SIZES.len()],
            ),
            inner,
        }
    }
}

/// The size class serving `layout`, or None for blocks the cache does not handle.
fn class_of(layout: Layout) -> Option<usize> {
    if layout.align() > CLASS_ALIGN {
        return None;
    }
    let size = layout.size();
    if size <= CLASS_SIZES[0] {
        return Some(0);
    }
    // 9..=16 -> 1, 17..=32 -> 2, ... 129..=256 -> 5.
    let class = ((size - 1).ilog2() - 2) as usize;
    (class < CLASS_SIZES.len()).then_some(class)
}

fn class_layout(class: usize) -> Layout {
    // SAFETY: every class size is non-zero and a multiple of the power-of-two alignment.
    unsafe { Layout::from_size_align_unchecked(CLASS_SIZES[class], CLASS_ALIGN) }
}

unsafe impl<A: GlobalAlloc> GlobalAlloc for BlockCache<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(layout) else {
            // SAFETY: the caller's contract, passed on.
            return unsafe { self.inner.alloc(layout) };
        };
        // SAFETY: single-threaded (see `Sync`), and no reference to the lists outlives
        // this call.
        let list = unsafe { &mut (*self.lists.get())[class] };
        if list.head.is_null() {
            // SAFETY: a valid, non-zero-size layout.
            return unsafe { self.inner.alloc(class_layout(class)) };
        }
        let block = list.head;
        // SAFETY: a cached block holds the next block's address in its first bytes (every
        // class is at least pointer-sized and pointer-aligned).
        list.head = unsafe { block.cast::<*mut u8>().read() };
        list.len -= 1;
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let Some(class) = class_of(layout) else {
            // SAFETY: allocated by the inner allocator with this very layout.
            return unsafe { self.inner.dealloc(block, layout) };
        };
        // SAFETY: as in `alloc`.
        let list = unsafe { &mut (*self.lists.get())[class] };
        if list.len >= MAX_CACHED {
            // SAFETY: every block of this class came from the inner allocator with the
            // class layout.
            return unsafe { self.inner.dealloc(block, class_layout(class)) };
        }
        // SAFETY: the block is the caller's to give up, at least pointer-sized and aligned.
        unsafe { block.cast::<*mut u8>().write(list.head) };
        list.head = block;
        list.len += 1;
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees `new_size` forms a valid layout with this alignment.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (class_of(layout), class_of(new_layout)) {
            // Both large: the inner allocator may grow in place.
            // SAFETY: the block came from the inner allocator with `layout`.
            (None, None) => unsafe { self.inner.realloc(block, layout, new_size) },
            // The block already has its class's full size.
            (Some(old), Some(new)) if old == new => block,
            _ => {
                // SAFETY: the caller's contract; the copy stays within both blocks.
                unsafe {
                    let moved = self.alloc(new_layout);
                    if !moved.is_null() {
                        ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                        self.dealloc(block, layout);
                    }
                    moved
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::alloc::System;
    use std::cell::Cell;

    use super::*;

    /// The system allocator, counting what reaches it.
    #[derive(Default)]
    struct Counting {
        allocs: Cell<usize>,
        frees: Cell<usize>,
    }

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            self.allocs.set(self.allocs.get() + 1);
            unsafe { System.alloc(layout) }
        }
        unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
            self.frees.set(self.frees.get() + 1);
            unsafe { System.dealloc(block, layout) }
        }
    }

    fn layout(size: usize, align: usize) -> Layout {
        Layout::from_size_align(size, align).unwrap()
    }

    #[test]
    fn classes_cover_up_to_256_bytes_aligned_up_to_8() {
        let cases = [
            (0, 1, Some(0)),
            (1, 1, Some(0)),
            (8, 8, Some(0)),
            (9, 1, Some(1)),
            (16, 4, Some(1)),
            (17, 1, Some(2)),
            (32, 8, Some(2)),
            (33, 1, Some(3)),
            (128, 8, Some(4)),
            (129, 1, Some(5)),
            (256, 8, Some(5)),
            (257, 1, None),
            (16, 16, None),
        ];
        for (size, align, class) in cases {
            assert_eq!(
                class_of(layout(size, align)),
                class,
                "{size} bytes, align {align}"
            );
        }
    }

    #[test]
    fn a_freed_small_block_is_served_again_without_the_inner_allocator() {
        let cache = BlockCache::new(Counting::default());
        unsafe {
            let first = cache.alloc(layout(20, 1));
            cache.dealloc(first, layout(20, 1));
            // Same class (17..=32), another size and alignment.
            let second = cache.alloc(layout(32, 8));
            assert_eq!(second, first);
            assert_eq!(cache.inner.allocs.get(), 1);
            assert_eq!(cache.inner.frees.get(), 0);
            cache.dealloc(second, layout(32, 8));
        }
    }

    #[test]
    fn blocks_hold_their_bytes_and_grow_across_classes() {
        let cache = BlockCache::new(Counting::default());
        unsafe {
            let mut live = Vec::new();
            for round in 0..3u8 {
                for size in [1usize, 8, 12, 30, 64, 100, 200, 256, 300, 4096] {
                    let block = cache.alloc(layout(size, 1));
                    assert!(!block.is_null());
                    ptr::write_bytes(block, round ^ size as u8, size);
                    live.push((block, size, round));
                }
                // Free every other block: the lists fill and are drawn on.
                let mut kept = Vec::new();
                for (i, entry) in live.drain(..).enumerate() {
                    if i % 2 == 0 {
                        cache.dealloc(entry.0, layout(entry.1, 1));
                    } else {
                        kept.push(entry);
                    }
                }
                live = kept;
            }
            // No block handed out twice: every live block still holds its own bytes.
            for &(block, size, round) in &live {
                let bytes = std::slice::from_raw_parts(block, size);
                assert!(
                    bytes.iter().all(|&b| b == round ^ size as u8),
                    "{size} bytes"
                );
            }
            let block = cache.alloc(layout(10, 1));
            ptr::copy_nonoverlapping(b"0123456789".as_ptr(), block, 10);
            // Into the next class, then into a large block, then back down.
            let block = cache.realloc(block, layout(10, 1), 40);
            assert_eq!(std::slice::from_raw_parts(block, 10), b"0123456789");
            let block = cache.realloc(block, layout(40, 1), 1000);
            assert_eq!(std::slice::from_raw_parts(block, 10), b"0123456789");
            let block = cache.realloc(block, layout(1000, 1), 5);
            assert_eq!(std::slice::from_raw_parts(block, 5), b"01234");
            cache.dealloc(block, layout(5, 1));
        }
    }

    #[test]
    fn a_full_list_hands_frees_back_to_the_inner_allocator() {
        let cache = BlockCache::new(Counting::default());
        unsafe {
            let blocks: Vec<_> = (0..MAX_CACHED + 10)
                .map(|_| cache.alloc(layout(64, 8)))
                .collect();
            for block in blocks {
                cache.dealloc(block, layout(64, 8));
            }
            assert_eq!(cache.inner.frees.get(), 10);
            assert_eq!((*cache.lists.get())[3].len, MAX_CACHED);
        }
    }

    #[test]
    fn large_and_overaligned_blocks_go_straight_through() {
        let cache = BlockCache::new(Counting::default());
        unsafe {
            for request in [layout(512, 1), layout(16, 16)] {
                let block = cache.alloc(request);
                cache.dealloc(block, request);
            }
            assert_eq!(cache.inner.allocs.get(), 2);
            assert_eq!(cache.inner.frees.get(), 2);
        }
    }
}
