//! The cell parsers of declarative imports: dates (Chinese formats, Excel
//! serials), yuan, integers and durations. No panic, no overflow, and what
//! they accept is in range.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quanyu_connector_sdk::declarative::cells;

fuzz_target!(|data: &[u8]| {
    let cell = String::from_utf8_lossy(data);
    let _ = cells::parse_datetime(&cell);
    let _ = cells::parse_yuan(&cell);
    let _ = cells::parse_int(&cell);
    if let Ok(secs) = cells::parse_duration(&cell) {
        assert!((0..=366 * 86_400).contains(&secs), "{cell:?} → {secs}");
    }
    // At most 40 characters of the cell, each escaped to at most 10.
    let q = cells::quoted(&cell);
    assert!(q.len() <= 420, "{} bytes", q.len());
    if let Ok(days) = cell.trim().parse::<f64>() {
        let _ = cells::excel_serial(days);
    }
});
