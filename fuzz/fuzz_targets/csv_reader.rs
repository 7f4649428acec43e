//! The CSV reader on arbitrary bytes, in every encoding it takes: rows or a
//! clear error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use quanyu_files::read::{detect, read_csv};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.csv");
    std::fs::write(&path, data).unwrap();
    for enc in [detect(data), encoding_rs::UTF_8, encoding_rs::GB18030] {
        let mut last_row = 1;
        let _ = read_csv(&path, enc, b',', &mut |_| Ok(()), &mut |n, _cells| {
            // Rows after the header, numbered upwards.
            assert!(n > last_row, "row {n} after row {last_row}");
            last_row = n;
            Ok(())
        });
    }
});
