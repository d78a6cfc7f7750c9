//! Writing `status` with server-side apply, only when it changed.

use k8s_openapi::jiff::{Timestamp, Unit};
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::{Context, events};
use crate::conditions::{self, Phase};
use crate::crd::{FIELD_MANAGER, IntegrationResponse, IntegrationResponseStatus};
use crate::failure::Failure;
use crate::metrics::ObjectState;

/// "namespace/name", for per-object bookkeeping.
pub fn object_key(obj: &IntegrationResponse) -> String {
    super::key_of(obj.namespace().as_deref(), &obj.name_any())
}

/// Applies status for one object; remembers what it last wrote so an unchanged status is never
/// written twice (a steady object costs no API server writes).
///
/// Each write carries the resourceVersion of the copy it was computed from (then of its own
/// last write) as a precondition, so a writer working from a stale copy gets 409 Conflict
/// instead of overwriting what it did not see: an id, once written, is never erased that way.
pub struct StatusWriter<'a> {
    api: &'a Api<IntegrationResponse>,
    name: String,
    last: IntegrationResponseStatus,
    resource_version: Option<String>,
}

impl<'a> StatusWriter<'a> {
    pub fn new(api: &'a Api<IntegrationResponse>, obj: &IntegrationResponse) -> Self {
        Self {
            api,
            name: obj.name_any(),
            last: obj.status.clone().unwrap_or_default(),
            resource_version: obj.resource_version(),
        }
    }

    pub async fn write(&mut self, status: &IntegrationResponseStatus) -> Result<(), kube::Error> {
        if &self.last == status {
            return Ok(());
        }
        // We own every status field, so fields left out of the apply are removed.
        let patch = json!({
            "apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1",
            "kind": "IntegrationResponse",
            "metadata": {"resourceVersion": self.resource_version},
            "status": status,
        });
        let written =
            self.api.patch_status(&self.name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(patch)).await?;
        self.resource_version = written.resource_version();
        self.last = status.clone();
        Ok(())
    }
}

pub fn set_phase(status: &mut IntegrationResponseStatus, phase: &Phase, generation: Option<i64>) {
    let now = Timestamp::now().round(Unit::Second).unwrap_or_else(|_| Timestamp::now()).to_string();
    status.observed_generation = generation;
    status.conditions = conditions::next(&status.conditions, phase, generation, &now);
}

/// Records a failure in the conditions and, when its reason is new, as a Warning Event.
/// A transient failure of an object that is Ready at this generation (a throttled resync read,
/// say) changes nothing visible, unless the pass had already seen AWS differ from the spec
/// (`aws_differs`): flapping Ready would page people and unsettle Argo CD, but Ready must not
/// be claimed for a state known to be wrong.
pub async fn report_failure(
    ctx: &Context,
    obj: &IntegrationResponse,
    writer: &mut StatusWriter<'_>,
    status: &mut IntegrationResponseStatus,
    failure: &Failure,
    aws_differs: bool,
) -> Result<(), kube::Error> {
    let generation = obj.metadata.generation;
    let before = obj.status.clone().unwrap_or_default();
    let ready_now =
        conditions::is_true(&before.conditions, conditions::READY) && before.observed_generation == generation;
    if matches!(failure, Failure::Transient { .. }) && ready_now && !aws_differs {
        if obj.metadata.deletion_timestamp.is_none() {
            ctx.metrics.set_object_state(&object_key(obj), Some(ObjectState::Ready));
        }
        return writer.write(status).await;
    }
    let state = if failure.is_stalled() { ObjectState::Stalled } else { ObjectState::Progressing };
    ctx.metrics.set_object_state(&object_key(obj), Some(state));
    set_phase(status, &Phase::from_failure(failure), generation);
    writer.write(status).await?;
    let previous_reason = before.condition(conditions::READY).map(|c| c.reason.as_str());
    // Waiting for another instance's create, or for a referenced Integration, is normal, not a
    // failure to flag.
    let waiting = matches!(failure, Failure::ReferenceNotReady { .. }) || failure.reason() == "CreateInProgress";
    if previous_reason != Some(failure.reason()) && !waiting {
        events::warning(ctx, obj, failure.reason(), failure.message().to_owned()).await;
    }
    Ok(())
}
