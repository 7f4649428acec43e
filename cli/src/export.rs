//! `quanyu export recall`: the recall list as the file an AI-call vendor
//! (or the reps) load: CSV (UTF-8 with a byte-order mark, or GBK for
//! Excel on Chinese Windows) or XLSX. It holds what the lake holds: ids,
//! orders and figures, never a phone (a vendor calls through the
//! platform's privacy number for the order).

use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;

use crate::lake::Lake;

/// The file format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// Comma-separated values.
    Csv,
    /// An Excel workbook.
    Xlsx,
}

/// The text encoding of a CSV export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TextEncoding {
    /// UTF-8 with a byte-order mark (Excel reads it as UTF-8).
    Utf8,
    /// GBK (what Excel on Chinese Windows and most vendors' tools expect).
    Gbk,
}

/// Who the exported customers are routed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Route {
    /// Customers no rep holds: the AI-call vendor's list.
    AiCall,
    /// Customers a rep still holds as a WeCom contact.
    Rep,
}

/// What `quanyu export recall` writes.
#[derive(Debug, Clone)]
pub struct RecallExport {
    /// CSV or XLSX.
    pub format: ExportFormat,
    /// The CSV's encoding.
    pub encoding: TextEncoding,
    /// Only the customers routed here (all when unset).
    pub route: Option<Route>,
    /// Also the suppressed customers, with the reason.
    pub include_suppressed: bool,
}

/// One exported column: its header, the SQL text of its cell, and whether
/// the cell is a number (written as a number in XLSX).
const COLUMNS: &[(&str, &str, bool)] = &[
    ("客户ID", "unified_id", false),
    ("呼叫平台", "call_channel", false),
    ("店铺ID", "call_shop_id", false),
    ("订单号", "call_order_id", false),
    ("各平台最近订单", "array_to_string(platform_orders, ';')", false),
    ("最近购买时间", "to_char(last_order_at + INTERVAL '8 hours', '%Y-%m-%d %H:%M:%S')", false),
    ("距今天数", "CAST(days_since_last AS VARCHAR)", true),
    ("订单数", "CAST(orders AS VARCHAR)", true),
    ("累计实付(元)", "CAST(gmv_fen / 100 AS VARCHAR) || '.' || lpad(CAST(gmv_fen % 100 AS VARCHAR), 2, '0')", true),
    ("客单价(元)", "CAST(avg_order_fen / 100 AS VARCHAR) || '.' || lpad(CAST(avg_order_fen % 100 AS VARCHAR), 2, '0')", true),
    ("预计复购日", "CAST(predicted_next_day AS VARCHAR)", false),
    ("价值分层", "value_band", false),
    ("企微归属", "owner_userid", false),
    ("跟进方式", "route", false),
    ("屏蔽原因", "suppress_reason", false),
];

