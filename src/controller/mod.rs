//! The reconcile loop: a finalizer wraps an apply path and a cleanup path; failures become
//! conditions, Events and per-object retry delays.

mod accounts;
mod apply;
mod cached;
mod cleanup;
mod events;
mod finalizer;
mod observe;
mod owners;
mod referenced;
pub mod resync;
pub mod selectors;
mod status;

pub use cached::CachedObject;
pub use events::EventRecorder;
pub use owners::Owners;

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use kube::core::ObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::finalizer::Event as FinalizerEvent;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{Instrument, info_span, warn};

use self::finalizer::finalizer;
use crate::aws::AwsClients;
use crate::backoff::{Attempts, Schedule, jittered};
use crate::crd::{ADOPT_ANNOTATION, FINALIZER, IntegrationResponse};
use crate::failure::Failure;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::snapshots::Snapshots;
use crate::{Error, Result};

/// Operator-wide settings the reconciler needs.
#[derive(Clone, Debug)]
pub struct Settings {
    pub default_region: Option<String>,
    pub resync_period: Duration,
    /// This instance's name in create claims (the pod name).
    pub identity: String,
    /// A claim of another instance older than this is taken to be from a crashed writer.
    pub claim_timeout: Duration,
    /// Whether spec.integrationRef may name a cluster-scoped object (Crossplane's
    /// cluster-scoped Integration): any namespace could then use another team's integration.
    pub allow_cluster_scoped_refs: bool,
    /// Kinds whose objects spec.integrationRef may name and the operator watches.
    pub reference_kinds: Vec<crate::references::RefKind>,
    /// Objects of namespaces no IAMRoleSelector selects are Stalled instead of reconciled with
    /// the operator's own identity.
    pub require_role_selector: bool,
}

/// Shared by every reconcile.
pub struct Context {
    pub client: Client,
    pub aws: AwsClients,
    pub events: EventRecorder,
    pub settings: Settings,
    pub metrics: Arc<Metrics>,
    attempts: Attempts<ObjectRef<IntegrationResponse>>,
    pub(crate) snapshots: Snapshots,
    /// Which watched object records or is creating which response (fed by the watch).
    pub owners: Owners,
    /// The IAMRoleSelectors (fed by their watch).
    pub role_selectors: crate::roles::RoleSelectors,
    /// Objects whose last attempt failed because AWS as a whole did not answer (throttling,
    /// 5xx, network): woken together when it answers again (see [`crate::recovery`]).
    waiting_on_aws: std::sync::Mutex<HashSet<ObjectRef<IntegrationResponse>>>,
    /// Objects being reconciled now (at most the concurrency): the resync clock leaves them
    /// alone, since kube-runtime would run its request right after and drop a failure's retry
    /// delay in its favour.
    in_flight: std::sync::Mutex<HashSet<ObjectRef<IntegrationResponse>>>,
}

