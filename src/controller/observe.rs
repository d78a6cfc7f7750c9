//! managementPolicy Observe: find the response, record its id, report how AWS differs from the
//! spec. Nothing here writes to AWS.

use kube::Api;
use kube::runtime::controller::Action;

use super::apply::claim_of_another;
use super::status::{StatusWriter, object_key, report_failure, set_phase};
use super::{Context, events, referenced};
use crate::conditions::Phase;
use crate::crd::{IntegrationResponse, IntegrationResponseStatus};
use crate::differences::{MAX_LISTED, differences, field_names};
use crate::domain::{Desired, Observed, Target};
use crate::failure::Failure;
use crate::metrics::ObjectState;
use crate::{Error, Result};

use crate::conditions::{DIFFERS, IN_SYNC};

pub async fn observe_pass(obj: &IntegrationResponse, ctx: &Context, api: &Api<IntegrationResponse>) -> Result<Action> {
    let mut writer = StatusWriter::new(api, obj);
    let mut status = obj.status.clone().unwrap_or_default();
    let before: Vec<String> = status.differences.iter().map(|d| d.field.clone()).collect();
    match look(obj, ctx, &mut status).await {
        Ok(found) => {
            let desired = Desired::from_spec(&obj.spec);
            let (phase, state) = match &found {
                Some(observed) => {
                    status.differences = differences(&desired, &observed.fields);
                    if status.differences.is_empty() {
                        let message = format!(
                            "Integration response {} matches the spec (managementPolicy Observe).",
                            observed.id
                        );
                        (Phase::Observed { in_sync: true, message }, ObjectState::Ready)
                    } else {
                        (differs(&observed.id, &status.differences), ObjectState::Differs)
                    }
                }
                None => {
                    status.differences = vec![crate::crd::Difference {
                        field: "integrationResponseKey".into(),
                        spec: Some(desired.key.clone()),
                        aws: None,
                    }];
                    let message = format!(
                        "AWS has no integration response with key {} on integration {}; managementPolicy Observe \
                         does not create it (set managementPolicy: Manage to create it).",
                        desired.key,
                        status.integration_id.as_deref().or(obj.spec.integration_id.as_deref()).unwrap_or_default()
                    );
                    (Phase::Observed { in_sync: false, message }, ObjectState::Differs)
                }
            };
            status.differences.truncate(MAX_LISTED);
            set_phase(&mut status, &phase, obj.metadata.generation);
            writer.write(&status).await?;
            let key = object_key(obj);
            ctx.metrics.set_object_state(&key, Some(state));
            if state == ObjectState::Ready {
                ctx.snapshots.record_verified(&key, desired.fingerprint());
            }
            let after: Vec<String> = status.differences.iter().map(|d| d.field.clone()).collect();
            if after != before {
                if after.is_empty() {
                    events::normal(ctx, obj, IN_SYNC, "AWS matches the spec (managementPolicy Observe)".into()).await;
                } else {
                    let note = format!("AWS differs from the spec in {}", field_names(&status.differences).join(", "));
                    events::normal(ctx, obj, DIFFERS, note).await;
                }
            }
            Ok(ctx.resync(obj))
        }
        Err(Error::Failure(failure)) => {
            report_failure(ctx, obj, &mut writer, &mut status, &failure, false).await?;
            Err(Error::Failure(failure))
        }
        Err(err) => Err(err),
    }
}

/// The response AWS holds for this object, recording its id (and how it was found) in `status`.
async fn look(
    obj: &IntegrationResponse,
    ctx: &Context,
    status: &mut IntegrationResponseStatus,
) -> Result<Option<Observed>> {
    let target = referenced::target(ctx, obj, status).await?;
    let desired = Desired::from_spec(&obj.spec);
    let aws = ctx.aws.for_target(&target).await;
    if let Some(id) = status.integration_response_id.clone() {
        // A resync of an object in sync: one shared read per integration, as under Manage.
        if in_sync_at_this_generation(obj) {
            if ctx.snapshots.recently_verified(&object_key(obj), desired.fingerprint()) {
                return Ok(Some(Observed { id, fields: desired }));
            }
            match ctx.snapshots.fingerprint(&aws, &target, &id).await {
                Ok(Some(seen)) if seen == desired.fingerprint() => return Ok(Some(Observed { id, fields: desired })),
                Ok(_) => {}
                Err(err) if err.is_not_found() => {}
                Err(err) => return Err(Failure::from(err).into()),
            }
        }
        match aws.get(&target, &id).await {
            Ok(observed) => return Ok(Some(observed)),
            Err(err) if err.is_not_found() => {}
            Err(err) => return Err(Failure::from(err).into()),
        }
    }
    // No id, or the recorded one is gone: look the key up.
    let responses = aws.list(&target).await.map_err(Failure::from)?;
    // A create of this very object whose id was never recorded (interrupted under Manage): the
    // response is the object's own.
    if let Some(key) = status.claimed_key().map(str::to_owned) {
        if let Some(own) = responses.iter().find(|r| r.fields.key == key) {
            status.integration_response_id = Some(own.id.clone());
            status.observed_only = false;
            status.clear_claim();
            record_target(status, &target);
            return Ok(Some(own.clone()));
        }
        // Nothing was created under it. Another instance's fresh claim is left to that instance.
        if claim_of_another(status, &ctx.settings).is_none() {
            status.clear_claim();
        }
    }
    match responses.into_iter().find(|r| r.fields.key == desired.key) {
        Some(found) => {
            status.integration_response_id = Some(found.id.clone());
            status.observed_only = true;
            record_target(status, &target);
            Ok(Some(found))
        }
        None => {
            status.integration_response_id = None;
            status.observed_only = false;
            // Where it was looked for (with integrationRef the spec does not say).
            record_target(status, &target);
            Ok(None)
        }
    }
}

fn record_target(status: &mut IntegrationResponseStatus, target: &Target) {
    status.account_id = target.identity.account_id().map(str::to_owned);
    status.region = Some(target.region.clone());
    status.api_id = Some(target.api_id.clone());
    status.integration_id = Some(target.integration_id.clone());
}

fn in_sync_at_this_generation(obj: &IntegrationResponse) -> bool {
    obj.status.as_ref().is_some_and(|s| {
        s.observed_generation == obj.metadata.generation
            && s.differences.is_empty()
            && crate::conditions::is_true(&s.conditions, crate::conditions::READY)
    })
}

fn differs(id: &str, listed: &[crate::crd::Difference]) -> Phase {
    let names = field_names(listed).join(", ");
    let more = if listed.len() > MAX_LISTED {
        format!(" ({} differences, first {MAX_LISTED} listed)", listed.len())
    } else {
        String::new()
    };
    Phase::Observed {
        in_sync: false,
        message: format!(
            "AWS differs from the spec in {names}{more} (see status.differences); managementPolicy Observe leaves \
             {id} unchanged. Set managementPolicy: Manage to apply the spec."
        ),
    }
}
