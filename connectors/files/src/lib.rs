//! Declarative file imports: any CSV (UTF-8, GBK or GB18030, detected or
//! declared; BOM; quoted newlines; Chinese headers) or XLSX sheet, mapped
//! into `orders`, `contacts` or `touchpoints` by a mapping in config.
//!
//! Each file is one stream whose scope is the file's content hash, pulled
//! once ([`CursorMode::Once`]): the same bytes imported again are skipped,
//! whatever the file is called. Rows are read and mapped on a blocking
//! thread and handed over in pages through a bounded channel, so memory
//! stays flat however large the file; a bad row goes to quarantine with the
//! file, its row number and the reason, and the rest lands.
#![warn(missing_docs)]

pub mod read;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use quanyu_connector_sdk::{
    ConnectorError, CursorMode, ErrorKind, NormalizedPage, PageSink, PullContext, PullError,
    PullReport, PullResult, RequestContext, Stream, StreamId, Window,
};
use quanyu_schemas::{QuarantineRow, TableKind};
use serde::Deserialize;
use sha2::{Digest, Sha256};

pub use quanyu_connector_sdk::declarative::{ColumnSpec, CostRule, Mapped, Parser, RowMapper};
pub use read::Encoding;

/// Rows per page handed to the lake.
const PAGE_ROWS: usize = 5_000;

/// `[[imports]]`: one kind of file and how it maps.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportConfig {
    /// The import's name (`baiying-calls`), used on the command line.
    pub name: String,
    /// Target table: `orders`, `contacts` or `touchpoints`.
    pub table: TargetTable,
    /// `csv` or `xlsx` (default: from the file extension).
    #[serde(default)]
    pub format: Option<FileFormat>,
    /// CSV text encoding (default: detect).
    #[serde(default)]
    pub encoding: Encoding,
    /// CSV delimiter (default `,`).
    #[serde(default)]
    pub delimiter: Option<char>,
    /// XLSX sheet (default: the first).
    #[serde(default)]
    pub sheet: Option<String>,
    /// A folder whose new files `quanyu import --watch` picks up.
    #[serde(default)]
    pub watch: Option<PathBuf>,
    /// Fixed field values (`channel = "ai_call"`).
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    /// Canonical field → column.
    pub columns: BTreeMap<String, ColumnSpec>,
    /// Cost per touchpoint / minute when the file has no cost column.
    #[serde(default)]
    pub cost: Option<CostRule>,
}

/// The table an import lands in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetTable {
    /// `orders` (store POS, offline sales).
    Orders,
    /// `contacts` (CRM members).
    Contacts,
    /// `touchpoints` (card scans, call logs, SMS).
    Touchpoints,
}

impl TargetTable {
    /// The canonical table.
    pub fn kind(self) -> TableKind {
        match self {
            TargetTable::Orders => TableKind::Orders,
            TargetTable::Contacts => TableKind::Contacts,
            TargetTable::Touchpoints => TableKind::Touchpoints,
        }
    }
}

/// File formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// Comma (or `delimiter`) separated text.
    Csv,
    /// Excel 2007+ workbook.
    Xlsx,
}

impl ImportConfig {
    /// The format of `path` under this config.
    pub fn format_of(&self, path: &Path) -> FileFormat {
        self.format.unwrap_or_else(|| {
            match path
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
            {
                Some(e) if e == "xlsx" || e == "xlsm" => FileFormat::Xlsx,
                _ => FileFormat::Csv,
            }
        })
    }
}

