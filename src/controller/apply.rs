//! The apply path: find or create the response, then bring it in line with the spec.

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::status::{StatusWriter, object_key, report_failure, set_phase};
use super::{Context, Settings, events, observe, referenced};
use crate::aws::{AwsError, ErrorKind, IntegrationResponses};
use crate::conditions::Phase;
use crate::crd::{ADOPT_ANNOTATION, FINALIZER, IntegrationResponse, IntegrationResponseStatus, ManagementPolicy};
use crate::domain::{Desired, Observed, Target};
use crate::failure::Failure;
use crate::metrics::ObjectState;
use crate::plan::{Plan, plan};
use crate::{Error, Result};

pub async fn apply(obj: &IntegrationResponse, ctx: &Context, api: &Api<IntegrationResponse>) -> Result<Action> {
    // The cached copy can predate our own last status write (the watch delivers our writes one
    // by one). With a create pending, acting on such a copy would look like a crash recovery, so
    // read the object fresh in that one state.
    let claimed = obj.status.as_ref().is_some_and(|s| s.claimed_key().is_some() && s.integration_response_id.is_none());
    let fresh = if claimed { Some(api.get(&obj.name_any()).await?) } else { None };
    match apply_pass(fresh.as_ref().unwrap_or(obj), ctx, api).await {
        // Every status write is conditional on the copy it was computed from: another writer
        // (or our own write the watch has not delivered yet) moved the object on. Decide again
        // from the object as it is now.
        Err(Error::Kube(kube::Error::Api(status))) if status.code == 409 => {
            let fresh = api.get(&obj.name_any()).await?;
            apply_pass(&fresh, ctx, api).await
        }
        result => result,
    }
}

async fn apply_pass(obj: &IntegrationResponse, ctx: &Context, api: &Api<IntegrationResponse>) -> Result<Action> {
    // A fresh copy can show the object being deleted since the cached one was taken (creating
    // now could race a cleanup another instance is finishing), or show a new object under the
    // same name without our finalizer yet (a response made for it could leak). Either way the
    // finalizer wrapper must decide again; the change itself triggers that reconcile.
    if obj.metadata.deletion_timestamp.is_some() || !obj.finalizers().iter().any(|f| f == FINALIZER) {
        return Ok(Action::requeue(std::time::Duration::from_secs(1)));
    }
    if obj.spec.management_policy() == ManagementPolicy::Observe {
        return observe::observe_pass(obj, ctx, api).await;
    }
    let mut writer = StatusWriter::new(api, obj);
    let mut status = obj.status.clone().unwrap_or_default();
    // Differences are reported under Observe only; under Manage the spec is applied.
    status.differences.clear();
    let mut run = Run { obj, ctx, writer: &mut writer, status: &mut status, changes: Vec::new(), aws_differs: false };
    let result = match run.converge().await {
        Ok(message) => {
            set_phase(run.status, &Phase::Ready { message }, obj.metadata.generation);
            match run.writer.write(run.status).await {
                Ok(()) => {
                    let key = object_key(obj);
                    ctx.snapshots.record_verified(&key, Desired::from_spec(&obj.spec).fingerprint());
                    ctx.metrics.set_object_state(&key, Some(ObjectState::Ready));
                    // Looked at again at its integration's next resync slot (see `resync`).
                    Ok(Action::await_change())
                }
                Err(err) => Err(err.into()),
            }
        }
        Err(Error::Failure(failure)) => {
            match report_failure(ctx, obj, run.writer, run.status, &failure, run.aws_differs).await {
                Ok(()) => Err(Error::Failure(failure)),
                Err(err) => Err(err.into()),
            }
        }
        Err(err) => Err(err),
    };
    // What was changed in AWS is reported whether or not the status write went through.
    for (reason, note) in std::mem::take(&mut run.changes) {
        events::normal(ctx, obj, reason, note).await;
    }
    result
}

