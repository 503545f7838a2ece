//! `jsonfeed://host/path/feed.json`: the items of a JSON Feed (jsonfeed.org),
//! one record per item, following `next_url` page by page (one batch each).
//! Fetched over https, or http with `--set protocol=http`.
use hakiri_connector::{config_or, get, Entry, Guest, GuestRecords, Info, Records};
use serde_json::Value;
use std::cell::RefCell;

struct JsonFeed;

struct Pages {
    next: RefCell<Option<String>>,
}

fn fetch(url: &str) -> Result<Value, String> {
    serde_json::from_slice(&get(url)?).map_err(|e| format!("{url} is not a JSON Feed: {e}"))
}

fn url_of(source: &str) -> Result<String, String> {
    let (_, rest) = source
        .split_once("://")
        .ok_or("expected jsonfeed://host/path")?;
    Ok(format!("{}://{rest}", config_or("protocol", "https")))
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
        let feed = fetch(&url_of(&source)?)?;
        let title = feed["title"].as_str().unwrap_or("untitled feed");
        Ok(vec![Entry {
            source,
            description: title.to_string(),
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
        let page = fetch(&url)?;
        *self.next.borrow_mut() = page["next_url"].as_str().map(str::to_string);
        let mut batch = Vec::new();
        for item in page["items"]
            .as_array()
            .ok_or(format!("{url} has no `items` array"))?
        {
            serde_json::to_writer(&mut batch, item).map_err(|e| e.to_string())?;
            batch.push(b'\n');
        }
        Ok(Some(batch))
    }
}

hakiri_connector::export!(JsonFeed);