impl Context {
    pub fn new(
        client: Client,
        aws: AwsClients,
        events: EventRecorder,
        settings: Settings,
        metrics: Arc<Metrics>,
    ) -> Self {
        // A quarter of the resync period covers its ±10% jitter window, so the objects of one
        // integration share one snapshot per resync.
        let snapshots = Snapshots::new(settings.resync_period / 4);
        Self {
            client,
            aws,
            events,
            settings,
            metrics,
            attempts: Attempts::default(),
            snapshots,
            owners: Owners::default(),
            role_selectors: crate::roles::RoleSelectors::default(),
            waiting_on_aws: std::sync::Mutex::default(),
            in_flight: std::sync::Mutex::default(),
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashSet<ObjectRef<IntegrationResponse>>> {
        self.waiting_on_aws.lock().expect("waiting lock")
    }

    fn in_flight(&self) -> std::sync::MutexGuard<'_, HashSet<ObjectRef<IntegrationResponse>>> {
        self.in_flight.lock().expect("in-flight lock")
    }

    /// Takes the waiting objects of `namespace` (all with `None`) out of the set, to wake them.
    fn take_waiting(&self, namespace: Option<&str>) -> Vec<ObjectRef<IntegrationResponse>> {
        let mut waiting = self.waiting();
        let taken: Vec<_> =
            waiting.iter().filter(|o| namespace.is_none() || o.namespace.as_deref() == namespace).cloned().collect();
        for object in &taken {
            waiting.remove(object);
        }
        taken
    }

    /// Objects waiting for AWS to answer again.
    pub fn waiting_on_aws(&self) -> usize {
        self.waiting().len()
    }

    /// Whether `owner` ("namespace/name"), as the API server holds it now, still records
    /// response `id` and is not being deleted. The owners index follows the watch and can lag:
    /// giving a response up or leaving it in AWS is decided on the object itself.
    pub async fn still_records(&self, owner: &str, id: &str) -> Result<bool, kube::Error> {
        let Some((namespace, name)) = owner.split_once('/') else { return Ok(false) };
        let api: Api<IntegrationResponse> = Api::namespaced(self.client.clone(), namespace);
        Ok(api.get_opt(name).await?.is_some_and(|other| {
            // A response the other object only observes is not its own (see `Owners::observe`).
            other.metadata.deletion_timestamp.is_none()
                && other.status.is_some_and(|s| !s.observed_only && s.integration_response_id.as_deref() == Some(id))
        }))
    }

    /// Forgets what this process keeps about an object that has left the watch (deleted, its
    /// finalizer removed by hand, or no longer matching the label selector), so gauges and
    /// per-object maps count only watched objects.
    pub fn forget(&self, namespace: Option<&str>, name: &str) {
        let key = key_of(namespace, name);
        self.metrics.set_object_state(&key, None);
        self.snapshots.forget(&key);
        let object = by_name(namespace, name);
        self.attempts.reset(&object);
        self.waiting().remove(&object);
        self.in_flight().remove(&object);
        self.owners.forget(&key);
    }

    /// After a (re-)list, which delivers no deletions for what went while the watch was down:
    /// forgets every object of `namespace` (all namespaces with `None`) not in `listed`
    /// ("namespace/name" keys).
    pub fn forget_unlisted(&self, namespace: Option<&str>, listed: &HashSet<String>) {
        let in_scope = |key: &str| namespace.is_none_or(|ns| key.split_once('/').is_some_and(|(n, _)| n == ns));
        let keep = |key: &str| !in_scope(key) || listed.contains(key);
        self.metrics.retain_objects(keep);
        self.snapshots.retain_verified(keep);
        self.owners.retain(keep);
        let keep_object =
            |object: &ObjectRef<IntegrationResponse>| keep(&key_of(object.namespace.as_deref(), &object.name));
        self.attempts.retain(keep_object);
        self.waiting().retain(keep_object);
    }

    /// Objects with per-object state in this process (gauges, verified marks, retry counts).
    pub fn tracked(&self) -> (usize, usize, usize) {
        (self.metrics.tracked_objects(), self.snapshots.verified_len(), self.attempts.len())
    }

    /// Whether the resync clock must leave the object alone: it is being reconciled now, or its
    /// last reconcile failed and [`error_policy`] has scheduled its retry.
    pub fn resync_waits(&self, namespace: Option<&str>, name: &str) -> bool {
        let object = by_name(namespace, name);
        self.in_flight().contains(&object) || self.attempts.contains(&object)
    }
}

/// A reference by namespace and name only. References taken from an object (`ObjectRef::from_obj`)
/// also carry its resourceVersion and uid, two more strings in every queued reconcile: with
/// 100,000 objects queued at once (a mass apply, a start-up) that is megabytes for nothing.
pub fn by_name<K: Resource<DynamicType = ()>>(namespace: Option<&str>, name: &str) -> ObjectRef<K> {
    let object = ObjectRef::new(name);
    match namespace {
        Some(namespace) => object.within(namespace),
        None => object,
    }
}

/// [`by_name`] for an object: a reference of kind `K` to it (`K` may be the typed or the cached
/// kind, which share their API), without copying more than its name and namespace.
pub fn reference_to<K: Resource<DynamicType = ()>>(obj: &impl Resource) -> ObjectRef<K> {
    let meta = obj.meta();
    by_name(meta.namespace.as_deref(), meta.name.as_deref().unwrap_or_default())
}

/// "namespace/name": how per-object state in this process is keyed.
pub fn key_of(namespace: Option<&str>, name: &str) -> String {
    format!("{}/{name}", namespace.unwrap_or_default())
}

/// Which objects one operator process watches.
#[derive(Clone, Debug, Default)]
pub struct WatchScope {
    /// Empty means every namespace.
    pub namespaces: Vec<String>,
    pub label_selector: Option<String>,
}

pub async fn reconcile(obj: Arc<IntegrationResponse>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let key = reference_to(&*obj);
    // Until the outcome is recorded: on success below, on failure by the error policy.
    ctx.in_flight().insert(key.clone());
    let namespace = obj.namespace().unwrap_or_default();
    let span = info_span!(
        "reconcile",
        namespace = %namespace,
        name = %obj.name_any(),
        generation = obj.meta().generation,
        id = obj.status.as_ref().and_then(|s| s.integration_response_id.as_deref()),
    );
    let api: Api<IntegrationResponse> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            FinalizerEvent::Apply(obj) => apply::apply(&obj, &ctx, &api).await,
            FinalizerEvent::Cleanup(obj) => cleanup::cleanup(&obj, &ctx, &api).await,
        }
    })
    .instrument(span)
    .await
    .map_err(|err| Error::Finalizer(Box::new(err)));
    let category = match &result {
        Ok(_) => "ok",
        Err(err) => err.category(),
    };
    ctx.metrics.observe_reconcile(category, started.elapsed());
    if result.is_ok() {
        ctx.attempts.reset(&key);
        ctx.waiting().remove(&key);
        ctx.in_flight().remove(&key);
    }
    result
}

