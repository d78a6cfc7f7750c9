//! managementPolicy Observe: find the response, record its id, report how AWS differs from the
//! spec. Nothing here writes to AWS.

use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::apply::{ambiguous_claim, claim_of_another};
use super::status::{StatusWriter, object_key, report_failure, set_phase};
use super::{Context, events, referenced};
use crate::conditions::Phase;
use crate::crd::{ADOPT_ANNOTATION, IntegrationResponse, IntegrationResponseStatus};
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
    // Set once this pass has seen the recorded response gone: a failure after that must not
    // leave the object InSync.
    let mut seen_gone = false;
    match look(obj, ctx, &mut status, &mut seen_gone).await {
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
                        // Managing a response this object did not make takes the adopt annotation.
                        let needs_adopt = status.observed_only
                            && obj.annotations().get(ADOPT_ANNOTATION).map(String::as_str) != Some("true");
                        (differs(&observed.id, &status.differences, needs_adopt), ObjectState::Differs)
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
            // Looked at again at its integration's next resync slot (see `resync`).
            Ok(Action::await_change())
        }
        Err(Error::Failure(failure)) => {
            report_failure(ctx, obj, &mut writer, &mut status, &failure, seen_gone).await?;
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
    seen_gone: &mut bool,
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
            Err(err) if err.is_not_found() => *seen_gone = true,
            Err(err) => return Err(Failure::from(err).into()),
        }
    }
    // Another instance's fresh claim: it is creating this object's response now. Whatever it
    // makes is recorded by that instance's next pass, which this one must not pre-empt by
    // recording another response (the claim would then never be resolved).
    if let Some(waiting) = claim_of_another(status, &ctx.settings) {
        return Err(waiting.into());
    }
    // No id, or the recorded one is gone: look the key up.
    let responses = aws.list(&target).await.map_err(Failure::from)?;
    // A create of this very object whose id was never recorded (interrupted under Manage): the
    // response is the object's own, unless another object records it (it made the response,
    // or took it over): then it is only observed here, so the two never both own it.
    if let Some(key) = status.claimed_key().map(str::to_owned) {
        // Several under it (an emulator that accepts duplicate keys): which one is ours cannot
        // be told, so neither is taken, and the claim stays (as under Manage).
        let under_key: Vec<&str> = responses.iter().filter(|r| r.fields.key == key).map(|r| r.id.as_str()).collect();
        if under_key.len() > 1 {
            return Err(ambiguous_claim(&target, &key, &under_key).into());
        }
        if let Some(own) = responses.iter().find(|r| r.fields.key == key) {
            status.clear_claim();
            let other = ctx.owners.other_manager(&target.api_id, &own.id, "", "", &object_key(obj));
            let theirs = match other {
                Some(owner) => ctx.still_records(&owner, &own.id).await?,
                None => false,
            };
            status.integration_response_id = Some(own.id.clone());
            status.observed_only = theirs;
            record_target(status, &target);
            return Ok(Some(own.clone()));
        }
        // Nothing under it yet. The claim stays: a create whose answer was lost may still land,
        // and only a definite answer (as under Manage) may clear it.
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

fn differs(id: &str, listed: &[crate::crd::Difference], needs_adopt: bool) -> Phase {
    let names = field_names(listed).join(", ");
    let more = if listed.len() > MAX_LISTED {
        format!(" ({} differences, first {MAX_LISTED} listed)", listed.len())
    } else {
        String::new()
    };
    let to_apply = if needs_adopt {
        format!(
            "This object did not create {id}: set the annotation {ADOPT_ANNOTATION}: \"true\" and managementPolicy: \
             Manage to apply the spec."
        )
    } else {
        "Set managementPolicy: Manage to apply the spec.".to_owned()
    };
    Phase::Observed {
        in_sync: false,
        message: format!(
            "AWS differs from the spec in {names}{more} (see status.differences); managementPolicy Observe leaves \
             {id} unchanged. {to_apply}"
        ),
    }
}
