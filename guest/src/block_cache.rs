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
//! blocks, as many as one batch can free at once; beyond that frees go straight through,
//! so the cache keeps at most ~0.5 MiB of dlmalloc chunks that dlmalloc would otherwise
//! have kept in its own free lists (a component's memory never shrinks either way). When the
//! inner allocator fails (the host's memory cap), the cache first gives every cached block
//! back and tries once more; if that fails too, the null is passed on.
//!
//! Every block handed out is a real chunk of the inner allocator (never a slice of a
//! bigger one): wasi-libc frees some memory the host lowered through `cabi_realloc` with
//! its own `free()` (the environment list, for one), which is only sound that way.
//!
//! The cache is the `block-cache` feature, on by default. To measure what it saves, build
//! the component without it and load that build in place of the embedded one:
//!
//! ```text
//! CARGO_TARGET_DIR=target/guest-plain cargo build -p jetstream-pubsub-guest \
//!     --target wasm32-wasip2 --profile guest-release --no-default-features
//! jetstream-pubsub bench --only 3 --rounds 5 \
//!     --wasm target/guest-plain/wasm32-wasip2/guest-release/jetstream_pubsub_guest.wasm
//! ```

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;
use std::ptr;

/// Block sizes of the classes; a request is served from the first that fits it.
const CLASS_SIZES: [usize; 6] = [8, 16, 32, 64, 128, 256];
/// Alignment of every cached block. Rust's `System` on wasm32 calls plain `malloc` for an
/// alignment up to 8 (its `MIN_ALIGN`) that does not exceed the size, which every class
/// layout meets. Requests aligned more strictly go straight through.
const CLASS_ALIGN: usize = 8;
/// Freed blocks a class keeps at most: the host's largest batch (`max_batch`, 1,024
/// deliveries or bulk entries), so a batch's blocks all come back for the next one. With
/// 128, a bulk publish of 256 entries sent half its payload blocks through dlmalloc
/// (counted with callgrind, docs/benchmarks.md).
const MAX_CACHED: usize = 1_024;

// A freed block holds the next one's address, and `class_of` computes the class as
// `ilog2(size - 1) - 2`: both hold only for pointer-sized, pointer-aligned powers of two
// from 8 on.
const _: () = {
    assert!(CLASS_ALIGN >= std::mem::align_of::<*mut u8>());
    assert!(CLASS_SIZES[0] >= std::mem::size_of::<*mut u8>());
    let mut class = 0;
    while class < CLASS_SIZES.len() {
        assert!(CLASS_SIZES[class] == 8 << class);
        class += 1;
    }
};

/// One size class: a singly linked list threaded through the freed blocks themselves.
#[derive(Clone, Copy)]
struct FreeList {
    head: *mut u8,
    len: usize,
}

/// Small-block cache over `A`. For single-threaded use only: it is `Sync` (and so can be
/// the global allocator) only on wasm without the atomics feature, which has no threads.
pub struct BlockCache<A> {
    lists: UnsafeCell<[FreeList; CLASS_SIZES.len()]>,
    inner: A,
}

// SAFETY: on wasm without atomics there is one thread, so no list is ever touched
// concurrently. Elsewhere the type is not `Sync` and cannot be shared between threads.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
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
    // SAFETY: every class size is non-zero and the alignment a power of two (see the
    // assertions above); the size rounded up to it cannot overflow.
    unsafe { Layout::from_size_align_unchecked(CLASS_SIZES[class], CLASS_ALIGN) }
}

impl<A: GlobalAlloc> BlockCache<A> {
    /// `request` to the inner allocator. Should it fail (null), the cached blocks go back
    /// to it (they may be what it lacks, or keep its free space from merging) and it is
    /// asked once more.
    fn ask_inner(&self, request: impl Fn() -> *mut u8) -> *mut u8 {
        let block = request();
        if !block.is_null() || !self.release_cached() {
            return block;
        }
        request()
    }