/// SHA-256 of a file's bytes, hex (streamed).
pub fn content_hash(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// The stream importing one file: `import.<name>@<first 16 hex of its hash>`.
pub fn file_stream(cfg: &ImportConfig, path: &Path) -> std::io::Result<Arc<dyn Stream>> {
    let hash = content_hash(path)?;
    Ok(Arc::new(FileImport {
        id: StreamId::new("import", &cfg.name, &hash[..16]),
        cfg: cfg.clone(),
        path: path.to_path_buf(),
    }))
}

/// The files waiting in a watched folder (sorted by name; hidden and
/// partial `*.tmp` / `*.part` files skipped).
pub fn watched_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_file()
            && !name.starts_with('.')
            && !name.ends_with(".tmp")
            && !name.ends_with(".part")
        {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// One file import.
pub struct FileImport {
    id: StreamId,
    cfg: ImportConfig,
    path: PathBuf,
}

impl FileImport {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// One page from the reader thread.
struct Page {
    rows: Vec<Mapped>,
    quarantine: Vec<QuarantineRow>,
}

#[async_trait]
impl Stream for FileImport {
    fn id(&self) -> &StreamId {
        &self.id
    }

    fn table(&self) -> TableKind {
        self.cfg.table.kind()
    }

    fn cursor_mode(&self) -> CursorMode {
        CursorMode::Once
    }

    fn request_stats(&self) -> (u64, u64) {
        (0, 0)
    }

    async fn pull(
        &self,
        _window: Window,
        ctx: &PullContext,
        sink: &mut dyn PageSink,
    ) -> PullResult {
        let file_name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let rctx = RequestContext::new("import", Some(&self.cfg.name), &file_name);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Page>(2);
        let cfg = self.cfg.clone();
        let path = self.path.clone();
        let hasher = ctx.hasher.clone();
        let source = format!("file:{file_name}");
        let stream_id = self.id.clone();
        let reject_ctx = ctx.clone();
        let reader = tokio::task::spawn_blocking(move || {
            read_file(&cfg, &path, hasher, &source, &stream_id, &reject_ctx, &tx)
        });
        let mut report = PullReport::default();
        while let Some(page) = rx.recv().await {
            let records_in =
                page.rows.len() + page.quarantine.iter().filter(|q| q.field.is_none()).count();
            report.pages += 1;
            report.records += records_in as u64;
            let batch = Mapped::batch(page.rows, ctx);
            sink.page(NormalizedPage {
                batch,
                extra: Vec::new(),
                quarantine: page.quarantine,
                records_in,
            })
            .await
            .map_err(PullError::Sink)?;
        }
        match reader.await {
            Ok(Ok(())) => Ok(report),
            Ok(Err(msg)) => Err(ConnectorError::new(&rctx, ErrorKind::InvalidRequest, msg).into()),
            // A reader library that panics on a malformed file (a shared
            // string index out of bounds) refuses the file, as any
            // unreadable file is refused; the run goes on.
            Err(e) if e.is_panic() => Err(ConnectorError::new(
                &rctx,
                ErrorKind::InvalidRequest,
                "the file is corrupt or not the format it claims: its reader stopped on it",
            )
            .into()),
            Err(e) => Err(ConnectorError::new(
                &rctx,
                ErrorKind::Protocol,
                format!("the reader failed: {e}"),
            )
            .into()),
        }
    }
}

/// Read, map and send pages; an error refuses the whole file (bad header,
/// unreadable file). Runs on a blocking thread.
fn read_file(
    cfg: &ImportConfig,
    path: &Path,
    hasher: quanyu_schemas::PiiHasher,
    source: &str,
    stream: &StreamId,
    ctx: &PullContext,
    tx: &tokio::sync::mpsc::Sender<Page>,
) -> Result<(), String> {
    let kind = cfg.table.kind();
    // The header callback compiles the mapper the row callback then uses.
    let mapper: RefCell<Option<RowMapper>> = RefCell::new(None);
    let mut header = |cells: Vec<String>| -> Result<(), read::ReadError> {
        let m = RowMapper::new(
            kind,
            &cfg.columns,
            &cfg.values,
            cfg.cost,
            &cells,
            hasher.clone(),
        )
        .map_err(|e| read::ReadError::Stopped(e.0))?;
        *mapper.borrow_mut() = Some(m);
        Ok(())
    };
    let mut page = Page {
        rows: Vec::with_capacity(PAGE_ROWS),
        quarantine: vec![],
    };
    let mut row = |line: u64, cells: Vec<String>| -> Result<(), read::ReadError> {
        let guard = mapper.borrow();
        let m = guard
            .as_ref()
            .ok_or_else(|| read::ReadError::Stopped("no header".into()))?;
        match m.map(&cells) {
            Ok((mapped, problems)) => {
                for p in &problems {
                    page.quarantine
                        .push(ctx.field_problem(stream, kind, m.key_of(&cells), p));
                }
                page.rows.push(match mapped {
                    Mapped::Touchpoint(mut t) => {
                        t.source = source.to_string();
                        Mapped::Touchpoint(t)
                    }
                    other => other,
                });
            }
            Err(reason) => page.quarantine.push(ctx.reject(
                stream,
                kind,
                m.key_of(&cells),
                &format!("{source} row {line}: {}", cells.join(",")),
                format!("{source} row {line}: {reason}"),
            )),
        }
        if page.rows.len() + page.quarantine.len() >= PAGE_ROWS {
            let full = std::mem::replace(
                &mut page,
                Page {
                    rows: Vec::with_capacity(PAGE_ROWS),
                    quarantine: vec![],
                },
            );
            tx.blocking_send(full)
                .map_err(|_| read::ReadError::Stopped("the lake side stopped".into()))?;
        }
        Ok(())
    };
    let outcome = match cfg.format_of(path) {
        FileFormat::Csv => {
            let enc = read::resolve(path, cfg.encoding).map_err(|e| e.to_string())?;
            let delim = cfg.delimiter.unwrap_or(',');
            if !delim.is_ascii() {
                return Err(format!("delimiter {delim:?} must be one ASCII character"));
            }
            read::read_csv(path, enc, delim as u8, &mut header, &mut row)
        }
        FileFormat::Xlsx => read::read_xlsx(path, cfg.sheet.as_deref(), &mut header, &mut row),
    };
    outcome.map_err(|e| format!("{}: {e}", path.display()))?;
    if !page.rows.is_empty() || !page.quarantine.is_empty() {
        tx.blocking_send(page)
            .map_err(|_| "the lake side stopped".to_string())?;
    }
    Ok(())
}
