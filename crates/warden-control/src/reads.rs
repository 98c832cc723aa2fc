//! The reads the API serves: functions, versions, aliases, policy, concurrency, account
//! settings, logs. They change nothing and emit nothing; who may call each is decided by
//! the API's authorization of the operation (`lambda:GetFunction`, `lambda:ListFunctions`,
//! ...), and environments come back opened by the keyring.

use serde_json::Value;
use warden_store::{Alias, LogRecord};
use warden_types::{
    limits, AliasName, FunctionName, FunctionRef, FunctionVersion, Qualifier, Tags, LATEST,
};

use crate::{Control, ControlError};

pub use warden_types::page::Page;

/// A function as `GetFunction` shows it.
#[derive(Debug, Clone)]
pub struct FunctionView {
    /// The version the reference names (environment opened).
    pub configuration: FunctionVersion,
    /// Its reserved concurrency, if any.
    pub reserved_concurrency: Option<u32>,
    /// The function's tags (they belong to the function, not to the version).
    pub tags: Tags,
}

/// A function's policy as `GetPolicy` shows it.
#[derive(Debug, Clone)]
pub struct PolicyView {
    /// The policy document.
    pub policy: Value,
    /// The policy's revision.
    pub revision_id: String,
}

/// The account's limits and usage (`GetAccountSettings`).
#[derive(Debug, Clone, Copy)]
pub struct AccountSettings {
    /// The account's concurrency limit.
    pub account_limit: u32,
    /// What is left of it after every reservation.
    pub unreserved_concurrency: u32,
    /// The size of every stored code package together, in bytes.
    pub total_code_size: u64,
    /// How many functions there are.
    pub function_count: usize,
}

impl Control {
    /// The stored version a reference names (`$LATEST`, a number, or an alias's version).
    pub async fn get_configuration(
        &self,
        r: &FunctionRef,
    ) -> Result<FunctionVersion, ControlError> {
        let name = r.name.clone();
        let qualifier = r.qualifier.clone();
        let found = self
            .blocking(move |inner| {
                let version = match &qualifier {
                    None | Some(Qualifier::Latest) => LATEST.to_owned(),
                    Some(Qualifier::Version(v)) => v.to_string(),
                    Some(Qualifier::Alias(a)) => match inner.store.get_alias(&name, a.as_str())? {
                        Some(alias) => alias.function_version,
                        None => return Ok(None),
                    },
                };
                Ok(inner.store.get_version(&name, &version)?)
            })
            .await?;
        let found = found.ok_or_else(|| self.not_found(r))?;
        self.opened(found)
    }

    /// `GetFunction`: the version a reference names, with the function's reserved
    /// concurrency and tags.
    pub async fn get_function(&self, r: &FunctionRef) -> Result<FunctionView, ControlError> {
        let configuration = self.get_configuration(r).await?;
        let name = r.name.clone();
        let reserved_concurrency = self
            .blocking(move |inner| Ok(inner.store.get_reserved_concurrency(&name)?))
            .await?;
        let tags = self.list_tags(&r.name).await?;
        Ok(FunctionView {
            configuration,
            reserved_concurrency,
            tags,
        })
    }

    /// `ListFunctions`: `$LATEST` of up to `max` functions after `after`; with
    /// `all_versions`, each followed by its published versions.
    pub async fn list_functions(
        &self,
        after: Option<FunctionName>,
        max: usize,
        all_versions: bool,
    ) -> Result<Page<FunctionVersion>, ControlError> {
        let (page, versions) = self
            .blocking(move |inner| {
                let page = inner.store.list_functions(after.as_ref(), max + 1)?;
                let mut versions = Vec::new();
                if all_versions {
                    for f in page.iter().take(max) {
                        versions.extend(inner.store.list_versions(
                            &f.name,
                            Some(LATEST),
                            limits::MAX_LIST_ITEMS,
                        )?);
                    }
                }
                Ok((page, versions))
            })
            .await?;
        let page = Page::from_lookahead(page, max, |f| f.name.to_string());
        let mut items = Vec::new();
        for f in page.items {
            let name = f.name.clone();
            items.push(self.opened(f)?);
            for v in versions.iter().filter(|v| v.name == name) {
                items.push(self.opened(v.clone())?);
            }
        }
        Ok(Page {
            items,
            next_marker: page.next_marker,
        })
    }

    /// The name of a function one of whose versions is attached (its `VpcConfig`) to the
    /// subnet or security group `id`, if any: what may not be deleted. Reads every
    /// function's versions (deletions of network resources are rare).
    pub async fn functions_attached_to(&self, id: &str) -> Result<Option<String>, ControlError> {
        let id = id.to_owned();
        self.blocking(move |inner| {
            let mut after: Option<FunctionName> = None;
            loop {
                let page = inner
                    .store
                    .list_functions(after.as_ref(), limits::MAX_LIST_ITEMS)?;
                for f in &page {
                    let mut versions = vec![f.clone()];
                    versions.extend(
                        inner
                            .store
                            .list_versions(&f.name, Some(LATEST), 1_000_000)?,
                    );
                    let attached = versions.iter().any(|v| {
                        v.vpc_config.as_ref().is_some_and(|c| {
                            c.subnet_ids
                                .iter()
                                .chain(&c.security_group_ids)
                                .any(|x| *x == id)
                        })
                    });
                    if attached {
                        return Ok(Some(f.name.to_string()));
                    }
                }
                match page.last() {
                    Some(last) if page.len() == limits::MAX_LIST_ITEMS => {
                        after = Some(last.name.clone())
                    }
                    _ => return Ok(None),
                }
            }
        })
        .await
    }

