//! Row readers: CSV in UTF-8, GBK or GB18030 (declared, or detected from a
//! BOM, UTF-8 validity and a statistical guess), quoted newlines included;
//! XLSX sheets read cell by cell (no whole-sheet load). Both hand each row to
//! a callback as text cells with its 1-based row number, so memory stays
//! flat however large the file.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use calamine::{DataRef, Reader, Xlsx};
use encoding_rs::Encoding as Enc;
use serde::Deserialize;

/// A text encoding of a CSV file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// Detect: a BOM, else UTF-8 when the head is valid UTF-8, else the
    /// likeliest Chinese encoding.
    #[default]
    Auto,
    /// UTF-8 (a BOM is skipped).
    Utf8,
    /// GBK (read as GB18030, its superset).
    Gbk,
    /// GB18030.
    Gb18030,
}

/// Why a file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// I/O.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// CSV structure.
    #[error("CSV: {0}")]
    Csv(#[from] csv::Error),
    /// XLSX structure.
    #[error("XLSX: {0}")]
    Xlsx(String),
    /// The file has no header row.
    #[error("the file has no header row")]
    NoHeader,
    /// The callback asked to stop.
    #[error("stopped: {0}")]
    Stopped(String),
}

/// Pick the encoding of `head` (the first bytes of a file).
pub fn detect(head: &[u8]) -> &'static Enc {
    if let Some((enc, _)) = Enc::for_bom(head) {
        return enc;
    }
    // A multi-byte character may be cut at the end of the head.
    let valid = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && e.valid_up_to() + 4 > head.len(),
    };
    if valid {
        return encoding_rs::UTF_8;
    }
    let mut det = chardetng::EncodingDetector::new();
    det.feed(head, false);
    let guess = det.guess(Some(b"cn"), true);
    if guess == encoding_rs::GBK || guess == encoding_rs::GB18030 {
        encoding_rs::GB18030
    } else {
        guess
    }
}

/// The encoding to read with (resolving `Auto` from the file's head).
pub fn resolve(path: &Path, declared: Encoding) -> Result<&'static Enc, ReadError> {
    Ok(match declared {
        Encoding::Utf8 => encoding_rs::UTF_8,
        Encoding::Gbk | Encoding::Gb18030 => encoding_rs::GB18030,
        Encoding::Auto => {
            let mut head = vec![0; 64 * 1024];
            let mut f = File::open(path)?;
            let mut n = 0;
            while n < head.len() {
                let k = f.read(&mut head[n..])?;
                if k == 0 {
                    break;
                }
                n += k;
            }
            head.truncate(n);
            detect(&head)
        }
    })
}

/// The longest CSV record read: a file with an unclosed quote makes the
/// rest of the file one record, which would otherwise be held whole.
pub const CSV_MAX_RECORD_BYTES: u64 = 16 * 1024 * 1024;

/// A reader that fails once more than `max` bytes were read since the
/// caller last reset `since` (at each record).
struct Bounded<R> {
    inner: R,
    since: std::rc::Rc<std::cell::Cell<u64>>,
    max: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let since = self.since.get() + n as u64;
        self.since.set(since);
        if since > self.max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "a record longer than {} MiB (an unclosed quote?)",
                    self.max / (1024 * 1024)
                ),
            ));
        }
        Ok(n)
    }
}

/// Read a CSV file: `header(cells)` once, then `row(n, cells)` per record
/// (`n` counts records, the header being 1, as a spreadsheet numbers rows:
/// a quoted cell spanning lines is one row, and a file ending its lines in
/// a bare CR still counts up; the `csv_reader` fuzz target found every row
/// of such a file numbered 1). A record with invalid bytes for the encoding
/// has U+FFFD in its cells; the caller rejects it.
pub fn read_csv(
    path: &Path,
    encoding: &'static Enc,
    delimiter: u8,
    header: &mut dyn FnMut(Vec<String>) -> Result<(), ReadError>,
    row: &mut dyn FnMut(u64, Vec<String>) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    let decoded = encoding_rs_io::DecodeReaderBytesBuilder::new()
        .encoding(Some(encoding))
        .bom_override(true)
        .build(BufReader::new(File::open(path)?));
    let since = std::rc::Rc::new(std::cell::Cell::new(0));
    let decoded = Bounded {
        inner: decoded,
        since: since.clone(),
        max: CSV_MAX_RECORD_BYTES,
    };
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(decoded);
    let mut rec = csv::StringRecord::new();
    let mut first = true;
    while rdr.read_record(&mut rec)? {
        since.set(0);
        let cells: Vec<String> = rec.iter().map(|c| c.trim().to_string()).collect();
        if first {
            first = false;
            header(cells)?;
            continue;
        }
        if cells.iter().all(String::is_empty) {
            continue; // blank line
        }
        let n = rec.position().map_or(0, |p| p.record() + 1);
        row(n, cells)?;
    }
    if first {
        return Err(ReadError::NoHeader);
    }
    Ok(())
}

