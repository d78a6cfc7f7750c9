//! The finalizer, as kube-runtime's `finalizer()` does it, with one difference: every patch
//! also tests `metadata.uid`. kube-runtime's removal tests only the finalizer's index, so a
//! cleanup still running from a copy of an object that was deleted and created again under the
//! same name removed the new object's finalizer, and the new object's response leaked when it
//! was deleted (found by the simulation).

use std::future::Future;
use std::sync::Arc;

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, RemoveOperation, TestOperation};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Error, Event};
use kube::{Resource, ResourceExt};
use serde_json::Value;

use crate::crd::IntegrationResponse;

fn pointer(path: &str) -> Result<PointerBuf, Error<crate::Error>> {
    PointerBuf::parse(path).map_err(|_| Error::InvalidFinalizer)
}

fn test(path: &str, value: Value) -> Result<PatchOperation, Error<crate::Error>> {
    Ok(PatchOperation::Test(TestOperation { path: pointer(path)?, value }))
}

/// Adds the finalizer before the first apply, runs cleanup and then removes it once the object
/// is being deleted; every patch is refused (422) if the object is another incarnation.
pub async fn finalizer<F, Fut>(
    api: &Api<IntegrationResponse>,
    name: &str,
    obj: Arc<IntegrationResponse>,
    reconcile: F,
) -> Result<Action, Error<crate::Error>>
where
    F: FnOnce(Event<IntegrationResponse>) -> Fut,
    Fut: Future<Output = Result<Action, crate::Error>>,
{
    let object_name = obj.meta().name.clone().ok_or(Error::UnnamedObject)?;
    let same_incarnation = test("/metadata/uid", obj.uid().map(Value::String).unwrap_or(Value::Null))?;
    let index = obj.finalizers().iter().position(|f| f == name);
    let deleting = obj.meta().deletion_timestamp.is_some();
    match (index, deleting) {
        (Some(_), false) => reconcile(Event::Apply(obj)).await.map_err(Error::ApplyFailed),
        (Some(index), true) => {
            let action = reconcile(Event::Cleanup(obj)).await.map_err(Error::CleanupFailed)?;
            let path = format!("/metadata/finalizers/{index}");
            let patch = vec![
                same_incarnation,
                test(&path, name.into())?,
                PatchOperation::Remove(RemoveOperation { path: pointer(&path)? }),
            ];
            api.patch::<IntegrationResponse>(
                &object_name,
                &PatchParams::default(),
                &Patch::Json(json_patch::Patch(patch)),
            )
            .await
            .map_err(Error::RemoveFinalizer)?;
            Ok(action)
        }
        (None, false) => {
            let add = if obj.finalizers().is_empty() {
                vec![
                    test("/metadata/finalizers", Value::Null)?,
                    PatchOperation::Add(AddOperation {
                        path: pointer("/metadata/finalizers")?,
                        value: vec![name].into(),
                    }),
                ]
            } else {
                // Kubernetes does not deduplicate finalizers: fail and retry if the list moved.
                vec![
                    test("/metadata/finalizers", obj.finalizers().into())?,
                    PatchOperation::Add(AddOperation { path: pointer("/metadata/finalizers/-")?, value: name.into() }),
                ]
            };
            let patch = std::iter::once(same_incarnation).chain(add).collect();
            api.patch::<IntegrationResponse>(
                &object_name,
                &PatchParams::default(),
                &Patch::Json(json_patch::Patch(patch)),
            )
            .await
            .map_err(Error::AddFinalizer)?;
            // The finalizer's own watch event starts the next reconcile.
            Ok(Action::await_change())
        }
        (None, true) => Ok(Action::await_change()),
    }
}
