//! `connectors`: built-in sources (local files and stdin, HTTP(S) URLs),
//! registered by source kind, and a Polars-based preview of what they hold.

use anyhow::{bail, Context as _};
use hakiri_data_api::{Connector, SourceReader};
use hakiri_kernel::{BoxFuture, CheckOutcome, Context, KernelError, Registrar, Tool};
use polars::prelude::*;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::sync::Arc;

hakiri_kernel::capability!(register);

fn register(r: &mut Registrar) -> Result<(), KernelError> {
    r.provide::<dyn Connector>("file", Arc::new(FileConnector))?;
    r.provide::<dyn Connector>("http", Arc::new(HttpConnector))?;
    r.tool(Tool::typed(
        "connectors.preview",
        "Read the first rows of a CSV source (path, http(s) URL or -) and return its inferred columns and rows",
        |input: PreviewInput, ctx| async move { Ok(preview(&ctx, input).await?) },
    ))?;
    r.check(|_ctx| async {
        match parse_csv(b"region,amount\neu,10\nus,20\n".to_vec(), 10) {
            Ok(p) if p.rows.len() == 2 && p.columns[1].dtype == "i64" => CheckOutcome::Ok(format!(
                "Polars read a CSV: {} columns, {} rows",
                p.columns.len(),
                p.rows.len()
            )),
            Ok(p) => CheckOutcome::Failed(format!("unexpected CSV parse: {:?}", p.columns)),
            Err(e) => e.into(),
        }
    });
    Ok(())
}

fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// Local paths, and `-` for stdin.
struct FileConnector;

impl Connector for FileConnector {
    fn accepts(&self, source: &str) -> bool {
        !source.contains("://")
    }

    fn open<'a>(
        &'a self,
        source: &'a str,
        _ctx: &'a Context,
    ) -> BoxFuture<'a, anyhow::Result<SourceReader>> {
        Box::pin(async move {
            if source == "-" {
                return Ok(Box::new(std::io::stdin()) as SourceReader);
            }
            let file =
                std::fs::File::open(source).with_context(|| format!("cannot open {source}"))?;
            if file.metadata().map(|m| m.is_dir()).unwrap_or(false) {
                bail!("{source} is a directory; name a file");
            }
            Ok(Box::new(file) as SourceReader)
        })
    }
}

/// `http://` and `https://` URLs, streamed: the body arrives in chunks through
/// a bounded channel, never held whole in memory.
struct HttpConnector;

impl Connector for HttpConnector {
    fn accepts(&self, source: &str) -> bool {
        is_url(source)
    }

    fn open<'a>(
        &'a self,
        source: &'a str,
        _ctx: &'a Context,
    ) -> BoxFuture<'a, anyhow::Result<SourceReader>> {
        Box::pin(async move {
            let mut resp = reqwest::get(source)
                .await
                .with_context(|| format!("cannot reach {source}"))?;
            let status = resp.status();
            if !status.is_success() {
                bail!("GET {source} answered {status}");
            }
            let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(8);
            tokio::spawn(async move {
                loop {
                    let item = match resp.chunk().await {
                        Ok(Some(bytes)) => Ok(bytes.to_vec()),
                        Ok(None) => break,
                        Err(e) => Err(std::io::Error::other(e)),
                    };
                    let failed = item.is_err();
                    if tx.send(item).await.is_err() || failed {
                        break;
                    }
                }
            });
            Ok(Box::new(ChannelReader {
                rx,
                buf: Vec::new(),
                pos: 0,
            }) as SourceReader)
        })
    }
}

/// A blocking reader over chunks sent by an async task. Read it from a
/// blocking thread (`spawn_blocking`), never from async code.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.buf = chunk?;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PreviewInput {
    /// A local path, an http(s) URL, or `-` for stdin.
    source: String,
    /// How many rows to return (default 10, at most 1000).
    #[serde(default)]
    rows: Option<usize>,
}

#[derive(Debug, Serialize)]
struct Column {
    name: String,
    dtype: String,
}

#[derive(Debug, Serialize)]
struct Preview {
    connector: String,
    columns: Vec<Column>,
    rows: Vec<serde_json::Value>,
}

/// How much of a source a preview reads.
const PREVIEW_BYTES: u64 = 1 << 20;

async fn preview(ctx: &Context, input: PreviewInput) -> anyhow::Result<Preview> {
    let rows = input.rows.unwrap_or(10).clamp(1, 1000);
    let (kind, reader) = hakiri_data_api::open_source(ctx, &input.source).await?;
    let mut p = tokio::task::spawn_blocking(move || {
        let mut bytes = Vec::new();
        reader.take(PREVIEW_BYTES).read_to_end(&mut bytes)?;
        // Cut at the last complete line so a partial row never reaches the parser.
        if bytes.len() as u64 == PREVIEW_BYTES {
            if let Some(end) = bytes.iter().rposition(|b| *b == b'\n') {
                bytes.truncate(end + 1);
            }
        }
        parse_csv(bytes, rows)
    })
    .await??;
    p.connector = kind;
    Ok(p)
}

fn parse_csv(bytes: Vec<u8>, rows: usize) -> anyhow::Result<Preview> {
    if bytes.is_empty() {
        bail!("the source is empty; nothing to preview");
    }
    let mut df = CsvReadOptions::default()
        .with_has_header(true)
        .with_n_rows(Some(rows))
        .into_reader_with_file_handle(std::io::Cursor::new(bytes))
        .finish()
        .map_err(|e| anyhow::anyhow!("cannot parse the source as CSV: {e}"))?;
    let columns = df
        .schema()
        .iter()
        .map(|(name, dtype)| Column {
            name: name.to_string(),
            dtype: dtype.to_string(),
        })
        .collect();
    let mut json = Vec::new();
    JsonWriter::new(&mut json)
        .with_json_format(JsonFormat::Json)
        .finish(&mut df)?;
    Ok(Preview {
        connector: String::new(),
        columns,
        rows: serde_json::from_slice(&json)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_csv_with_types() {
        let p = parse_csv(b"a,b\n1,x\n2,y\n3,z\n".to_vec(), 2).unwrap();
        assert_eq!(p.columns.len(), 2);
        assert_eq!(p.columns[0].dtype, "i64");
        assert_eq!(p.rows.len(), 2);
        assert_eq!(p.rows[1]["b"], "y");
    }

    #[test]
    fn empty_source_is_a_clear_error() {
        let e = parse_csv(Vec::new(), 2).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
    }

    #[test]
    fn kinds_split_paths_from_urls() {
        assert!(FileConnector.accepts("./sales.csv"));
        assert!(FileConnector.accepts("-"));
        assert!(!FileConnector.accepts("https://example.com/a.csv"));
        assert!(HttpConnector.accepts("https://example.com/a.csv"));
    }
}