    /// `ListVersionsByFunction`: `$LATEST` then published versions, after `marker`.
    pub async fn list_versions(
        &self,
        name: &FunctionName,
        marker: Option<String>,
        max: usize,
    ) -> Result<Page<FunctionVersion>, ControlError> {
        let n = name.clone();
        let page = self
            .blocking(move |inner| {
                if inner.store.get_version(&n, LATEST)?.is_none() {
                    return Ok(None);
                }
                Ok(Some(inner.store.list_versions(
                    &n,
                    marker.as_deref(),
                    max + 1,
                )?))
            })
            .await?
            .ok_or_else(|| self.function_not_found(name))?;
        let page = Page::from_lookahead(page, max, |v| v.version.clone());
        let items = page
            .items
            .into_iter()
            .map(|v| self.opened(v))
            .collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            next_marker: page.next_marker,
        })
    }

    /// `GetAlias`.
    pub async fn get_alias(
        &self,
        function: &FunctionName,
        name: &AliasName,
    ) -> Result<Alias, ControlError> {
        let (f, n) = (function.clone(), name.to_string());
        self.blocking(move |inner| Ok(inner.store.get_alias(&f, &n)?))
            .await?
            .ok_or_else(|| self.alias_not_found(function, name))
    }

    /// `ListAliases`: after `marker`, optionally only those pointing at `version`.
    pub async fn list_aliases(
        &self,
        function: &FunctionName,
        version: Option<String>,
        marker: Option<String>,
        max: usize,
    ) -> Result<Page<Alias>, ControlError> {
        let f = function.clone();
        let page = self
            .blocking(move |inner| {
                if inner.store.get_version(&f, LATEST)?.is_none() {
                    return Ok(None);
                }
                Ok(Some(inner.store.list_aliases(
                    &f,
                    version.as_deref(),
                    marker.as_deref(),
                    max + 1,
                )?))
            })
            .await?
            .ok_or_else(|| self.function_not_found(function))?;
        Ok(Page::from_lookahead(page, max, |a| a.name.clone()))
    }

    /// `GetPolicy`.
    pub async fn get_policy(&self, function: &FunctionName) -> Result<PolicyView, ControlError> {
        let Some(policy) = self.load_policy(function).await? else {
            return Err(ControlError::NotFound(
                "The resource you requested does not exist.".into(),
            ));
        };
        let revision_id = crate::policy::revision(&policy);
        Ok(PolicyView {
            policy,
            revision_id,
        })
    }

    /// The stored resource-policy document of a function, if any, without checking that the
    /// function exists: what authorization evaluates (a missing function has none).
    pub async fn policy_document(
        &self,
        function: &FunctionName,
    ) -> Result<Option<String>, ControlError> {
        let f = function.clone();
        self.blocking(move |inner| Ok(inner.store.get_function_policy(&f)?))
            .await
    }

    /// `GetFunctionConcurrency`.
    pub async fn get_concurrency(
        &self,
        function: &FunctionName,
    ) -> Result<Option<u32>, ControlError> {
        let f = function.clone();
        self.blocking(move |inner| {
            if inner.store.get_version(&f, LATEST)?.is_none() {
                return Ok(None);
            }
            Ok(Some(inner.store.get_reserved_concurrency(&f)?))
        })
        .await?
        .ok_or_else(|| self.function_not_found(function))
    }

    /// `GetAccountSettings`.
    pub async fn account_settings(&self) -> Result<AccountSettings, ControlError> {
        let account_limit = self.inner.config.account_concurrency;
        self.blocking(move |inner| {
            let functions = inner.store.list_functions(None, usize::MAX >> 1)?;
            let reserved: u64 = inner
                .store
                .all_reserved_concurrency()?
                .iter()
                .map(|(_, r)| u64::from(*r))
                .sum();
            Ok(AccountSettings {
                account_limit,
                unreserved_concurrency: u64::from(account_limit)
                    .saturating_sub(reserved)
                    .try_into()
                    .unwrap_or(0),
                total_code_size: functions.iter().map(|f| f.code_size).sum(),
                function_count: functions.len(),
            })
        })
        .await
    }

    /// A page of one function's log lines with `seq > after`, oldest first; `NotFound` for
    /// a name that has neither a function nor stored lines.
    pub async fn read_logs(
        &self,
        function: &FunctionName,
        after: i64,
        limit: usize,
    ) -> Result<Vec<LogRecord>, ControlError> {
        let f = function.clone();
        let read = self
            .blocking(move |inner| {
                let records = inner.store.read_logs(&f, after, limit)?;
                // Lines outlive their function (until retention removes them); a name with
                // neither a function nor lines is unknown, as Lambda says of a missing log
                // group.
                if records.is_empty()
                    && after == 0
                    && inner.store.get_version(&f, LATEST)?.is_none()
                {
                    return Ok(None);
                }
                Ok(Some(records))
            })
            .await?;
        read.ok_or_else(|| {
            self.not_found(&FunctionRef {
                name: function.clone(),
                qualifier: None,
            })
        })
    }
}