/// One apply pass over one object. `status` is the status being built; it is written at the
/// points where losing it could duplicate or leak an AWS resource.
struct Run<'a, 'w> {
    obj: &'a IntegrationResponse,
    ctx: &'a Context,
    writer: &'a mut StatusWriter<'w>,
    status: &'a mut IntegrationResponseStatus,
    /// Changes made, as (reason, note): published once status is written, so nothing comes
    /// between a create and the write of its id.
    changes: Vec<(&'static str, String)>,
    /// This pass has seen AWS differ from the spec (drift, a lost response): a failure from
    /// here on must not leave the object Ready.
    aws_differs: bool,
}

/// How the apply pass came to hold the response it reconciles.
enum Found {
    Recorded(Observed),
    /// The recorded id is gone from AWS (deleted outside Kubernetes).
    Lost,
    Missing,
}

impl Run<'_, '_> {
    /// Returns the Ready message.
    async fn converge(&mut self) -> Result<String> {
        let target = referenced::target(self.ctx, self.obj, self.status).await?;
        let desired = Desired::from_spec(&self.obj.spec);
        let aws = self.ctx.aws.for_target(&target).await;

        // A response found while observing is someone else's until adopted. Adopting reads it.
        let mut adopted = None;
        if self.status.observed_only
            && let Some(id) = self.status.integration_response_id.clone()
        {
            adopted = self.adopt_observed(&aws, &target, &id, &desired).await?;
        }

        // Two objects recording one response (instances whose caches lagged each other): the
        // one that sorts later gives it up, so they stop overwriting each other in AWS.
        if let Some(id) = self.status.integration_response_id.clone()
            && let Some(owner) = self.ctx.owners.yields_to(&target.api_id, &id, &object_key(self.obj))
            && self.ctx.still_records(&owner, &id).await?
        {
            self.status.integration_response_id = None;
            self.status.clear_claim();
            return Err(already_managed(&id, &desired.key, &owner).into());
        }

        // A resync of an object already in sync: one shared read per integration. A fingerprint
        // that does not match (or no entry) falls through to a direct read below.
        if let Some(id) = self.status.integration_response_id.clone()
            && adopted.is_none()
            && self.in_sync_at_this_generation()
        {
            if self.ctx.snapshots.recently_verified(&object_key(self.obj), desired.fingerprint()) {
                return Ok(ready_message(&id));
            }
            match self.ctx.snapshots.fingerprint(&aws, &target, &id).await {
                Ok(Some(observed)) if observed == desired.fingerprint() => return Ok(ready_message(&id)),
                Ok(_) => {}
                Err(err) if err.is_not_found() => {}
                Err(err) => return Err(Failure::from(err).into()),
            }
        }

        let found = match (adopted, self.status.integration_response_id.clone()) {
            (Some(observed), _) => Found::Recorded(observed),
            (None, None) => Found::Missing,
            (None, Some(id)) => match aws.get(&target, &id).await {
                Ok(observed) => Found::Recorded(observed),
                Err(err) if err.is_not_found() => Found::Lost,
                Err(err) => return Err(Failure::from(err).into()),
            },
        };
        // Only a response this object already held can have drifted; one just found by key is
        // simply brought in line.
        let recorded = matches!(found, Found::Recorded(_));
        if matches!(found, Found::Lost) {
            self.aws_differs = true;
        }
        let existing = match found {
            Found::Recorded(observed) => observed,
            Found::Lost | Found::Missing => match self.find_by_key(&aws, &target, &desired).await? {
                Some(observed) => observed,
                None => {
                    // Lost with a claim held: our own replace or create was interrupted, not a
                    // deletion outside Kubernetes.
                    let recreating = matches!(found, Found::Lost) && self.status.claimed_key().is_none();
                    self.create(&aws, &target, &desired, recreating).await?
                }
            },
        };

        let planned = plan(&desired, &existing);
        if recorded && planned != Plan::InSync {
            self.aws_differs = true;
        }
        match planned {
            Plan::InSync => Ok(ready_message(&existing.id)),
            Plan::Update(changes) => {
                // Unlike a create or a replace, an update is not preceded by a conditional status
                // write, which would refuse a copy that predates an edit of the object.
                self.still_current().await?;
                let updated = aws.update(&target, &existing.id, &changes).await;
                self.ctx.snapshots.invalidate(&target);
                let updated = match updated {
                    Ok(updated) => updated,
                    // Deleted meanwhile (the API and integration are still there: we just read
                    // the response): the next pass finds it lost and creates it again.
                    Err(err) if err.is_not_found() => {
                        self.aws_differs = true;
                        return Err(Failure::Transient {
                            reason: "ResponseMissing",
                            message: format!(
                                "{} was deleted while it was being updated; it is created again.",
                                existing.id
                            ),
                        }
                        .into());
                    }
                    Err(err) => return Err(Failure::from(err).into()),
                };
                let fields = changes.fields().join(", ");
                // Drift only if AWS matched this very spec before: a spec edit (whose earlier
                // attempts may have failed) is an update the user asked for.
                if recorded && self.in_sync_at_this_generation() {
                    let note = format!("Put back {fields} of {}, changed outside Kubernetes", existing.id);
                    self.changes.push(("DriftCorrected", note));
                } else if self.obj.status.as_ref().is_some_and(|s| !s.differences.is_empty()) {
                    let note = format!(
                        "Applied the differences observed under managementPolicy Observe: updated {fields} of {}",
                        existing.id
                    );
                    self.changes.push(("Updated", note));
                } else {
                    let note = format!("Updated {fields} of {}", existing.id);
                    self.changes.push(("Updated", note));
                }
                // AWS answers an update with the whole response. Anything that did not take (a
                // map the service merged instead of replacing, say) cannot be fixed by sending
                // the same update again, so the response is made anew from the spec.
                match plan(&desired, &updated) {
                    Plan::InSync => Ok(ready_message(&existing.id)),
                    Plan::Update(left) => {
                        let why = format!("AWS kept {} as it was after the update", left.fields().join(", "));
                        self.replace(&aws, &target, &desired, &existing.id, &why).await
                    }
                    Plan::Replace => {
                        self.replace(&aws, &target, &desired, &existing.id, "AWS kept contentHandlingStrategy").await
                    }
                }
            }
            Plan::Replace => {
                let why = "AWS cannot unset contentHandlingStrategy in place";
                self.replace(&aws, &target, &desired, &existing.id, why).await
            }
        }
    }

