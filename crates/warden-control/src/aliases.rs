//! Alias commands: create, update, delete.

use warden_store::{Alias, StoreError};
use warden_types::change::Change;
use warden_types::{AliasName, FunctionName, LATEST};

use crate::commands::{CreateAlias, DeleteAlias, Routing, UpdateAlias};
use crate::error::check_revision;
use crate::roles::Caller;
use crate::{new_revision, Control, ControlError};

fn stored_routing(routing: Option<Routing>) -> Option<(String, f64)> {
    routing.map(|r| (r.version().to_string(), r.weight()))
}

impl Control {
    /// Checks that the function and every version an alias points at exist.
    async fn check_versions(
        &self,
        function: &FunctionName,
        versions: Vec<String>,
    ) -> Result<(), ControlError> {
        let f = function.clone();
        let missing = self
            .blocking(move |inner| {
                if inner.store.get_version(&f, LATEST)?.is_none() {
                    return Ok(Some(None));
                }
                for v in versions {
                    if inner.store.get_version(&f, &v)?.is_none() {
                        return Ok(Some(Some(v)));
                    }
                }
                Ok(None)
            })
            .await?;
        match missing {
            None => Ok(()),
            Some(None) => Err(self.function_not_found(function)),
            Some(Some(v)) => Err(ControlError::NotFound(format!(
                "Function not found: {}",
                self.function_arn(function, Some(&v))
            ))),
        }
    }

    pub(crate) fn alias_not_found(
        &self,
        function: &FunctionName,
        name: &AliasName,
    ) -> ControlError {
        ControlError::NotFound(format!(
            "Cannot find alias arn: {}",
            self.function_arn(function, Some(name.as_str()))
        ))
    }

    /// `CreateAlias`. Callers: the API, once the caller is allowed `lambda:CreateAlias` on
    /// the function. The alias's version (and routing version) must exist. Emits
    /// `AliasCreated`.
    pub async fn create_alias(
        &self,
        command: CreateAlias,
        caller: &dyn Caller,
    ) -> Result<Alias, ControlError> {
        let CreateAlias {
            function,
            name,
            function_version,
            description,
            routing,
        } = command;
        let mut versions = vec![function_version.clone()];
        versions.extend(routing.iter().map(|r| r.version().to_string()));
        self.check_versions(&function, versions).await?;
        let alias = Alias {
            function: function.clone(),
            name: name.to_string(),
            function_version,
            description: description.into_string(),
            routing: stored_routing(routing),
            revision_id: new_revision(),
        };
        let a = alias.clone();
        let arn = self.function_arn(&function, Some(name.as_str()));
        self.blocking(move |inner| match inner.store.create_alias(&a) {
            Ok(()) => Ok(()),
            Err(StoreError::AlreadyExists(_)) => Err(ControlError::Conflict(format!(
                "Alias already exists: {arn}"
            ))),
            Err(e) => Err(e.into()),
        })
        .await?;
        self.emit(
            &function,
            Change::AliasCreated {
                alias: alias.name.clone(),
            },
            caller,
        );
        Ok(alias)
    }

    /// `UpdateAlias`. Callers: the API, once the caller is allowed `lambda:UpdateAlias` on
    /// the function. Changes the alias's version, description or routing, guarded by its
    /// revision. Emits `AliasUpdated`.
    pub async fn update_alias(
        &self,
        command: UpdateAlias,
        caller: &dyn Caller,
    ) -> Result<Alias, ControlError> {
        let UpdateAlias {
            function,
            name,
            function_version,
            description,
            routing,
            revision_id,
        } = command;
        let mut a = self.get_alias(&function, &name).await?;
        check_revision(revision_id.as_deref(), &a.revision_id)?;
        if let Some(v) = function_version {
            a.function_version = v;
        }
        if let Some(d) = description {
            a.description = d.into_string();
        }
        if let Some(r) = routing {
            a.routing = stored_routing(r);
        }
        let mut versions = vec![a.function_version.clone()];
        versions.extend(a.routing.iter().map(|(v, _)| v.clone()));
        self.check_versions(&function, versions).await?;
        let previous = a.revision_id.clone();
        a.revision_id = new_revision();
        let updated = a.clone();
        self.blocking(move |inner| Ok(inner.store.update_alias(&updated, Some(&previous))?))
            .await?;
        self.emit(
            &function,
            Change::AliasUpdated {
                alias: a.name.clone(),
            },
            caller,
        );
        Ok(a)
    }

    /// `DeleteAlias`. Callers: the API, once the caller is allowed `lambda:DeleteAlias` on
    /// the function. Succeeds whether or not the alias existed, as Lambda does. Emits
    /// `AliasDeleted`.
    pub async fn delete_alias(
        &self,
        command: DeleteAlias,
        caller: &dyn Caller,
    ) -> Result<(), ControlError> {
        let (f, n) = (command.function.clone(), command.name.to_string());
        self.blocking(move |inner| Ok(inner.store.delete_alias(&f, &n)?))
            .await?;
        self.emit(
            &command.function,
            Change::AliasDeleted {
                alias: command.name.to_string(),
            },
            caller,
        );
        Ok(())
    }
}
