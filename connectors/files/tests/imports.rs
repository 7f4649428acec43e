//! File imports end to end through the connector contract: a GBK call log
//! with Chinese headers, a quoted newline and broken rows; an XLSX of card
//! scans with real Excel dates; the same file imported twice.

use std::path::Path;

use quanyu_connector_sdk::conformance::MemoryLake;
use quanyu_files::{file_stream, Encoding, ImportConfig};

/// An `[[imports]]` entry as a user writes it.
fn import_config(toml_text: &str) -> ImportConfig {
    toml::from_str(toml_text).expect("a valid import config")
}

fn calls_config() -> ImportConfig {
    import_config(
        r#"
        name = "baiying-calls"
        table = "touchpoints"
        values = { channel = "ai_call", event_type = "call" }
        cost = { per_event_fen = 5, per_minute_fen = 8 }
        [columns]
        event_id = "通话ID"
        campaign = "任务名称"
        phone = "被叫号码"
        occurred_at = "呼叫时间"
        duration_secs = "通话时长(秒)"
        intent_level = "意向等级"
        [columns.outcome]
        column = "通话状态"
        parse = "text"
        map = { "已接通" = "connected", "未接" = "no_answer", "拒接" = "refused", "占线" = "busy", "关机" = "power_off", "空号" = "vacant_number", "*" = "unreachable" }
        "#,
    )
}

const CALLS: &str = "通话ID,任务名称,被叫号码,呼叫时间,通话时长(秒),通话状态,意向等级,备注\r\n\
C001,618唤醒,13912345678,2024-06-01 10:00:05,65,已接通,A级(有意向),\"第一行\n第二行\"\r\n\
C002,618唤醒,+86 139 1234 5679,2024/6/1 10:02,0,未接,F级,\r\n\
C003,618唤醒,13912345680,昨天下午,30,已接通,B级,\r\n\
C004,618唤醒,13912345681,2024-06-01 10:09:00,12,挂断了,C级,\r\n\
C005,618唤醒\r\n\
C006,618唤醒,13912345682,2024年6月1日 10时20分,1分05秒,关机,E级,\r\n";