/// How long to wait after a failed reconcile. Stalled objects are not retried hot: a spec
/// change triggers a reconcile anyway, and otherwise they are looked at once per resync.
pub fn error_policy(obj: Arc<IntegrationResponse>, err: &Error, ctx: Arc<Context>) -> Action {
    retry_after(ObjectRef::from_obj(&*obj), err, &ctx)
}

fn retry_after(key: ObjectRef<IntegrationResponse>, err: &Error, ctx: &Context) -> Action {
    let attempt = ctx.attempts.record_failure(&key);
    ctx.in_flight().remove(&key);
    let jitter = rand::random();
    if err.failure().is_some_and(Failure::waits_on_aws) {
        ctx.waiting().insert(key.clone());
    } else {
        ctx.waiting().remove(&key);
    }
    let delay = match err.failure() {
        Some(Failure::Stalled { .. }) => jittered(ctx.settings.resync_period, jitter),
        Some(Failure::DependencyNotFound { .. } | Failure::ReferenceNotReady { .. }) => {
            Schedule::DEPENDENCY.delay(attempt, jitter)
        }
        Some(Failure::Transient { .. }) | None => Schedule::TRANSIENT.delay(attempt, jitter),
    };
    warn!(name = %key.name, namespace = key.namespace.as_deref(), error = %err, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// The watch reads objects behind a [`kube::core::DeserializeGuard`] (see [`CachedObject`]), so
/// one object that does not match the types (written under an older schema, say) cannot stop the
/// watch; it gets a Warning Event and is left alone until it changes.
async fn reconcile_guarded(guarded: Arc<CachedObject>, ctx: Arc<Context>) -> Result<Action> {
    match guarded.decode() {
        Ok(obj) => reconcile(Arc::new(obj), ctx).await,
        Err(invalid) => {
            warn!(name = %guarded.name_any(), namespace = guarded.namespace().as_deref(), error = %invalid, "object does not match the IntegrationResponse schema");
            events::invalid_object(&ctx, &*guarded, &invalid).await;
            Ok(Action::await_change())
        }
    }
}

fn error_policy_guarded(guarded: Arc<CachedObject>, err: &Error, ctx: Arc<Context>) -> Action {
    retry_after(reference_to(&*guarded), err, &ctx)
}

/// Runs the controller until `shutdown` is requested, then lets in-flight reconciles finish.
/// `on_synced` is called once every watch has listed its objects.
pub async fn run(
    ctx: Arc<Context>,
    scope: WatchScope,
    concurrency: u16,
    shutdown: Shutdown,
    on_synced: impl Fn() + Send + Sync + 'static,
) {
    let mut watcher_config = watcher::Config::default().any_semantic();
    if let Some(selector) = &scope.label_selector {
        watcher_config = watcher_config.labels(selector);
    }
    let apis: Vec<Api<CachedObject>> = if scope.namespaces.is_empty() {
        vec![Api::all(ctx.client.clone())]
    } else {
        scope.namespaces.iter().map(|ns| Api::namespaced(ctx.client.clone(), ns)).collect()
    };
    let synced = Arc::new(SyncTracker { pending: AtomicUsize::new(apis.len()), on_synced: Box::new(on_synced) });
    // One controller per namespace: a store can only be fed by one watcher.
    let namespaces: Vec<Option<String>> =
        if scope.namespaces.is_empty() { vec![None] } else { scope.namespaces.iter().cloned().map(Some).collect() };
    let stores: Vec<_> = apis.iter().map(|_| reflector::store::<CachedObject>()).collect();
    let controllers = apis.into_iter().zip(namespaces).zip(stores).map(|((api, namespace), (reader, writer))| {
        let listed = reader.clone();
        let forget_ctx = ctx.clone();
        let namespace_of_store = namespace.clone();
        let synced = synced.clone();
        let metrics = ctx.metrics.clone();
        let mut lists = 0u32;
        let previous = reader.clone();
        let relisted = reader.clone();
        let mut listed_before = false;
        let stream = watcher(api, watcher_config.clone())
            .default_backoff()
            // Seen on the stream rather than with Store::wait_until_ready: that future wakes
            // only its last poller, so a second waiter could starve the controller's own.
            .inspect(move |event| match event {
                Ok(watcher::Event::Init) => {
                    lists += 1;
                    if lists > 1 {
                        metrics.count_watch_restart();
                    }
                }
                Ok(watcher::Event::InitDone) if lists == 1 => synced.listed(),
                Ok(_) => {}
                Err(_) => metrics.count_watch_restart(),
            })
            // Objects arrive as compact CachedObjects, keeping only what reconcile reads. Before
            // the store takes a version, it is compared with the one it replaces: our own status
            // writes come back as watch events, and reconciling on them would retry failures at
            // once, whatever their backoff says. Only what the user or the API server's deletion
            // machinery changes starts a reconcile.
            .map_ok(move |event| event.modify(|obj| obj.mark_trigger(&previous)))
            .reflect(writer)
            // After the store has taken each event: objects that leave the watch are forgotten.
            .inspect(move |event| match event {
                Ok(watcher::Event::Delete(obj)) => forget_ctx.forget(obj.namespace().as_deref(), &obj.name_any()),
                Ok(watcher::Event::Apply(obj) | watcher::Event::InitApply(obj)) => {
                    if let Ok(obj) = obj.decode() {
                        forget_ctx.owners.observe(&obj);
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    let keys = listed.state().iter().map(|obj| obj.key()).collect();
                    forget_ctx.forget_unlisted(namespace.as_deref(), &keys);
                }
                _ => {}
            })
            // Errors were counted above; the watcher retries on its own (default_backoff).
            .filter_map(move |event| {
                let event = event.ok();
                let due = event.and_then(|event| {
                    let due = triggers(&event, &relisted, listed_before);
                    listed_before |= matches!(event, watcher::Event::InitDone);
                    due
                });
                futures::future::ready(due)
            })
            .flatten();
        let woken_by_references = referenced::woken(ctx.clone(), namespace_of_store.clone(), reader.clone());
        let woken_store = reader.clone();
        let resync_store = reader.clone();
        // The watch feeds the controller's store and triggers by name (see `by_name`).
        let no_object_triggers = futures::stream::pending::<Result<CachedObject, watcher::Error>>();
        Controller::for_stream(no_object_triggers, reader)
            .reconcile_on(stream)
            .reconcile_on(woken_after_outage(ctx.clone(), namespace_of_store))
            .reconcile_on(woken_by_references)
            .reconcile_on(selectors::woken(ctx.clone(), woken_store))
            .reconcile_on(resync::clock(ctx.clone(), resync_store))
            .with_config(ControllerConfig::default().concurrency(concurrency))
            .graceful_shutdown_on(shutdown.clone().requested())
            .run(reconcile_guarded, error_policy_guarded, ctx.clone())
            .for_each(|_| futures::future::ready(()))
    });
    let probing = probe_while_aws_is_down(ctx.clone());
    tokio::select! {
        _ = futures::future::join_all(controllers) => {}
        // Never ends on its own.
        _ = probing => {}
    }
}

/// How often a waiting operator asks AWS whether it answers again.
const PROBE_INTERVAL: Duration = Duration::from_secs(5);

/// While AWS does not answer and objects wait for it, one small read every few seconds (through
/// the pacer) finds out when it is back; its success wakes them (see [`woken_after_outage`]).
async fn probe_while_aws_is_down(ctx: Arc<Context>) {
    loop {
        tokio::time::sleep(PROBE_INTERVAL).await;
        let health = ctx.aws.health();
        if !health.is_down() || ctx.waiting_on_aws() == 0 {
            continue;
        }
        if let Some((region, target)) = health.probe_target() {
            let _ = ctx.aws.for_identity(&region, &target.identity).await.probe(&target).await;
        }
    }
}

/// Every time AWS answers again after an outage, the objects of one store that wait for it.
fn woken_after_outage(
    ctx: Arc<Context>,
    namespace: Option<String>,
) -> impl futures::Stream<Item = ObjectRef<CachedObject>> + Send + 'static {
    let recovered = ctx.aws.health().subscribe();
    futures::stream::unfold((ctx, namespace, recovered), |(ctx, namespace, mut recovered)| async move {
        recovered.changed().await.ok()?;
        let woken: Vec<_> = ctx
            .take_waiting(namespace.as_deref())
            .into_iter()
            .map(|o| by_name(o.namespace.as_deref(), &o.name))
            .collect();
        if !woken.is_empty() {
            tracing::info!(objects = woken.len(), "AWS answers again; retrying the objects that waited for it");
        }
        Some((futures::stream::iter(woken), (ctx, namespace, recovered)))
    })
    .flatten()
}
/// What of an object starts a reconcile when it changes: the spec (generation), deletion,
/// finalizers and the adopt annotation, and its uid (an object deleted and made again under the
/// same name while the watch was down). Status is left out: it is the operator's own output.
pub fn reconcile_trigger(meta: &ObjectMeta) -> u64 {
    let adopt = meta.annotations.as_ref().and_then(|a| a.get(ADOPT_ANNOTATION));
    let mut hasher = std::hash::DefaultHasher::new();
    (&meta.uid, meta.generation, meta.deletion_timestamp.is_some(), &meta.finalizers, adopt).hash(&mut hasher);
    hasher.finish()
}

/// The reconciles one watch event starts. A re-list's objects start theirs only once it is
/// complete: kube-runtime keeps serving the versions from before the list until then, so a
/// change seen first in a re-list would be reconciled against the stale copy (and an object made
/// while the watch was down not at all). The store then holds each listed object with its
/// decision made against the version it replaced (see [`CachedObject::mark_trigger`]). The first
/// list's objects start theirs as they come: kube-runtime holds every reconcile until that list
/// is complete anyway, and queueing them then instead measured 3.7 MiB more at 10,000 objects.
fn triggers(
    event: &watcher::Event<CachedObject>,
    store: &reflector::Store<CachedObject>,
    listed_before: bool,
) -> Option<futures::stream::Iter<Box<dyn Iterator<Item = ObjectRef<CachedObject>> + Send>>> {
    let due: Box<dyn Iterator<Item = _> + Send> = match event {
        watcher::Event::Apply(obj) if obj.starts_reconcile() => Box::new(std::iter::once(reference_to(obj))),
        watcher::Event::InitApply(obj) if !listed_before && obj.starts_reconcile() => {
            Box::new(std::iter::once(reference_to(obj)))
        }
        // Lazily: at 100,000 objects a list of references would be megabytes at once.
        watcher::Event::InitDone if listed_before => {
            Box::new(store.state().into_iter().filter(|obj| obj.starts_reconcile()).map(|obj| reference_to(&*obj)))
        }
        _ => return None,
    };
    Some(futures::stream::iter(due))
}

/// Calls `on_synced` once the last of several watches has listed its objects.
struct SyncTracker {
    pending: AtomicUsize,
    on_synced: Box<dyn Fn() + Send + Sync>,
}

impl SyncTracker {
    fn listed(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            (self.on_synced)();
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::core::DeserializeGuard;

    use super::*;

    fn guarded(edit: impl FnOnce(&mut serde_json::Value)) -> DeserializeGuard<IntegrationResponse> {
        let mut object = serde_json::json!({
            "apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1",
            "kind": "IntegrationResponse",
            "metadata": {"name": "a", "namespace": "ns", "uid": "u-1", "generation": 1, "resourceVersion": "7",
                         "finalizers": [FINALIZER]},
            "spec": {"apiId": "api", "integrationId": "int", "integrationResponseKey": "$default"},
        });
        edit(&mut object);
        serde_json::from_value(object).unwrap()
    }

    /// Whether `version` starts a reconcile when it comes off the watch after `cached`.
    fn starts_reconcile(
        cached: Option<&DeserializeGuard<IntegrationResponse>>,
        version: DeserializeGuard<IntegrationResponse>,
    ) -> bool {
        let (reader, mut writer) = reflector::store::<CachedObject>();
        if let Some(cached) = cached {
            writer.apply_watcher_event(&watcher::Event::Apply(CachedObject::from(cached.clone())));
        }
        let mut version = CachedObject::from(version);
        version.mark_trigger(&reader);
        version.starts_reconcile()
    }

    #[test]
    fn status_writes_do_not_trigger_a_reconcile_but_user_changes_do() {
        let base = guarded(|_| {});
        assert!(starts_reconcile(None, base.clone()), "an object seen for the first time");
        let status_only = guarded(|o| {
            o["metadata"]["resourceVersion"] = "8".into();
            o["status"] = serde_json::json!({"conditions": [], "integrationResponseId": "x"});
        });
        assert!(!starts_reconcile(Some(&base), status_only), "our own status write");
        let other_annotation = guarded(|o| o["metadata"]["annotations"] = serde_json::json!({"note": "x"}));
        assert!(!starts_reconcile(Some(&base), other_annotation), "annotations the operator does not read");

        for (what, changed) in [
            ("spec", guarded(|o| o["metadata"]["generation"] = 2.into())),
            ("deletion", guarded(|o| o["metadata"]["deletionTimestamp"] = "2026-11-29T00:00:00Z".into())),
            ("finalizers", guarded(|o| o["metadata"]["finalizers"] = serde_json::json!([]))),
            ("adopt", guarded(|o| o["metadata"]["annotations"] = serde_json::json!({ADOPT_ANNOTATION: "true"}))),
            ("recreated", guarded(|o| o["metadata"]["uid"] = "u-2".into())),
        ] {
            assert!(starts_reconcile(Some(&base), changed), "{what} starts a reconcile");
        }
    }
}
