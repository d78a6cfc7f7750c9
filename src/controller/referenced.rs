//! spec.integrationRef in the controller: where an object's response lives, and the watches
//! that wake objects when the Integration they reference changes (becomes ready, say), instead
//! of at their next retry.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::api::{Api, DynamicObject, ListParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use super::{CachedObject, Context};
use crate::crd::{IntegrationResponse, IntegrationResponseStatus};
use crate::domain::Target;
use crate::failure::Failure;
use crate::references::{self, RefKind};

/// The integration an object's response lives on: from the spec's ids, or from the object its
/// integrationRef names (read fresh, so a resolution is never older than this reconcile).
pub async fn target(
    ctx: &Context,
    obj: &IntegrationResponse,
    status: &IntegrationResponseStatus,
) -> Result<Target, Failure> {
    let referenced = match &obj.spec.integration_ref {
        None => None,
        Some(_) => {
            let resolved = references::resolve(
                &ctx.client,
                obj,
                &ctx.settings.reference_kinds,
                ctx.settings.allow_cluster_scoped_refs,
            )
            .await;
            match resolved {
                Ok(referenced) => Some(referenced),
                // Once the response exists, where it lives is recorded and cannot change: a
                // reference that is briefly not usable (ACK re-syncing its Integration, say, or
                // the Integration deleted first) leaves the object as it is.
                Err(Failure::ReferenceNotReady { .. }) if let Some(recorded) = recorded(status) => Some(recorded),
                Err(failure) => return Err(failure),
            }
        }
    };
    let identity = super::accounts::identity(ctx, obj).await?;
    Target::resolve(&obj.spec, status, ctx.settings.default_region.as_deref(), referenced.as_ref(), identity)
}

/// Where an existing response lives, as status recorded it.
fn recorded(status: &IntegrationResponseStatus) -> Option<references::Referenced> {
    status.integration_response_id.as_ref()?;
    Some(references::Referenced {
        api_id: status.api_id.clone()?,
        integration_id: status.integration_id.clone()?,
        region: status.region.clone(),
    })
}

/// How often a kind that is not installed is looked for again (a CRD installed later, by the
/// same Argo CD sync say, is picked up within this).
const INSTALL_CHECK: Duration = Duration::from_secs(30);

type Guarded = CachedObject;

/// The objects of `store` that reference an Integration, each time that Integration changes.
/// A kind that is not installed costs one list call per [`INSTALL_CHECK`] and no watch.
pub fn woken(
    ctx: Arc<Context>,
    namespace: Option<String>,
    store: Store<Guarded>,
) -> impl Stream<Item = ObjectRef<Guarded>> + Send + 'static {
    let kinds: Vec<RefKind> = ctx
        .settings
        .reference_kinds
        .iter()
        .copied()
        // Cluster-scoped objects are never followed without the flag: nothing to watch.
        .filter(|kind| kind.namespaced() || ctx.settings.allow_cluster_scoped_refs)
        .collect();
    let changes = futures::stream::select_all(
        kinds.into_iter().map(|kind| changes_of(ctx.client.clone(), kind, namespace.clone()).boxed()),
    );
    changes.flat_map(move |(kind, ns, name)| {
        let woken: Vec<ObjectRef<Guarded>> = store
            .state()
            .iter()
            .filter(|cached| {
                cached.decode().is_ok_and(|obj| {
                    obj.spec.integration_ref.as_ref().is_some_and(|r| {
                        RefKind::of(r) == Some(kind)
                            && r.name == name
                            && (!kind.namespaced() || obj.namespace().as_deref() == ns.as_deref())
                    })
                })
            })
            .map(|cached| super::reference_to(cached.as_ref()))
            .collect();
        futures::stream::iter(woken)
    })
}

/// (kind, namespace, name) of every change to an Integration of `kind`, once the kind exists.
fn changes_of(
    client: Client,
    kind: RefKind,
    namespace: Option<String>,
) -> impl Stream<Item = (RefKind, Option<String>, String)> + Send + 'static {
    // Each event is only turned into names and dropped (no cache is kept); the woken object
    // reads the Integration itself.
    let api: Api<DynamicObject> = match (&namespace, kind.namespaced()) {
        (Some(ns), true) => Api::namespaced_with(client, ns, &kind.integrations()),
        _ => Api::all_with(client, &kind.integrations()),
    };
    let installed = {
        let api = api.clone();
        async move {
            loop {
                match api.list(&ListParams::default().limit(1)).await {
                    Ok(_) => break,
                    Err(err) => {
                        tracing::debug!(kind = %kind.api_version(), %err, "referenced kind not readable yet");
                        tokio::time::sleep(INSTALL_CHECK).await;
                    }
                }
            }
            tracing::info!(kind = %kind.api_version(), "watching Integration objects for spec.integrationRef");
        }
    };
    futures::stream::once(installed).flat_map(move |()| {
        watcher(api.clone(), watcher::Config::default().any_semantic()).default_backoff().touched_objects().filter_map(
            move |event| futures::future::ready(event.ok().map(|meta| (kind, meta.namespace(), meta.name_any()))),
        )
    })
}
