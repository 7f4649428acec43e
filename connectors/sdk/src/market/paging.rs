//! How an order list pages.

/// A guard against a gateway that never says "no more pages": a window
/// that needs more pages than this fails with a clear error (use shorter
/// windows) instead of paging forever.
pub const MAX_PAGES_PER_WINDOW: u64 = 100_000;

/// How a platform's order list is paged within one window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// Numbered pages, each answer carrying the window's total. The first
    /// page is read (it gives the total); when there are more, pages are
    /// read from the last back to the first: the list is newest first, so
    /// an order modified meanwhile moves to the front and shifts unread
    /// orders towards us, never past us. Records seen twice are skipped.
    Backward {
        /// The number of the first page (0 or 1).
        first: u64,
        /// Records per page, as asked for.
        size: u32,
        /// Pages fetched and mapped at once (handed over in page order).
        ahead: usize,
    },
    /// A cursor the platform hands back with each page until it ends.
    Cursor,
}

impl Paging {
    /// Backward paging from page `first`, `size` records a page, one page at a time.
    pub fn backward(first: u64, size: u32) -> Self {
        Paging::Backward {
            first,
            size,
            ahead: 1,
        }
    }
}
