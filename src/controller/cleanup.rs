//! The cleanup path: delete in AWS (unless Retain), then the finalizer goes.

use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::apply::{ambiguous_claim, claim_of_another};
use super::status::{StatusWriter, object_key, report_failure};
use super::{Context, events};
use crate::aws::Deleted;
use crate::crd::{DeletionPolicy, IntegrationResponse, IntegrationResponseStatus, ManagementPolicy};
use crate::domain::Target;
use crate::failure::Failure;
use crate::metrics::ObjectState;
use crate::{Error, Result};

pub async fn cleanup(obj: &IntegrationResponse, ctx: &Context, api: &Api<IntegrationResponse>) -> Result<Action> {
    let mut status = obj.status.clone().unwrap_or_default();
    // Counted as in progress until the watch sees it go (see `Context::forget`).
    ctx.metrics.set_object_state(&object_key(obj), Some(ObjectState::Progressing));
    // A copy that shows nothing created may predate our own last write (the watch lags): read
    // it fresh before letting the finalizer go, so a response just made is not leaked. And a
    // copy that has the response deleted may predate an edit that keeps it (managementPolicy
    // Observe, deletionPolicy Retain): a delete cannot be undone, so it is decided on the
    // object as the API server holds it.
    let nothing_recorded = status.integration_response_id.is_none() && status.claimed_key().is_none();
    let fresh;
    let obj = if nothing_recorded || kept_because(obj, &status).is_none() {
        fresh = api.get(&obj.name_any()).await?;
        // Another object under the same name (deleted and created again), or no longer being
        // deleted: nothing here is ours to delete.
        if fresh.uid() != obj.uid() || fresh.metadata.deletion_timestamp.is_none() {
            return Ok(Action::await_change());
        }
        status = fresh.status.clone().unwrap_or_default();
        &fresh
    } else {
        obj
    };
    // Another instance is creating it right now: deleting by key could miss its create, and
    // letting go now (even with Retain) would leave a response that nobody knows the id of.
    if let Some(waiting) = claim_of_another(&status, &ctx.settings) {
        let mut writer = StatusWriter::new(api, obj);
        report_failure(ctx, obj, &mut writer, &mut status, &waiting, false).await?;
        return Err(Error::Failure(waiting));
    }
    if let Some(why) = kept_because(obj, &status) {
        if let Some(id) = &status.integration_response_id {
            events::normal(ctx, obj, "Retained", format!("Kept {id} in AWS ({why})")).await;
        } else if let Some(key) = status.claimed_key() {
            // A create whose id was never recorded: what it made stays too. Say which it is,
            // or the response would be left behind with nobody knowing its id.
            let note = match made_under_claim(obj, ctx, &status, key).await {
                Some(id) => format!("Kept {id} (key {key}, created before its id could be recorded) in AWS ({why})"),
                None => format!(
                    "Kept in AWS whatever a create under key {key} made (its id was never recorded; look the key \
                     up on the integration) ({why})"
                ),
            };
            events::normal(ctx, obj, "Retained", note).await;
        }
        return Ok(Action::await_change());
    }
    match delete_in_aws(obj, ctx, &status).await {
        Ok(Some((id, Deleted::Deleted))) => {
            events::normal(ctx, obj, "Deleted", format!("Deleted integration response {id}")).await;
            Ok(Action::await_change())
        }
        Ok(Some((id, Deleted::AlreadyGone))) => {
            let note = format!("Integration response {id} was already gone from AWS; nothing to delete");
            events::normal(ctx, obj, "AlreadyGone", note).await;
            Ok(Action::await_change())
        }
        Ok(None) => Ok(Action::await_change()),
        // The finalizer stays: the AWS resource must not leak. Setting deletionPolicy: Retain
        // lets the object go without it.
        Err(failure) => {
            let mut writer = StatusWriter::new(api, obj);
            report_failure(ctx, obj, &mut writer, &mut status, &failure, false).await?;
            Err(Error::Failure(failure))
        }
    }
}