    /// A response recorded under managementPolicy Observe becomes this object's only through the
    /// adopt annotation, and only if no other object manages it. Returns it as read when adopted;
    /// `None` when it is gone (the id is then dropped).
    async fn adopt_observed(
        &mut self,
        aws: &IntegrationResponses,
        target: &Target,
        id: &str,
        desired: &Desired,
    ) -> Result<Option<Observed>> {
        // Gone since it was observed: there is nothing to adopt (nor to report adopted), and
        // the key is free.
        let observed = match aws.get(target, id).await {
            Err(err) if err.is_not_found() => {
                self.status.integration_response_id = None;
                self.status.observed_only = false;
                return Ok(None);
            }
            Err(err) => return Err(Failure::from(err).into()),
            Ok(observed) => observed,
        };
        if self.obj.annotations().get(ADOPT_ANNOTATION).map(String::as_str) != Some("true") {
            return Err(Failure::stalled(
                "AlreadyExists",
                format!(
                    "Integration response {id} (key {}) was found while observing (managementPolicy Observe); this \
                     object did not create it. Set the annotation {ADOPT_ANNOTATION}: \"true\" to manage it, or set \
                     managementPolicy: Observe again.",
                    desired.key
                ),
            )
            .into());
        }
        let me = object_key(self.obj);
        if let Some(owner) =
            self.ctx.owners.other_manager(&target.api_id, id, &target.integration_id, &desired.key, &me)
        {
            return Err(already_managed(id, &desired.key, &owner).into());
        }
        self.status.observed_only = false;
        self.changes.push(("Adopted", format!("Adopted integration response {id}, observed until now")));
        Ok(Some(observed))
    }

