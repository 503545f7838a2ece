//! `jsonfeed://host/path/feed.json`: the items of a JSON Feed (jsonfeed.org),
//! one record per item, following `next_url` page by page (one batch each).
//! Fetched over https, or http with `--set protocol=http`.
use hakiri_connector::{config_or, get, Entry, Guest, GuestRecords, Info, Records};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::cell::RefCell;

/// One page; items stay raw JSON (validated, never rebuilt as a tree).
#[derive(Deserialize)]
struct Page<'a> {
    #[serde(default)]
    title: Option<String>,
    #[serde(borrow)]
    items: Vec<&'a RawValue>,
    next_url: Option<String>,
}

fn url_of(source: &str) -> Result<String, String> {
    let (_, rest) = source
        .split_once("://")
        .ok_or("expected jsonfeed://host/path")?;
    Ok(format!("{}://{rest}", config_or("protocol", "https")))
}

fn parse<'a>(url: &str, body: &'a [u8]) -> Result<Page<'a>, String> {
    serde_json::from_slice(body).map_err(|e| format!("{url} is not a JSON Feed: {e}"))
}

struct JsonFeed;

struct Pages {
    next: RefCell<Option<String>>,
}

impl Guest for JsonFeed {
    type Records = Pages;

    fn describe() -> Info {
        Info {
            name: "jsonfeed".into(),
            scheme: "jsonfeed".into(),
            description: "The items of a JSON Feed, one record per item, every page".into(),
            config_schema:
                r#"{"type":"object","properties":{"protocol":{"enum":["https","http"]}}}"#.into(),
        }
    }

    fn discover(source: String) -> Result<Vec<Entry>, String> {
        let url = url_of(&source)?;
        let title = parse(&url, &get(&url)?)?
            .title
            .unwrap_or_else(|| "untitled feed".into());
        Ok(vec![Entry {
            source,
            description: title,
        }])
    }

    fn open(source: String) -> Result<Records, String> {
        Ok(Records::new(Pages {
            next: RefCell::new(Some(url_of(&source)?)),
        }))
    }
}

impl GuestRecords for Pages {
    fn next(&self) -> Result<Option<Vec<u8>>, String> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        let body = get(&url)?;
        let page = parse(&url, &body)?;
        *self.next.borrow_mut() = page.next_url;
        let mut batch = Vec::with_capacity(body.len());
        for item in page.items {
            // A newline inside JSON can only be whitespace: one line per item.
            batch.extend(
                item.get()
                    .bytes()
                    .map(|b| if b == b'\n' { b' ' } else { b }),
            );
            batch.push(b'\n');
        }
        Ok(Some(batch))
    }
}

hakiri_connector::export!(JsonFeed);