/// Why the response stays in AWS when the object goes, if it does.
fn kept_because(obj: &IntegrationResponse, status: &IntegrationResponseStatus) -> Option<&'static str> {
    if obj.spec.management_policy() == ManagementPolicy::Observe {
        Some("managementPolicy Observe")
    } else if status.observed_only {
        Some("it was only observed, never managed by this object")
    } else if obj.spec.deletion_policy() == DeletionPolicy::Retain {
        Some("deletionPolicy Retain")
    } else {
        None
    }
}

/// Where the response was created, as recorded; the spec is only a fallback.
async fn recorded_target(
    obj: &IntegrationResponse,
    ctx: &Context,
    status: &IntegrationResponseStatus,
) -> Result<Option<Target>, Failure> {
    let region = status.region.as_deref().or(obj.spec.region.as_deref()).or(ctx.settings.default_region.as_deref());
    // Recorded with every claim and id, so the spec's (absent with integrationRef) is only a
    // fallback for objects from older versions.
    let api_id = status.api_id.clone().or_else(|| obj.spec.api_id.clone());
    let integration_id = status.integration_id.clone().or_else(|| obj.spec.integration_id.clone());
    let (Some(region), Some(api_id), Some(integration_id)) = (region, api_id, integration_id) else {
        return Ok(None);
    };
    let identity = super::accounts::identity_for_cleanup(ctx, obj, status).await?;
    Ok(Some(Target { region: region.to_owned(), api_id, integration_id, identity }))
}

/// The one response under the claimed key, if a read finds exactly one (read only).
async fn made_under_claim(
    obj: &IntegrationResponse,
    ctx: &Context,
    status: &IntegrationResponseStatus,
    key: &str,
) -> Option<String> {
    let target = recorded_target(obj, ctx, status).await.ok().flatten()?;
    let responses = ctx.aws.for_target(&target).await.list(&target).await.ok()?;
    match responses.iter().filter(|r| r.fields.key == key).collect::<Vec<_>>()[..] {
        [only] => Some(only.id.clone()),
        _ => None,
    }
}

/// Returns the id and what its delete found, or `None` when nothing was ever created.
async fn delete_in_aws(
    obj: &IntegrationResponse,
    ctx: &Context,
    status: &IntegrationResponseStatus,
) -> Result<Option<(String, Deleted)>, Failure> {
    if status.integration_response_id.is_none() && status.claimed_key().is_none() {
        return Ok(None);
    }
    let Some(target) = recorded_target(obj, ctx, status).await? else { return Ok(None) };
    let aws = ctx.aws.for_target(&target).await;
    let id = match (&status.integration_response_id, status.claimed_key()) {
        (Some(id), _) => id.clone(),
        // A create was sent but its id never recorded: it may exist under the pending key.
        (None, Some(key)) => match aws.list(&target).await {
            Ok(responses) => {
                let under_key: Vec<&str> =
                    responses.iter().filter(|r| r.fields.key == key).map(|r| r.id.as_str()).collect();
                match under_key[..] {
                    [] => return Ok(None),
                    [id] => id.to_owned(),
                    _ => return Err(ambiguous_claim(&target, key, &under_key)),
                }
            }
            Err(err) if err.is_not_found() => return Ok(None),
            Err(err) => return Err(err.into()),
        },
        (None, None) => return Ok(None),
    };
    // Recorded by another live object as well (two instances' caches lagged each other): it is
    // that object's to delete.
    if let Some(owner) = ctx.owners.other_manager(&target.api_id, &id, "", "", &object_key(obj))
        && ctx.still_records(&owner, &id).await.map_err(|err| {
            tracing::warn!(%err, %owner, "could not read the other object that records the response");
            Failure::Transient {
                reason: "KubernetesUnavailable",
                message: format!("Could not read IntegrationResponse {owner}, which also records {id}; retrying."),
            }
        })?
    {
        tracing::info!(%id, %owner, "left the integration response to the other object that records it");
        return Ok(None);
    }
    let deleted = aws.delete(&target, &id).await;
    ctx.snapshots.invalidate(&target);
    Ok(Some((id, deleted?)))
}