/// The query of the exported rows: most valuable first.
fn recall_query(opts: &RecallExport) -> String {
    let cells = COLUMNS
        .iter()
        .map(|(_, sql, _)| format!("COALESCE({sql}, '')"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut filters = vec!["true".to_string()];
    if !opts.include_suppressed {
        filters.push("NOT suppressed".into());
    }
    match opts.route {
        Some(Route::AiCall) => filters.push("route = 'ai_call'".into()),
        Some(Route::Rep) => filters.push("route = 'rep'".into()),
        None => {}
    }
    format!(
        "SELECT {cells} FROM recall_list WHERE {}
         ORDER BY CASE value_band WHEN 'high' THEN 0 WHEN 'mid' THEN 1 ELSE 2 END, gmv_fen DESC, unified_id",
        filters.join(" AND ")
    )
}

/// Write the recall list of `lake` to `out`; returns how many customers.
pub async fn export_recall(lake: &Lake, opts: &RecallExport, out: &Path) -> Result<usize> {
    if opts.format == ExportFormat::Xlsx && opts.encoding != TextEncoding::Utf8 {
        bail!("--encoding applies to CSV; an XLSX workbook is always Unicode");
    }
    if lake.version("recall_list").await?.is_none() {
        bail!(
            "the lake has no recall_list yet: run `quanyu run` (or `quanyu demo`) to build the marts"
        );
    }
    let rows = crate::report::rows(lake, &recall_query(opts)).await?;
    let headers: Vec<&str> = COLUMNS.iter().map(|c| c.0).collect();
    match opts.format {
        ExportFormat::Csv => write_csv(&headers, &rows, opts.encoding, out)?,
        ExportFormat::Xlsx => write_xlsx(&headers, &rows, out)?,
    }
    Ok(rows.len())
}

fn write_csv(
    headers: &[&str],
    rows: &[Vec<String>],
    encoding: TextEncoding,
    out: &Path,
) -> Result<()> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    w.write_record(headers)?;
    for r in rows {
        w.write_record(r)?;
    }
    let text = String::from_utf8(w.into_inner().context("writing CSV")?)?;
    let bytes = match encoding {
        TextEncoding::Utf8 => {
            let mut b = "\u{feff}".as_bytes().to_vec();
            b.extend_from_slice(text.as_bytes());
            b
        }
        TextEncoding::Gbk => {
            let (gbk, _, unmappable) = encoding_rs::GBK.encode(&text);
            if unmappable {
                // Name the first row and column that GBK cannot hold.
                let place = rows
                    .iter()
                    .enumerate()
                    .find_map(|(i, r)| {
                        r.iter()
                            .position(|c| encoding_rs::GBK.encode(c).2)
                            .map(|j| format!("row {}, column {}", i + 1, headers[j]))
                    })
                    .unwrap_or_else(|| "a header".into());
                bail!("{place} has characters GBK cannot hold: export with --encoding utf8");
            }
            gbk.into_owned()
        }
    };
    std::fs::write(out, bytes).with_context(|| format!("cannot write {}", out.display()))
}

fn write_xlsx(headers: &[&str], rows: &[Vec<String>], out: &Path) -> Result<()> {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("召回名单")?;
    let bold = rust_xlsxwriter::Format::new().set_bold();
    for (j, h) in headers.iter().enumerate() {
        ws.write_string_with_format(0, j as u16, *h, &bold)?;
    }
    for (i, r) in rows.iter().enumerate() {
        let row = i as u32 + 1;
        for (j, cell) in r.iter().enumerate() {
            let col = j as u16;
            match cell.parse::<f64>() {
                Ok(n) if COLUMNS[j].2 => ws.write_number(row, col, n)?,
                // Ids stay text: Excel would round a long order number.
                _ => ws.write_string(row, col, cell)?,
            };
        }
    }
    ws.set_freeze_panes(1, 0)?;
    wb.save(out)
        .with_context(|| format!("cannot write {}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_filters_what_is_asked() {
        let q = recall_query(&RecallExport {
            format: ExportFormat::Csv,
            encoding: TextEncoding::Gbk,
            route: Some(Route::AiCall),
            include_suppressed: false,
        });
        assert!(q.contains("NOT suppressed AND route = 'ai_call'"), "{q}");
        let all = recall_query(&RecallExport {
            format: ExportFormat::Csv,
            encoding: TextEncoding::Utf8,
            route: None,
            include_suppressed: true,
        });
        assert!(
            !all.contains("suppressed AND") && !all.contains("route ="),
            "{all}"
        );
    }

    #[test]
    fn gbk_refuses_what_it_cannot_hold_naming_where() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("r.csv");
        let rows = vec![vec!["u1".to_string(), "王🙂".to_string()]];
        let e = write_csv(&["客户ID", "企微归属"], &rows, TextEncoding::Gbk, &out).unwrap_err();
        assert!(e.to_string().contains("row 1, column 企微归属"), "{e}");
        write_csv(&["客户ID", "企微归属"], &rows[..0], TextEncoding::Gbk, &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        let (text, _, bad) = encoding_rs::GBK.decode(&bytes);
        assert!(!bad);
        assert_eq!(text, "客户ID,企微归属\r\n");
    }
}
