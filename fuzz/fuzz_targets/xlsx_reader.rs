//! The XLSX reader on arbitrary bytes (mostly broken zips; the corpus seeds
//! real workbooks): rows or a clear error, never an abort or unbounded
//! memory. calamine itself can panic on a corrupt workbook (a shared-string
//! index out of bounds); quanyu runs the reader where a panic becomes "the
//! file is corrupt", so this target does the same and counts such panics
//! as refusals, not crashes.
#![no_main]
use std::sync::Once;

use libfuzzer_sys::fuzz_target;
use quanyu_files::read::{read_xlsx, XLSX_MAX_COLUMNS};

static QUIET: Once = Once::new();

fuzz_target!(|data: &[u8]| {
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.xlsx");
    std::fs::write(&path, data).unwrap();
    let mut widest = 0;
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read_xlsx(&path, None, &mut |_| Ok(()), &mut |_, cells| {
            widest = widest.max(cells.len());
            Ok(())
        })
    }));
    assert!(widest <= XLSX_MAX_COLUMNS, "a row of {widest} cells");
});
