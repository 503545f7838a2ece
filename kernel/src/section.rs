//! Typed config sections: declared once on the type, registered by the
//! capabilities that read them, parsed and validated once at start-up, and
//! handed out typed by [`Context::section`](crate::Context::section).
//!
//! ```ignore
//! #[derive(Deserialize, Default)]
//! #[serde(deny_unknown_fields)]
//! struct EngineConfig { threads: Option<usize> }
//! impl hakiri_kernel::Section for EngineConfig { const NAME: &'static str = "engine"; }
//! // register:  r.config::<EngineConfig>()?;
//! // use:       let cfg = ctx.section::<EngineConfig>();
//! ```
//!
//! Several capabilities may register the same type (a shared section, such
//! read by two capabilities); two different types under one name are a
//! start-up error naming both crates.

use serde::de::{DeserializeOwned, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::Arc;

/// A config section `[NAME]` (or an array of tables `[[NAME]]`, for a type
/// that deserializes from a list). An absent section is `Self::default()`;
/// use `#[serde(deny_unknown_fields)]` so typos are errors.
pub trait Section: DeserializeOwned + Default + Send + Sync + 'static {
    const NAME: &'static str;
}

type Parsed = Arc<dyn Any + Send + Sync>;
/// An error message and the byte range of the file it refers to.
type Located = Option<(String, Range<usize>)>;

/// How the kernel parses one registered section type without knowing it.
#[derive(Clone, Copy)]
pub struct SectionDecl {
    pub type_id: TypeId,
    pub type_name: &'static str,
    /// Parses the merged (file + environment) value; `None` when absent.
    pub(crate) parse: fn(Option<&toml::Value>) -> Result<Parsed, String>,
    /// Re-reads the section from the file text alone, for an error's span.
    pub(crate) locate: fn(&str, &str) -> Located,
}

impl SectionDecl {
    pub fn of<T: Section>() -> SectionDecl {
        fn parse<T: Section>(v: Option<&toml::Value>) -> Result<Parsed, String> {
            let t: T = match v {
                None => T::default(),
                Some(v) => v
                    .clone()
                    .try_into()
                    .map_err(|e: toml::de::Error| e.message().to_string())?,
            };
            Ok(Arc::new(t))
        }
        fn locate<T: Section>(text: &str, name: &str) -> Located {
            let de = toml::Deserializer::parse(text).ok()?;
            let err = Pick::<T>(name, PhantomData).deserialize(de).err()?;
            Some((err.message().to_string(), err.span()?))
        }
        SectionDecl {
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
            parse: parse::<T>,
            locate: locate::<T>,
        }
    }
}

/// Deserializes only the top-level key `.0` of a document as `T`, so the
/// toml deserializer's spans point into the original file (dotted keys and
/// inline tables included).
struct Pick<'a, T>(&'a str, PhantomData<T>);

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for Pick<'_, T> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned> Visitor<'de> for Pick<'_, T> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a TOML document")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            if key == self.0 {
                map.next_value::<T>()?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// The parsed sections of one configuration, by type.
#[derive(Default)]
pub(crate) struct Sections(HashMap<TypeId, Parsed>);

impl Sections {
    pub fn insert(&mut self, id: TypeId, value: Parsed) {
        self.0.insert(id, value);
    }

    pub fn get<T: Section>(&self) -> Option<Arc<T>> {
        self.0.get(&TypeId::of::<T>())?.clone().downcast().ok()
    }
}