    /// Deletes the response and creates it again from the spec, for changes an update cannot make.
    async fn replace(
        &mut self,
        aws: &IntegrationResponses,
        target: &Target,
        desired: &Desired,
        id: &str,
        why: &str,
    ) -> Result<String> {
        // The claim first: a pass that resumes after the delete knows it was ours.
        self.status.claim(&desired.key, &self.ctx.settings.identity, now_rfc3339());
        self.writer.write(self.status).await?;
        let deleted = aws.delete(target, id).await;
        self.ctx.snapshots.invalidate(target);
        deleted.map_err(Failure::from)?;
        self.changes.push(("Replacing", format!("Deleted {id} to create it again: {why}")));
        let created = self.create(aws, target, desired, false).await?;
        if plan(desired, &created) != Plan::InSync {
            // Only when the create found an earlier attempt's response that differs.
            return Err(Failure::Transient {
                reason: "Replacing",
                message: format!("Created {}; bringing it in line with the spec.", created.id),
            }
            .into());
        }
        Ok(ready_message(&created.id))
    }

    /// Fails unless the object, as the API server holds it now, is still the one this pass
    /// started from at the same generation: a cached copy can predate a spec edit (a switch to
    /// managementPolicy Observe, say) or a deletion. The status write of that failure is then
    /// refused as well (409), and `apply` decides again from the object as it is.
    async fn still_current(&self) -> Result<()> {
        let api: Api<IntegrationResponse> =
            Api::namespaced(self.ctx.client.clone(), &self.obj.namespace().unwrap_or_default());
        let current = api.get_opt(&self.obj.name_any()).await?;
        let same = current.is_some_and(|current| {
            current.uid() == self.obj.uid()
                && current.metadata.generation == self.obj.metadata.generation
                && current.metadata.deletion_timestamp.is_none()
        });
        if same {
            return Ok(());
        }
        Err(Failure::Transient {
            reason: "ObjectChanged",
            message: "The object changed while it was being reconciled; reconciling it again.".into(),
        }
        .into())
    }

    /// Ready for the current generation as of the copy this pass started from.
    fn in_sync_at_this_generation(&self) -> bool {
        self.obj.status.as_ref().is_some_and(|s| {
            s.observed_generation == self.obj.metadata.generation
                && crate::conditions::is_true(&s.conditions, crate::conditions::READY)
        })
    }

    /// With no usable id: a response under the pending key is our own create whose id was never
    /// recorded (crash, lost reply), so it is taken over. One under the spec's key belongs to
    /// someone else and is only taken with the adopt annotation.
    async fn find_by_key(
        &mut self,
        aws: &IntegrationResponses,
        target: &Target,
        desired: &Desired,
    ) -> Result<Option<Observed>> {
        // Another instance's fresh claim: it is creating this very response now. Creating or
        // taking over by key here could make a second one or steal a half-made one.
        if let Some(waiting) = claim_of_another(self.status, &self.ctx.settings) {
            return Err(waiting.into());
        }
        let responses = aws.list(target).await.map_err(Failure::from)?;
        let by_key = |key: &str| responses.iter().find(|r| r.fields.key == key).cloned();
        if let Some(key) = self.status.claimed_key() {
            let under_key: Vec<&str> =
                responses.iter().filter(|r| r.fields.key == key).map(|r| r.id.as_str()).collect();
            if under_key.len() > 1 {
                return Err(ambiguous_claim(target, key, &under_key).into());
            }
        }
        if let Some(found) = self.status.claimed_key().and_then(by_key) {
            if let Some(owner) = self.ctx.owners.yields_to(&target.api_id, &found.id, &object_key(self.obj)) {
                self.status.clear_claim();
                return Err(already_managed(&found.id, &found.fields.key, &owner).into());
            }
            let note =
                format!("Took over {} (key {}), created before its id could be recorded", found.id, found.fields.key);
            self.record_id(target, &found);
            self.changes.push(("TakenOver", note));
            return Ok(Some(found));
        }
        let Some(found) = by_key(&desired.key) else {
            return Ok(None);
        };
        if self.obj.annotations().get(ADOPT_ANNOTATION).map(String::as_str) == Some("true") {
            // One response, one owner: two objects adopting one response would overwrite each
            // other's fields in AWS on every resync.
            let me = object_key(self.obj);
            let other = self.ctx.owners.other_manager(
                &target.api_id,
                &found.id,
                &target.integration_id,
                &found.fields.key,
                &me,
            );
            if let Some(owner) = other {
                self.status.clear_claim();
                return Err(already_managed(&found.id, &found.fields.key, &owner).into());
            }
            self.record_id(target, &found);
            self.changes.push(("Adopted", format!("Adopted existing integration response {}", found.id)));
            return Ok(Some(found));
        }
        self.status.clear_claim();
        Err(Failure::stalled("AlreadyExists", foreign_message(&found, target)).into())
    }