fn cell_text(v: &DataRef<'_>) -> String {
    match v {
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        DataRef::Float(f) => f.to_string(),
        DataRef::String(s) => s.trim().to_string(),
        DataRef::SharedString(s) => s.trim().to_string(),
        DataRef::Bool(b) => b.to_string(),
        DataRef::DateTime(d) => match d.as_datetime() {
            Some(t) if d.is_datetime() => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            _ => d.as_f64().to_string(),
        },
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::Error(e) => format!("#ERROR {e}"),
        DataRef::Empty => String::new(),
    }
}

/// Excel's own limit: 16,384 columns (`A` to `XFD`). A cell claiming a
/// column beyond it (a hostile `ZZZZZZ1`) refuses the file instead of
/// growing a row to hundreds of millions of cells.
pub const XLSX_MAX_COLUMNS: usize = 16_384;

/// The most a workbook part other than a worksheet may hold unpacked
/// (shared strings, styles: calamine loads them whole, at about twice their
/// XML size in memory). 64 MiB of shared strings is some two million
/// distinct cells.
pub const XLSX_MAX_PART_BYTES: u64 = 64 << 20;

/// A worksheet unpacking to more than this, at more than
/// [`XLSX_MAX_SHEET_RATIO`] times its packed size, is a zip bomb: real sheets
/// pack 5 to 30 times, and calamine holds a cell's text whole.
pub const XLSX_BOMB_SHEET_BYTES: u64 = 256 << 20;

/// See [`XLSX_BOMB_SHEET_BYTES`].
pub const XLSX_MAX_SHEET_RATIO: u64 = 100;

/// Unpack every part of the workbook at `path` into nothing, counting bytes
/// (constant memory), and refuse the file before calamine loads anything
/// when a part is over [`XLSX_MAX_PART_BYTES`] or a sheet is a zip bomb.
/// The sizes the zip declares are not trusted: they are what a bomb lies
/// about.
pub fn check_xlsx_parts(path: &Path) -> Result<(), ReadError> {
    let mut zip = zip::ZipArchive::new(BufReader::new(File::open(path)?))
        .map_err(|e| ReadError::Xlsx(format!("not a readable workbook: {e}")))?;
    for i in 0..zip.len() {
        let mut part = zip
            .by_index(i)
            .map_err(|e| ReadError::Xlsx(format!("part {i}: {e}")))?;
        let name = part.name().to_string();
        let packed = part.compressed_size().max(1);
        let sheet = name.starts_with("xl/worksheets/");
        let limit = if sheet { u64::MAX } else { XLSX_MAX_PART_BYTES };
        let mut unpacked = 0u64;
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = match part.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n as u64,
                Err(e) => {
                    return Err(ReadError::Xlsx(format!(
                        "part {} is corrupt: {e}",
                        quoted_name(&name)
                    )))
                }
            };
            unpacked += n;
            if unpacked > limit {
                return Err(ReadError::Xlsx(format!(
                    "part {} unpacks to more than {} MiB (the limit for a workbook part): save the sheet as CSV",
                    quoted_name(&name),
                    limit >> 20
                )));
            }
            if sheet && unpacked > XLSX_BOMB_SHEET_BYTES && unpacked / packed > XLSX_MAX_SHEET_RATIO
            {
                return Err(ReadError::Xlsx(format!(
                    "sheet part {} unpacks to over {} times its packed size (a zip bomb?)",
                    quoted_name(&name),
                    XLSX_MAX_SHEET_RATIO
                )));
            }
        }
    }
    Ok(())
}

/// A part name as it may appear in an error: printable, at most 60 chars.
fn quoted_name(name: &str) -> String {
    let clean: String = name.chars().filter(|c| !c.is_control()).take(60).collect();
    format!("{clean:?}")
}