    /// Gives every cached block back to the inner allocator; false when none was cached.
    fn release_cached(&self) -> bool {
        let mut released = false;
        for class in 0..CLASS_SIZES.len() {
            // SAFETY: single-threaded (see `Sync`); no reference to the lists outlives
            // this loop's body.
            let list = unsafe { &mut (*self.lists.get())[class] };
            while !list.head.is_null() {
                let block = list.head;
                // SAFETY: cached blocks hold the next one's address; each came from the
                // inner allocator with the class layout.
                unsafe {
                    list.head = block.cast::<*mut u8>().read();
                    self.inner.dealloc(block, class_layout(class));
                }
                list.len -= 1;
                released = true;
            }
        }
        released
    }
}

unsafe impl<A: GlobalAlloc> GlobalAlloc for BlockCache<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(class) = class_of(layout) else {
            // SAFETY: the caller's contract, passed on.
            return self.ask_inner(|| unsafe { self.inner.alloc(layout) });
        };
        // SAFETY: single-threaded (see `Sync`), and no reference to the lists outlives
        // this call.
        let list = unsafe { &mut (*self.lists.get())[class] };
        if list.head.is_null() {
            // SAFETY: a valid, non-zero-size layout.
            return self.ask_inner(|| unsafe { self.inner.alloc(class_layout(class)) });
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
            (None, None) => {
                self.ask_inner(|| unsafe { self.inner.realloc(block, layout, new_size) })
            }
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
    use std::cell::{Cell, RefCell};
    use std::collections::HashMap;

    use super::*;

    /// The system allocator, recording every live block's layout: a block must come back
    /// with exactly the layout it was allocated with. `fail` makes it refuse allocations.
    #[derive(Default)]
    struct Recording {
        live: RefCell<HashMap<usize, Layout>>,
        allocs: Cell<usize>,
        frees: Cell<usize>,
        fail: Cell<bool>,
    }

    impl Recording {
        fn layout_of(&self, block: *mut u8) -> Option<Layout> {
            self.live.borrow().get(&(block as usize)).copied()
        }
    }

    unsafe impl GlobalAlloc for Recording {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if self.fail.get() {
                return ptr::null_mut();
            }
            self.allocs.set(self.allocs.get() + 1);
            let block = unsafe { System.alloc(layout) };
            self.live.borrow_mut().insert(block as usize, layout);
            block
        }

        unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
            let recorded = self.live.borrow_mut().remove(&(block as usize));
            assert_eq!(recorded, Some(layout), "freed with another layout");
            self.frees.set(self.frees.get() + 1);
            unsafe { System.dealloc(block, layout) }
        }

        unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            assert_eq!(
                self.layout_of(block),
                Some(layout),
                "reallocated with another layout"
            );
            if self.fail.get() {
                return ptr::null_mut();
            }
            let moved = unsafe { System.realloc(block, layout, new_size) };
            let mut live = self.live.borrow_mut();
            live.remove(&(block as usize));
            let new_layout = Layout::from_size_align(new_size, layout.align()).unwrap();
            live.insert(moved as usize, new_layout);
            moved
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
            (16, 8, Some(1)),
            (17, 1, Some(2)),
            (32, 8, Some(2)),
            (33, 1, Some(3)),
            (64, 1, Some(3)),
            (65, 1, Some(4)),
            (128, 8, Some(4)),
            (129, 1, Some(5)),
            (256, 8, Some(5)),
            (257, 1, None),
            (1 << 30, 1, None),
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
    fn a_small_block_comes_from_the_inner_allocator_with_its_class_layout() {
        let cache = BlockCache::new(Recording::default());
        unsafe {
            let block = cache.alloc(layout(20, 1));
            assert_eq!(cache.inner.layout_of(block), Some(layout(32, 8)));
            // Reused for a bigger request of its class, every byte of it is usable.
            cache.dealloc(block, layout(20, 1));
            let again = cache.alloc(layout(32, 8));
            assert_eq!(again, block);
            ptr::write_bytes(again, 0xab, 32);
            assert_eq!(cache.inner.allocs.get(), 1);
            assert_eq!(cache.inner.frees.get(), 0);
            cache.dealloc(again, layout(32, 8));
        }
    }

    #[test]
    fn blocks_hold_their_bytes_and_grow_across_classes() {
        let cache = BlockCache::new(Recording::default());
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
            // Within its class the block stays where it is.
            assert_eq!(cache.realloc(block, layout(10, 1), 16), block);
            // Into the next class, then into a large block, a larger one, then back down.
            let block = cache.realloc(block, layout(16, 1), 40);
            assert_eq!(std::slice::from_raw_parts(block, 10), b"0123456789");
            let block = cache.realloc(block, layout(40, 1), 1000);
            assert_eq!(std::slice::from_raw_parts(block, 10), b"0123456789");
            let block = cache.realloc(block, layout(1000, 1), 5000);
            assert_eq!(std::slice::from_raw_parts(block, 10), b"0123456789");
            let block = cache.realloc(block, layout(5000, 1), 5);
            assert_eq!(std::slice::from_raw_parts(block, 5), b"01234");
            cache.dealloc(block, layout(5, 1));
            for (block, size, _) in live {
                cache.dealloc(block, layout(size, 1));
            }
        }
    }

    #[test]
    fn a_recycled_block_is_zeroed_when_asked() {
        let cache = BlockCache::new(Recording::default());
        unsafe {
            let block = cache.alloc(layout(24, 8));
            ptr::write_bytes(block, 0xff, 24);
            cache.dealloc(block, layout(24, 8));
            let zeroed = cache.alloc_zeroed(layout(24, 8));
            assert_eq!(zeroed, block);
            assert!(
                std::slice::from_raw_parts(zeroed, 24)
                    .iter()
                    .all(|&b| b == 0)
            );
            cache.dealloc(zeroed, layout(24, 8));
        }
    }

    #[test]
    fn a_full_list_hands_frees_back_with_the_class_layout() {
        let cache = BlockCache::new(Recording::default());
        unsafe {
            let blocks: Vec<_> = (0..MAX_CACHED + 10)
                .map(|_| cache.alloc(layout(40, 1)))
                .collect();
            for block in blocks {
                cache.dealloc(block, layout(40, 1));
            }
            // The recording allocator asserts the (64, 8) layout on each of those frees.
            assert_eq!(cache.inner.frees.get(), 10);
            assert_eq!((*cache.lists.get())[3].len, MAX_CACHED);
        }
    }

    #[test]
    fn large_and_overaligned_blocks_go_straight_through() {
        let cache = BlockCache::new(Recording::default());
        unsafe {
            for request in [layout(512, 1), layout(16, 16)] {
                let block = cache.alloc(request);
                assert_eq!(cache.inner.layout_of(block), Some(request));
                cache.dealloc(block, request);
            }
            assert_eq!(cache.inner.allocs.get(), 2);
            assert_eq!(cache.inner.frees.get(), 2);
        }
    }

    #[test]
    fn when_the_inner_allocator_fails_the_cache_gives_back_and_then_passes_the_null_on() {
        let cache = BlockCache::new(Recording::default());
        unsafe {
            let small = cache.alloc(layout(8, 1));
            let large = cache.alloc(layout(1000, 1));
            cache.dealloc(small, layout(8, 1));
            cache.inner.fail.set(true);
            // A cached block of the class still serves, the memory cap notwithstanding.
            assert_eq!(cache.alloc(layout(8, 1)), small);
            cache.dealloc(small, layout(8, 1));
            // A large request fails: the cache released its block first.
            assert!(cache.alloc(layout(2000, 1)).is_null());
            assert_eq!((*cache.lists.get())[0].len, 0);
            assert_eq!(cache.inner.frees.get(), 1);
            // Moving a block fails without losing it: it still holds its bytes.
            ptr::write_bytes(large, 7, 1000);
            assert!(cache.realloc(large, layout(1000, 1), 100).is_null());
            assert!(cache.realloc(large, layout(1000, 1), 3000).is_null());
            assert!(
                std::slice::from_raw_parts(large, 1000)
                    .iter()
                    .all(|&b| b == 7)
            );
            cache.inner.fail.set(false);
            cache.dealloc(large, layout(1000, 1));
            assert!(cache.inner.live.borrow().is_empty());
        }
    }
}