    /// The id reaches the API server with the status write that ends this pass. Until then the
    /// pending key stays stored, so a crash in between still finds the response by key.
    fn record_id(&mut self, target: &Target, found: &Observed) {
        self.status.integration_response_id = Some(found.id.clone());
        self.status.clear_claim();
        self.record_target(target);
    }

    fn record_target(&mut self, target: &Target) {
        self.status.account_id = target.identity.account_id().map(str::to_owned);
        self.status.region = Some(target.region.clone());
        self.status.api_id = Some(target.api_id.clone());
        self.status.integration_id = Some(target.integration_id.clone());
    }

    /// The pending key is stored before the call, so a crash at any point after it leaves enough
    /// in status to find the response again instead of making a second one.
    async fn create(
        &mut self,
        aws: &IntegrationResponses,
        target: &Target,
        desired: &Desired,
        recreating: bool,
    ) -> Result<Observed> {
        // A claim of this object on this key means an earlier attempt for this very object (ours,
        // or an instance whose claim expired) may have made it, its answer lost.
        let ours_before = self.status.claimed_key() == Some(desired.key.as_str());
        self.status.integration_response_id = None;
        self.status.claim(&desired.key, &self.ctx.settings.identity, now_rfc3339());
        self.record_target(target);
        let phase =
            Phase::Progressing { reason: "Creating", message: "Creating the integration response in AWS.".into() };
        set_phase(self.status, &phase, self.obj.metadata.generation);
        self.writer.write(self.status).await?;

        let created = aws.create(target, desired).await;
        // Dropped after the write: a snapshot taken while it was in flight may predate it.
        self.ctx.snapshots.invalidate(target);
        let created = match created {
            Ok(created) => created,
            Err(err) => {
                let found = self.create_refused(aws, target, desired, err, ours_before).await?;
                // Our own earlier create, which a listing missed (pages shift while responses
                // are added and removed): taken over, not called foreign, and brought in line
                // by the caller like any response found.
                self.record_id(target, &found);
                let note = format!("Took over {} (key {}), created by an earlier attempt", found.id, found.fields.key);
                self.changes.push(("TakenOver", note));
                return Ok(found);
            }
        };
        self.record_id(target, &created);
        let (reason, note) = if recreating {
            ("Recreated", format!("Created {} again after it was deleted outside Kubernetes", created.id))
        } else {
            ("Created", format!("Created integration response {}", created.id))
        };
        self.changes.push((reason, note));
        Ok(created)
    }
}

impl Run<'_, '_> {
    /// Turns a failed create into the failure to report. The claim (pending key) is kept only
    /// while the outcome is unknown: an answer that proves nothing was created clears it, so the
    /// object can never later take over a response someone else made under that key. `Ok` is
    /// the response under the key when it is our own, from an earlier attempt under our claim.
    async fn create_refused(
        &mut self,
        aws: &IntegrationResponses,
        target: &Target,
        desired: &Desired,
        err: AwsError,
        ours_before: bool,
    ) -> Result<Observed> {
        match err.kind {
            // No credentials (STS failed or refused the role): the create never left, nothing
            // was made under the claim.
            _ if err.never_sent() => {
                self.status.clear_claim();
                return Err(Failure::from(err).into());
            }
            // Timeouts, dropped connections, 5xx: AWS may have created it; the next pass looks
            // the key up.
            ErrorKind::Network | ErrorKind::ServerError => return Err(Failure::from(err).into()),
            ErrorKind::Throttled | ErrorKind::NotFound | ErrorKind::BadRequest | ErrorKind::AccessDenied => {
                self.status.clear_claim();
                return Err(Failure::from(err).into());
            }
            ErrorKind::Conflict => {}
        }
        // A conflict is either the key, taken since we looked, or another change to the API
        // overlapping ours. Look again to tell which.
        let responses = aws.list(target).await.map_err(Failure::from)?;
        match responses.into_iter().find(|r| r.fields.key == desired.key) {
            Some(found) if ours_before => Ok(found),
            Some(found) => {
                self.status.clear_claim();
                Err(Failure::stalled("AlreadyExists", foreign_message(&found, target)).into())
            }
            None => {
                self.status.clear_claim();
                Err(Failure::from(err).into())
            }
        }
    }
}

/// Whole seconds, rounded down so a claim never looks younger than it is.
fn now_rfc3339() -> String {
    let now = Timestamp::now();
    Timestamp::from_second(now.as_second()).unwrap_or(now).to_string()
}

/// A claim of another instance that is younger than the claim timeout, as a failure that
/// retries later; `None` when there is no claim, it is ours, or it is old enough to be taken
/// over (its writer crashed or lost its lease). Claims without a holder come from earlier
/// versions, which ran one writer: they are treated as our own.
pub(super) fn claim_of_another(status: &IntegrationResponseStatus, settings: &Settings) -> Option<Failure> {
    let claim = status.pending_create.as_ref().filter(|c| c.holder != settings.identity)?;
    let since: Timestamp = claim.since.parse().ok()?;
    let age = Timestamp::now().duration_since(since);
    let timeout = SignedDuration::try_from(settings.claim_timeout).unwrap_or(SignedDuration::MAX);
    (age < timeout).then(|| Failure::Transient {
        reason: "CreateInProgress",
        message: format!(
            "Operator instance {} has been creating this response (key {}) since {}; waiting for it to finish.",
            claim.holder, claim.key, claim.since
        ),
    })
}

fn already_managed(id: &str, key: &str, owner: &str) -> Failure {
    Failure::stalled(
        "AlreadyManaged",
        format!(
            "Integration response {id} (key {key}) is managed by IntegrationResponse {owner}; an integration \
             response can have only one owner. Change integrationResponseKey, or delete {owner} (with \
             deletionPolicy: Retain) before adopting it here."
        ),
    )
}

/// More than one response under the key of a create whose id was never recorded (an emulator
/// that accepts duplicate keys): one is ours, the others someone else's; taking or deleting the
/// wrong one would break theirs. The claim stays, so once one is left it is taken over.
pub(super) fn ambiguous_claim(target: &Target, key: &str, ids: &[&str]) -> Failure {
    Failure::stalled(
        "AlreadyExists",
        format!(
            "Integration {} has {} integration responses with key {key} ({}); one was created for this object \
             before its id could be recorded. Delete the others in AWS and the operator takes the last one over.",
            target.integration_id,
            ids.len(),
            ids.join(", ")
        ),
    )
}

fn ready_message(id: &str) -> String {
    format!("Integration response {id} matches the spec.")
}

fn foreign_message(found: &Observed, target: &Target) -> String {
    format!(
        "Integration {} already has an integration response with key {} (id {}) that this object did not create. \
         Change integrationResponseKey, delete that response in AWS, or set the annotation {ADOPT_ANNOTATION}: \"true\" \
         to take it over.",
        target.integration_id, found.fields.key, found.id
    )
}
