//! Commands on a function's settings outside its versions: reserved concurrency and tags.

use warden_types::change::Change;
use warden_types::{limits, FunctionName, Tags};

use crate::commands::{SetConcurrency, TagFunction, UntagFunction};
use crate::roles::Caller;
use crate::{Control, ControlError};

impl Control {
    /// `PutFunctionConcurrency` (`Some`) and `DeleteFunctionConcurrency` (`None`). Callers:
    /// the API, once the caller is allowed the action on the function. A reservation must
    /// leave at least min(100, a tenth of the account limit) unreserved. Emits
    /// `ConcurrencyChanged`; the concurrency table applies it from there.
    pub async fn set_concurrency(
        &self,
        command: SetConcurrency,
        caller: &dyn Caller,
    ) -> Result<(), ControlError> {
        let SetConcurrency { function, reserved } = command;
        // Every reservation is read, checked and written under one lock, so two puts
        // cannot together reserve more than the account leaves.
        let _serial = self.inner.concurrency.lock().await;
        let account = self.inner.config.account_concurrency;
        let f = function.clone();
        let exists = self
            .blocking(move |inner| Ok(inner.store.get_version(&f, warden_types::LATEST)?.is_some()))
            .await?;
        if !exists {
            return Err(self.function_not_found(&function));
        }
        if let Some(requested) = reserved {
            let all = self
                .blocking(|inner| Ok(inner.store.all_reserved_concurrency()?))
                .await?;
            let others: i64 = all
                .iter()
                .filter(|(n, _)| *n != function)
                .map(|(_, r)| i64::from(*r))
                .sum();
            let unreserved_after = i64::from(account) - others - i64::from(requested);
            let minimum = i64::from(limits::UNRESERVED_CONCURRENCY_MINIMUM.min(account / 10));
            if unreserved_after < minimum {
                return Err(ControlError::Invalid(format!(
                    "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [{minimum}]."
                )));
            }
        }
        let f = function.clone();
        self.blocking(move |inner| Ok(inner.store.put_reserved_concurrency(&f, reserved)?))
            .await?;
        self.emit(&function, Change::ConcurrencyChanged { reserved }, caller);
        Ok(())
    }

    /// The function's tags, `NotFound` if it does not exist.
    pub async fn list_tags(&self, function: &FunctionName) -> Result<Tags, ControlError> {
        let f = function.clone();
        let stored = self
            .blocking(move |inner| Ok(inner.store.get_tags(&f)?))
            .await?
            .ok_or_else(|| self.function_not_found(function))?;
        // Stored tags were checked when written; a set that no longer passes is shown
        // anyway rather than hidden.
        Ok(Tags::new(stored.clone()).unwrap_or_else(|e| {
            tracing::warn!(function = %function, error = %e, "stored tags break the tag rules");
            Tags::default()
        }))
    }

    /// `TagResource`. Callers: the API, once the caller is allowed `lambda:TagResource`
    /// on the function. Adds tags (a key the function has gets the new value); the result
    /// must stay within 50 tags. Emits `TagsChanged`.
    pub async fn tag_function(
        &self,
        command: TagFunction,
        caller: &dyn Caller,
    ) -> Result<(), ControlError> {
        crate::scan::check_policy_tag(command.tags.as_map())?;
        let _serial = self.inner.tags.lock().await;
        let current = self.list_tags(&command.function).await?;
        let merged = current
            .merged(&command.tags)
            .map_err(warden_types::ConfigError::from)?;
        self.write_tags(&command.function, merged).await?;
        self.emit(&command.function, Change::TagsChanged, caller);
        Ok(())
    }

    /// `UntagResource`. Callers: the API, once the caller is allowed
    /// `lambda:UntagResource` on the function. Removes tags by key; keys the function does
    /// not have are ignored. Emits `TagsChanged`.
    pub async fn untag_function(
        &self,
        command: UntagFunction,
        caller: &dyn Caller,
    ) -> Result<(), ControlError> {
        let _serial = self.inner.tags.lock().await;
        let current = self.list_tags(&command.function).await?;
        let remaining = current.without(command.keys.iter().map(String::as_str));
        self.write_tags(&command.function, remaining).await?;
        self.emit(&command.function, Change::TagsChanged, caller);
        Ok(())
    }

    async fn write_tags(&self, function: &FunctionName, tags: Tags) -> Result<(), ControlError> {
        let f = function.clone();
        let map = tags.into_map();
        self.blocking(move |inner| Ok(inner.store.replace_tags(&f, &map)?))
            .await
            .map_err(|e| match e {
                // Deleted in between: as if it had never existed.
                ControlError::NotFound(_) => self.function_not_found(function),
                other => other,
            })
    }
}
