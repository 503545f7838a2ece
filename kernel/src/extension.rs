//! Typed extension points, in the spirit of Caddy's module namespaces: a crate
//! declares a trait object type as an extension point, capabilities *provide*
//! named implementations of it, and any capability *looks them up* by type and
//! name. The kernel never knows what the types mean.
//!
//! ```ignore
//! // In a library crate both sides depend on:
//! pub trait Codec: Send + Sync { /* … */ }
//! impl hakiri_kernel::ExtensionPoint for dyn Codec { const NAME: &'static str = "codec"; }
//! // In a capability's register function:
//! r.provide::<dyn Codec>("gzip", Arc::new(Gzip))?;
//! // Anywhere with a Context:
//! let codec = ctx.require::<dyn Codec>("gzip")?;
//! ```

use crate::capability::Capability;
use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A type that capabilities provide named implementations of; usually
/// `dyn SomeTrait`. `NAME` is what `capabilities --json` reports under
/// `provides`, what manifests declare, and what errors call it.
pub trait ExtensionPoint: Send + Sync + 'static {
    const NAME: &'static str;
}

/// One provided implementation: an `Arc<T>` behind `Any`, and who provided it.
pub(crate) struct Provided {
    pub owner: &'static Capability,
    item: Box<dyn Any + Send + Sync>,
}

/// Every provided implementation, by extension point and then by name.
#[derive(Default)]
pub(crate) struct Provisions {
    /// Extension point name → the type registered under it (one type per name).
    points: BTreeMap<&'static str, (TypeId, &'static str)>,
    items: BTreeMap<&'static str, BTreeMap<String, Provided>>,
}

/// Why a provision was refused.
pub(crate) enum Refused {
    /// Another type already uses this extension point name.
    PointName {
        existing: &'static str,
    },
    Duplicate {
        first: &'static Capability,
    },
}

impl Provisions {
    pub fn insert<T: ExtensionPoint + ?Sized>(
        &mut self,
        name: &str,
        owner: &'static Capability,
        item: Arc<T>,
    ) -> Result<(), Refused> {
        let id = TypeId::of::<T>();
        let (existing_id, existing_type) = *self
            .points
            .entry(T::NAME)
            .or_insert((id, std::any::type_name::<T>()));
        if existing_id != id {
            return Err(Refused::PointName {
                existing: existing_type,
            });
        }
        let named = self.items.entry(T::NAME).or_default();
        if let Some(first) = named.get(name) {
            return Err(Refused::Duplicate { first: first.owner });
        }
        named.insert(
            name.to_string(),
            Provided {
                owner,
                item: Box::new(item),
            },
        );
        Ok(())
    }

    fn named<T: ExtensionPoint + ?Sized>(&self) -> Option<&BTreeMap<String, Provided>> {
        match self.points.get(T::NAME) {
            Some((id, _)) if *id == TypeId::of::<T>() => self.items.get(T::NAME),
            _ => None,
        }
    }

    pub fn get<T: ExtensionPoint + ?Sized>(&self, name: &str) -> Option<Arc<T>> {
        self.named::<T>()?
            .get(name)?
            .item
            .downcast_ref::<Arc<T>>()
            .cloned()
    }

    /// Every implementation of `T`, in name order.
    pub fn all<T: ExtensionPoint + ?Sized>(&self) -> Vec<(&str, Arc<T>)> {
        self.named::<T>()
            .into_iter()
            .flatten()
            .filter_map(|(name, p)| Some((name.as_str(), p.item.downcast_ref::<Arc<T>>()?.clone())))
            .collect()
    }

    /// The names provided for `T`.
    pub fn names<T: ExtensionPoint + ?Sized>(&self) -> Vec<&str> {
        self.named::<T>()
            .into_iter()
            .flatten()
            .map(|(n, _)| n.as_str())
            .collect()
    }

    pub fn owner<T: ExtensionPoint + ?Sized>(&self, name: &str) -> Option<&'static Capability> {
        self.named::<T>()?.get(name).map(|p| p.owner)
    }
}