/// Read one sheet of an XLSX workbook (the first when `sheet` is `None`):
/// `header(cells)` for its first row, then `row(row_number, cells)` per row.
/// Excel does not store empty cells, so a row whose last cells are empty
/// is padded to the header's width. The workbook's parts are sized first
/// ([`check_xlsx_parts`]).
pub fn read_xlsx(
    path: &Path,
    sheet: Option<&str>,
    header: &mut dyn FnMut(Vec<String>) -> Result<(), ReadError>,
    row: &mut dyn FnMut(u64, Vec<String>) -> Result<(), ReadError>,
) -> Result<(), ReadError> {
    check_xlsx_parts(path)?;
    let mut wb: Xlsx<_> =
        Xlsx::new(BufReader::new(File::open(path)?)).map_err(|e| ReadError::Xlsx(e.to_string()))?;
    let name = match sheet {
        Some(s) => s.to_string(),
        None => wb
            .sheet_names()
            .first()
            .cloned()
            .ok_or_else(|| ReadError::Xlsx("the workbook has no sheet".into()))?,
    };
    let mut cells = wb
        .worksheet_cells_reader(&name)
        .map_err(|e| ReadError::Xlsx(format!("sheet {name:?}: {e}")))?;
    let mut current: Option<u32> = None;
    let mut values: Vec<String> = Vec::new();
    let mut seen_header = false;
    let mut width = 0;
    let mut flush =
        |r: u32, mut values: Vec<String>, seen_header: &mut bool| -> Result<(), ReadError> {
            if !*seen_header {
                *seen_header = true;
                width = values.len();
                return header(values);
            }
            if values.iter().all(String::is_empty) {
                return Ok(());
            }
            if values.len() < width {
                values.resize(width, String::new());
            }
            row(u64::from(r) + 1, values)
        };
    while let Some(cell) = cells
        .next_cell()
        .map_err(|e| ReadError::Xlsx(e.to_string()))?
    {
        let (r, c) = cell.get_position();
        if current != Some(r) {
            if let Some(prev) = current {
                flush(prev, std::mem::take(&mut values), &mut seen_header)?;
            }
            current = Some(r);
        }
        let c = c as usize;
        if c >= XLSX_MAX_COLUMNS {
            return Err(ReadError::Xlsx(format!(
                "row {}: a cell in column {} (Excel stops at {XLSX_MAX_COLUMNS})",
                r + 1,
                c + 1
            )));
        }
        if values.len() <= c {
            values.resize(c + 1, String::new());
        }
        values[c] = cell_text(cell.get_value());
    }
    if let Some(prev) = current {
        flush(prev, values, &mut seen_header)?;
    }
    if !seen_header {
        return Err(ReadError::NoHeader);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_utf8_gbk_and_boms() {
        assert_eq!(detect("通话ID,被叫号码\n".as_bytes()), encoding_rs::UTF_8);
        let (gbk, _, _) =
            encoding_rs::GBK.encode("通话ID,被叫号码,通话状态\n已接通,未接,拒接,占线\n");
        assert_eq!(detect(&gbk), encoding_rs::GB18030);
        assert_eq!(detect(b"\xEF\xBB\xBFa,b"), encoding_rs::UTF_8);
        // A head cut inside a UTF-8 character is still UTF-8.
        let s = "被叫号码".as_bytes();
        assert_eq!(detect(&s[..s.len() - 1]), encoding_rs::UTF_8);
    }

    /// An unclosed quote makes the rest of a file one record: reading
    /// stops with a clear error after 16 MiB instead of holding it all;
    /// records before it were read, and a long but closed cell is fine.
    /// Found by the `csv_reader` fuzz target: lines ended by a bare CR.
    #[test]
    fn rows_are_numbered_by_record_whatever_ends_the_lines() {
        let dir = tempfile::tempdir().unwrap();
        for text in [
            "a,b\r1,2\r3,4\r",
            "a,b\n1,\"x\ny\"\n3,4\n",
            "a,b\r\n1,2\r\n3,4",
        ] {
            let path = dir.path().join("f.csv");
            std::fs::write(&path, text).unwrap();
            let mut numbers = Vec::new();
            read_csv(
                &path,
                encoding_rs::UTF_8,
                b',',
                &mut |_| Ok(()),
                &mut |n, _| {
                    numbers.push(n);
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(numbers, [2, 3], "{text:?}");
        }
    }

    #[test]
    fn a_csv_with_an_unclosed_quote_stops_at_the_record_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unclosed.csv");
        let mut text = String::from("a,b\n1,2\n3,\"");
        text.push_str(&"x,y\n".repeat(6 * 1024 * 1024));
        std::fs::write(&path, &text).unwrap();
        let mut rows = 0;
        let err = read_csv(
            &path,
            encoding_rs::UTF_8,
            b',',
            &mut |_| Ok(()),
            &mut |_, _| {
                rows += 1;
                Ok(())
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unclosed quote"), "{err}");
        assert_eq!(rows, 1);
        let path = dir.path().join("long.csv");
        let long = "z".repeat(10 * 1024 * 1024);
        std::fs::write(&path, format!("a,b\n1,\"{long}\"\n2,3\n")).unwrap();
        let mut cells = Vec::new();
        read_csv(
            &path,
            encoding_rs::UTF_8,
            b',',
            &mut |_| Ok(()),
            &mut |_, c| {
                cells.push(c[1].len());
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(cells, [long.len(), 1]);
    }

    /// A workbook with a 5-column header, a full row, and a row whose last
    /// two cells are empty (Excel does not store them).
    fn workbook(path: &Path) {
        let mut wb = rust_xlsxwriter::Workbook::new();
        let ws = wb.add_worksheet();
        for c in 0..5u16 {
            ws.write_string(0, c, format!("h{c}")).unwrap();
            ws.write_string(1, c, format!("v{c}")).unwrap();
        }
        for c in 0..3u16 {
            ws.write_string(2, c, format!("w{c}")).unwrap();
        }
        wb.save(path).unwrap();
    }

    fn rows(path: &Path) -> Result<Vec<Vec<String>>, ReadError> {
        let out = std::cell::RefCell::new(Vec::new());
        read_xlsx(
            path,
            None,
            &mut |h| {
                out.borrow_mut().push(h);
                Ok(())
            },
            &mut |_, r| {
                out.borrow_mut().push(r);
                Ok(())
            },
        )?;
        Ok(out.into_inner())
    }

    #[test]
    fn xlsx_rows_with_empty_last_cells_are_padded_to_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.xlsx");
        workbook(&path);
        let rows = rows(&path).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2], ["w0", "w1", "w2", "", ""]);
    }
}
