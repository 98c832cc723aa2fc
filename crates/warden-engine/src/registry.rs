//! Resolution of a function reference to the version that runs, cached in memory so that
//! a warm invoke never touches the store. The engine's subscription to control-plane
//! changes drops a function's entries on every change that can alter what it resolves to.

use std::collections::HashMap;
use std::sync::Arc;

use warden_store::{Alias, Store, StoreError};
use warden_types::{ChangeCache, FunctionName, FunctionVersion, Qualifier, LATEST};

/// The version an invocation runs.
#[derive(Clone)]
pub struct Resolved {
    /// The version's configuration.
    pub config: Arc<FunctionVersion>,
}

#[derive(Default)]
struct Entry {
    versions: HashMap<String, Arc<FunctionVersion>>,
    aliases: HashMap<String, Arc<Alias>>,
}

/// Resolves function references, from the cache when it can.
pub struct Registry {
    store: Arc<dyn Store>,
    cache: ChangeCache<FunctionName, Entry>,
}

impl Registry {
    /// An empty registry over `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            cache: ChangeCache::new(),
        }
    }

    /// Forgets everything cached about a function; a read of it already under way is not
    /// cached either.
    pub fn invalidate(&self, name: &FunctionName) {
        self.cache.forget(name);
    }

    /// Drops every cached entry.
    pub fn invalidate_all(&self) {
        self.cache.forget_all();
    }

    /// Resolves `name[:qualifier]`; `Ok(None)` when the function, version or alias does
    /// not exist.
    pub async fn resolve(
        &self,
        name: &FunctionName,
        qualifier: Option<&Qualifier>,
    ) -> Result<Option<Resolved>, StoreError> {
        let version = match qualifier {
            None | Some(Qualifier::Latest) => LATEST.to_owned(),
            Some(Qualifier::Version(v)) => v.to_string(),
            Some(Qualifier::Alias(a)) => {
                let Some(alias) = self.alias(name, a.as_str()).await? else {
                    return Ok(None);
                };
                pick_alias_version(&alias)
            }
        };
        Ok(self
            .version(name, &version)
            .await?
            .map(|config| Resolved { config }))
    }

    async fn version(
        &self,
        name: &FunctionName,
        version: &str,
    ) -> Result<Option<Arc<FunctionVersion>>, StoreError> {
        if let Some(v) = self
            .cache
            .with(name, |e| e.versions.get(version).cloned())
            .flatten()
        {
            return Ok(Some(v));
        }
        let ticket = self.cache.ticket();
        let store = Arc::clone(&self.store);
        let (n, v) = (name.clone(), version.to_owned());
        let found = blocking(move || store.get_version(&n, &v)).await?;
        Ok(found.map(|f| {
            let f = Arc::new(f);
            self.cache.update(ticket, name.clone(), |e| {
                e.versions.insert(version.to_owned(), Arc::clone(&f));
            });
            f
        }))
    }

    async fn alias(
        &self,
        name: &FunctionName,
        alias: &str,
    ) -> Result<Option<Arc<Alias>>, StoreError> {
        if let Some(a) = self
            .cache
            .with(name, |e| e.aliases.get(alias).cloned())
            .flatten()
        {
            return Ok(Some(a));
        }
        let ticket = self.cache.ticket();
        let store = Arc::clone(&self.store);
        let (n, a) = (name.clone(), alias.to_owned());
        let found = blocking(move || store.get_alias(&n, &a)).await?;
        Ok(found.map(|a| {
            let a = Arc::new(a);
            self.cache.update(ticket, name.clone(), |e| {
                e.aliases.insert(alias.to_owned(), Arc::clone(&a));
            });
            a
        }))
    }
}

/// Weighted routing: the additional version receives its share of invocations.
fn pick_alias_version(alias: &Alias) -> String {
    match &alias.routing {
        Some((extra, weight)) if rand::random::<f64>() < *weight => extra.clone(),
        _ => alias.function_version.clone(),
    }
}

/// Runs a store call on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
