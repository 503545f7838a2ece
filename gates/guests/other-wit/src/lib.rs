//! A connector built against another version of the WIT world: the host must
//! refuse it by name, not fail somewhere inside instantiation.
wit_bindgen::generate!({ path: "wit", world: "connector" });

use exports::hakiri::connector::source::{Entry, Guest, GuestRecords, Info, Records};

struct Future;
struct Nothing;

impl Guest for Future {
    type Records = Nothing;
    fn describe() -> Info {
        Info {
            name: "future".into(),
            scheme: "future".into(),
            description: String::new(),
            config_schema: "{}".into(),
        }
    }
    fn discover(_: String) -> Result<Vec<Entry>, String> {
        Ok(vec![])
    }
    fn open(_: String) -> Result<Records, String> {
        Ok(Records::new(Nothing))
    }
}

impl GuestRecords for Nothing {
    fn next(&self) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }
}

export!(Future);