async fn import(cfg: &ImportConfig, path: &Path, lake: &mut MemoryLake) {
    let stream = file_stream(cfg, path).unwrap();
    let errors = lake.run(&[stream], None).await.unwrap();
    assert!(errors.is_empty(), "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gbk_call_log_lands_with_broken_rows_quarantined_and_imports_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calls.csv");
    let (gbk, _, bad) = encoding_rs::GBK.encode(CALLS);
    assert!(!bad);
    std::fs::write(&path, &gbk).unwrap();
    let cfg = calls_config();
    let mut lake = MemoryLake::default();
    import(&cfg, &path, &mut lake).await;
    let keys: Vec<String> = lake.keys().into_iter().map(|k| k[1].clone()).collect();
    // C004's unknown status falls to the `*` mapping; C003's date and
    // C005's short row are rejected (rows numbered as a spreadsheet shows
    // them: the header is row 1, a quoted newline stays in its row).
    assert_eq!(keys, ["C001", "C002", "C004", "C006"]);
    assert_eq!(lake.quarantine.len(), 2, "{:?}", lake.quarantine);
    let reasons: Vec<&str> = lake.quarantine.iter().map(|q| q.reason.as_str()).collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("row 4") && r.contains("occurred_at")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("row 6") && r.contains("cells")),
        "{reasons:?}"
    );
    for q in &lake.quarantine {
        assert!(q.raw.contains("file:calls.csv"));
        assert!(
            quanyu_schemas::phone::find_phones(&q.raw).is_empty(),
            "{}",
            q.raw
        );
    }
    // The same bytes under another name are the same import: nothing new.
    let again = dir.path().join("calls-copy.csv");
    std::fs::write(&again, &gbk).unwrap();
    let before = lake.rows_received;
    import(&cfg, &again, &mut lake).await;
    assert_eq!(lake.rows_received, before, "imported once by content hash");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utf8_bom_and_declared_encodings_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = calls_config();
    let mut got = Vec::new();
    for (name, enc) in [
        ("bom.csv", Encoding::Auto),
        ("utf8.csv", Encoding::Utf8),
        ("gb18030.csv", Encoding::Gb18030),
    ] {
        let path = dir.path().join(name);
        // Each file gets one more, distinct row.
        let text = format!("{CALLS}C9{name},x,13912345699,2024-06-02 10:00,1,已接通,A,\r\n");
        let bytes = match name {
            "bom.csv" => [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat(),
            "utf8.csv" => text.into_bytes(),
            _ => encoding_rs::GB18030.encode(&text).0.to_vec(),
        };
        std::fs::write(&path, bytes).unwrap();
        cfg.encoding = enc;
        let mut lake = MemoryLake::default();
        import(&cfg, &path, &mut lake).await;
        got.push((lake.keys().len(), lake.quarantine.len()));
    }
    assert_eq!(got, vec![(5, 2), (5, 2), (5, 2)]);

    // GBK bytes in a file declared UTF-8: the rows are quarantined, not garbled.
    let path = dir.path().join("wrong.csv");
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(
        "通话ID,任务名称,被叫号码,呼叫时间,通话时长(秒),通话状态,意向等级,备注\r\n".as_bytes(),
    );
    bytes.extend_from_slice(
        &encoding_rs::GBK
            .encode("C1,任务,13912345678,2024-06-01 10:00,1,已接通,A,\r\n")
            .0,
    );
    std::fs::write(&path, bytes).unwrap();
    cfg.encoding = Encoding::Utf8;
    let mut lake = MemoryLake::default();
    import(&cfg, &path, &mut lake).await;
    assert_eq!(lake.keys().len(), 0);
    assert!(
        lake.quarantine[0].reason.contains("encoding"),
        "{}",
        lake.quarantine[0].reason
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xlsx_card_scans_with_excel_dates() {
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scans.xlsx");
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    let date = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    for (c, h) in [
        "扫码时间",
        "卡片编码",
        "订单号",
        "企业微信成员",
        "外部联系人ID",
    ]
    .iter()
    .enumerate()
    {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    for r in 1..=3u32 {
        let t = ExcelDateTime::from_ymd(2024, 6, r as u8)
            .unwrap()
            .and_hms(9, 30, 0)
            .unwrap();
        ws.write_datetime_with_format(r, 0, &t, &date).unwrap();
        ws.write_string(r, 1, format!("tb_31000000000000{r}"))
            .unwrap();
        ws.write_number(r, 2, 3_100_000_000_000_000.0 + f64::from(r))
            .unwrap();
        ws.write_string(r, 3, "zhangsan").unwrap();
        ws.write_string(r, 4, format!("wmCard{r}")).unwrap();
    }
    ws.write_string(4, 0, "not a date").unwrap();
    ws.write_string(4, 1, "tb_x").unwrap();
    wb.save(&path).unwrap();

    let cfg = import_config(
        r#"
        name = "card-scans"
        table = "touchpoints"
        values = { channel = "package_card", event_type = "scan", order_channel = "taobao" }
        columns = { occurred_at = "扫码时间", state = "卡片编码", order_id = "订单号", owner_userid = "企业微信成员", external_userid = "外部联系人ID" }
        "#,
    );
    let mut lake = MemoryLake::default();
    import(&cfg, &path, &mut lake).await;
    assert_eq!(lake.keys().len(), 3, "{:?}", lake.quarantine);
    assert_eq!(lake.quarantine.len(), 1);
    assert!(
        lake.quarantine[0].reason.contains("row 5"),
        "{}",
        lake.quarantine[0].reason
    );
    // 2024-06-01 09:30 Beijing = 01:30 UTC.
    let first = lake.rows.values().min().copied().unwrap();
    assert_eq!(
        chrono::DateTime::from_timestamp_micros(first)
            .unwrap()
            .to_rfc3339(),
        "2024-06-01T01:30:00+00:00"
    );
}

/// A workbook whose sheet points past its shared strings (a corrupt or
/// hostile file): the import of that file fails with a clear error, the
/// process and the run go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_xlsx_with_a_shared_string_out_of_bounds_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.xlsx");
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for (c, h) in ["通话ID", "被叫号码", "呼叫时间"].iter().enumerate() {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    ws.write_string(1, 0, "C1").unwrap();
    ws.write_string(1, 1, "13912340101").unwrap();
    ws.write_string(1, 2, "2024-06-01 10:00:00").unwrap();
    wb.save(&good).unwrap();
    let bad = dir.path().join("calls.xlsx");
    rewrite_sheet(&good, &bad, |xml| {
        xml.replace("t=\"s\"><v>4</v>", "t=\"s\"><v>99999</v>")
    });
    let mut cfg = calls_config();
    cfg.columns
        .retain(|f, _| ["event_id", "phone", "occurred_at"].contains(&f.as_str()));
    let mut lake = MemoryLake::default();
    let stream = file_stream(&cfg, &bad).unwrap();
    let err = match lake.run(&[stream], None).await {
        Err(e) => format!("{e:?}"),
        Ok(errors) => {
            assert_eq!(errors.len(), 1, "{errors:?}");
            format!("{:?}", errors[0])
        }
    };
    assert!(err.contains("the file is corrupt"), "{err}");
    assert!(!err.contains("13912340101"), "{err}");
}

/// Copy the workbook `from` to `to` with its sheet XML passed through
/// `edit` (a crafted, hostile file); panics when `edit` changed nothing.
fn rewrite_sheet(from: &Path, to: &Path, edit: impl Fn(&str) -> String) {
    use std::io::{Read, Write};
    let mut src = zip::ZipArchive::new(std::fs::File::open(from).unwrap()).unwrap();
    let mut dst = zip::ZipWriter::new(std::fs::File::create(to).unwrap());
    let mut changed = false;
    for i in 0..src.len() {
        let mut entry = src.by_index(i).unwrap();
        let name = entry.name().to_string();
        let mut body = Vec::new();
        entry.read_to_end(&mut body).unwrap();
        if name.starts_with("xl/worksheets/sheet") {
            let xml = String::from_utf8(body).unwrap();
            let edited = edit(&xml);
            changed |= edited != xml;
            body = edited.into_bytes();
        }
        dst.start_file(name, zip::write::SimpleFileOptions::default())
            .unwrap();
        dst.write_all(&body).unwrap();
    }
    dst.finish().unwrap();
    assert!(changed, "the sheet was not edited");
}

/// Copy the workbook `from` to `to` with the part named `part` replaced by
/// `body` written in 1 MiB pieces (hundreds of MiB without holding them).
fn replace_part(from: &Path, to: &Path, part: &str, body: &mut dyn FnMut(&mut dyn std::io::Write)) {
    use std::io::{Read, Write};
    let mut src = zip::ZipArchive::new(std::fs::File::open(from).unwrap()).unwrap();
    let mut dst = zip::ZipWriter::new(std::fs::File::create(to).unwrap());
    let opts = zip::write::SimpleFileOptions::default().large_file(true);
    for i in 0..src.len() {
        let mut entry = src.by_index(i).unwrap();
        let name = entry.name().to_string();
        dst.start_file(name.as_str(), opts).unwrap();
        if name == part {
            body(&mut dst);
        } else {
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf).unwrap();
            dst.write_all(&buf).unwrap();
        }
    }
    dst.finish().unwrap();
}

/// A few KB that unpack to hundreds of MiB: shared strings beyond the part
/// limit, and a sheet whose one cell is a 300 MiB run of one letter, are
/// refused by their unpacked size before calamine loads them.
#[test]
fn an_xlsx_that_unpacks_to_hundreds_of_mib_is_refused_before_loading() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("w.xlsx");
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.write_string(0, 0, "通话ID").unwrap();
    ws.write_string(1, 0, "C1").unwrap();
    wb.save(&good).unwrap();
    let strings = dir.path().join("strings.xlsx");
    replace_part(&good, &strings, "xl/sharedStrings.xml", &mut |w| {
        w.write_all(br#"<?xml version="1.0" encoding="UTF-8"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">"#).unwrap();
        let chunk = "<si><t>x</t></si>".repeat(60_000);
        for _ in 0..80 {
            w.write_all(chunk.as_bytes()).unwrap();
        }
        w.write_all(b"</sst>").unwrap();
    });
    assert!(std::fs::metadata(&strings).unwrap().len() < 2 << 20);
    let err = quanyu_files::read::check_xlsx_parts(&strings)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sharedStrings.xml") && err.contains("64 MiB"),
        "{err}"
    );

    let bomb = dir.path().join("bomb.xlsx");
    replace_part(&good, &bomb, "xl/worksheets/sheet1.xml", &mut |w| {
        w.write_all(br#"<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>"#).unwrap();
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..300 {
            w.write_all(&chunk).unwrap();
        }
        w.write_all(b"</t></is></c></row></sheetData></worksheet>")
            .unwrap();
    });
    let err = quanyu_files::read::check_xlsx_parts(&bomb)
        .unwrap_err()
        .to_string();
    assert!(err.contains("zip bomb"), "{err}");
    // The workbook they were made from passes.
    quanyu_files::read::check_xlsx_parts(&good).unwrap();
}

/// One cell moved to column `ZZZZZZ` (321 million): the file is refused
/// with a clear error, without allocating a row that wide.
#[test]
fn an_xlsx_cell_beyond_excels_last_column_refuses_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("w.xlsx");
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    for c in 0..5u16 {
        ws.write_string(0, c, format!("h{c}")).unwrap();
        ws.write_string(1, c, format!("v{c}")).unwrap();
    }
    wb.save(&good).unwrap();
    let bad = dir.path().join("zzzzzz.xlsx");
    rewrite_sheet(&good, &bad, |xml| {
        xml.replacen("r=\"C2\"", "r=\"ZZZZZZ2\"", 1)
    });
    let err = quanyu_files::read::read_xlsx(&bad, None, &mut |_| Ok(()), &mut |_, _| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("321272406") && err.contains("16384"), "{err}");
}
