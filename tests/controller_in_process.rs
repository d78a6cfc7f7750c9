//! The controller as `runtime::run` starts it, in this process, against the Kubernetes API
//! emulator (tests/kube-emulator) and the fake API Gateway (tests/support/fake_aws): what the
//! watch, the resync clock and kube-runtime's scheduler do together, which reconcile scenarios
//! that call `reconcile` by hand cannot show. First written by a review of the memory work for
//! issue 15 (each test failed on the code it reviewed).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use integration_response_operator::aws::AwsClients;
use integration_response_operator::controller::resync::{self, phase};
use integration_response_operator::controller::{self, CachedObject, Context, EventRecorder, Settings, WatchScope};
use integration_response_operator::crd::IntegrationResponse;
use integration_response_operator::metrics::Metrics;
use integration_response_operator::pacing::Pacer;
use integration_response_operator::shutdown::Shutdown;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Config};
use kube_emulator::{Emulator, Fault};
use serde_json::{Value, json};
use support::fake_aws::{FakeAws, error_response};
use support::fake_kube::FakeKube;

const PLURAL: &str = "integrationresponses";

/// Records the reconciles the controller runs: kube-runtime's "reconciling object" span (object
/// and why it was queued) and the operator's "reconcile" span (name and generation).
mod spans {
    use std::sync::{Mutex, OnceLock};

    use tracing::field::{Field, Visit};
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::layer::SubscriberExt;

    static SEEN: OnceLock<Mutex<Vec<String>>> = OnceLock::new();

    struct Fields(String);

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.push_str(&format!(" {}={:?}", field.name(), value));
        }
    }

    struct Recorder;

    impl<S: tracing::Subscriber> Layer<S> for Recorder {
        fn on_new_span(
            &self,
            attrs: &tracing::span::Attributes<'_>,
            _: &tracing::span::Id,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
            let mut fields = Fields(format!("@{at} {}", attrs.metadata().name()));
            attrs.record(&mut fields);
            SEEN.get().unwrap().lock().unwrap().push(fields.0);
        }
    }

    pub fn install() {
        SEEN.get_or_init(|| {
            let wanted = filter_fn(|m| m.is_span() && ["reconcile", "reconciling object"].contains(&m.name()));
            let _ = tracing::subscriber::set_global_default(
                tracing_subscriber::registry().with(Recorder.with_filter(wanted)),
            );
            Mutex::default()
        });
    }

    pub fn len() -> usize {
        SEEN.get().unwrap().lock().unwrap().len()
    }

    /// Spans recorded since `from` that mention `needle`.
    pub fn since(from: usize, needle: &str) -> Vec<String> {
        SEEN.get().unwrap().lock().unwrap()[from..].iter().filter(|s| s.contains(needle)).cloned().collect()
    }
}

fn object_json(name: &str, api: &str, integration: &str, template: &str) -> Value {
    json!({
        "apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1",
        "kind": "IntegrationResponse",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "apiId": api,
            "integrationId": integration,
            "integrationResponseKey": "$default",
            "responseTemplates": {"application/json": template},
        },
    })
}

/// The operator's controller (as `runtime::run` starts it, without leader election and
/// selectors) over the emulator and the fake API Gateway.
struct Cluster {
    emulator: Emulator,
    aws: FakeAws,
    client: Client,
    controller: tokio::task::JoinHandle<()>,
}

impl Cluster {
    async fn start(aws: FakeAws, resync_period: Duration, objects: Vec<Value>) -> Self {
        spans::install();
        let crd = support::stack::crd_path();
        let emulator = Emulator::start(&[crd.as_path()]).await.expect("emulator starts");
        for object in objects {
            emulator.create(PLURAL, "default", object).expect("valid object");
        }
        let client = Client::try_from(Config::new(emulator.url().parse().unwrap())).unwrap();
        let metrics = Arc::new(Metrics::default());
        let clients = AwsClients::fixed(aws.client(), Arc::new(Pacer::unlimited()), metrics.clone());
        let events = EventRecorder::new(client.clone(), "integration-response-operator", "test");
        let settings = Settings {
            default_region: Some("us-east-1".into()),
            resync_period,
            identity: "test".into(),
            claim_timeout: Duration::from_secs(30),
            allow_cluster_scoped_refs: false,
            reference_kinds: Vec::new(),
            require_role_selector: false,
        };
        let ctx = Arc::new(Context::new(client.clone(), clients, events, settings, metrics));
        let scope = WatchScope { namespaces: vec!["default".into()], label_selector: None };
        let controller = tokio::spawn(controller::run(ctx.clone(), scope, 16, Shutdown::on_signals(), || {}));
        Self { emulator, aws, client, controller }
    }

    fn stored(&self, name: &str) -> Value {
        self.emulator.get(PLURAL, "default", name).expect("object exists")
    }

    fn ready_at_generation(&self, name: &str) -> bool {
        let object = self.stored(name);
        let ready = object["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        ready && object["status"]["observedGeneration"] == object["metadata"]["generation"]
    }

    async fn wait_until(&self, what: &str, within: Duration, done: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        while !done(self) {
            assert!(tokio::time::Instant::now() < deadline, "not within {within:?}: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn template_in_aws(&self, integration: &str) -> Option<String> {
        let responses = self.aws.responses();
        let response = responses.iter().find(|r| r.integration_id == integration)?;
        response.response_templates.get("application/json").cloned()
    }

    fn calls(&self, operation: &str) -> usize {
        self.aws.calls().iter().filter(|c| c.as_str() == operation).count()
    }

    async fn edit_template(&self, name: &str, template: &str) {
        let api: Api<IntegrationResponse> = Api::namespaced(self.client.clone(), "default");
        let patch = json!({"spec": {"responseTemplates": {"application/json": template}}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await.expect("spec edited");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.controller.abort();
    }
}

fn since_epoch() -> Duration {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap()
}

/// The next wall-clock time (since the epoch) of the slot at `phase`, at least `margin` away.
fn next_slot(period: Duration, phase: u64, margin: Duration) -> Duration {
    let period_ms = period.as_millis() as u64;
    let earliest = (since_epoch() + margin).as_millis() as u64;
    let slot = phase % period_ms;
    let mut at = earliest - earliest % period_ms + slot;
    if at < earliest {
        at += period_ms;
    }
    Duration::from_millis(at)
}

async fn sleep_until_wall(at: Duration) {
    if let Some(wait) = at.checked_sub(since_epoch()) {
        tokio::time::sleep(wait).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The resync clock follows tokio's monotonic clock once started: a wall clock stepped back (NTP)
// used to leave every window empty for as long as the step.

fn cached(name: &str, integration: &str) -> Arc<CachedObject> {
    let mut value = object_json(name, "api", integration, "{}");
    value["metadata"]["uid"] = json!(format!("uid-{name}"));
    Arc::new(serde_json::from_value(value).unwrap())
}

#[tokio::test(start_paused = true)]
async fn the_resync_clock_wakes_each_object_once_per_period_on_the_monotonic_clock() {
    use futures::StreamExt;
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    let kube = FakeKube::start(&support::integration_response("unused", "api", "int"));
    let ctx = support::context(&kube, &FakeAws::new());
    let period = ctx.settings.resync_period;
    let (store, mut writer) = reflector::store::<CachedObject>();
    writer.apply_watcher_event(&Event::Init);
    for i in 0..20 {
        let object = cached(&format!("o{i}"), &format!("int{i}"));
        writer.apply_watcher_event(&Event::InitApply((*object).clone()));
    }
    writer.apply_watcher_event(&Event::InitDone);

    let woken = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let collected = woken.clone();
    let clock = tokio::spawn(resync::clock(ctx.clone(), store).for_each(move |object| {
        collected.lock().unwrap().push(object.name);
        async {}
    }));
    // Three periods of tokio's (paused, auto-advancing) time; the wall clock does not move here
    // at all, as if it had been stepped back by exactly that much.
    tokio::time::sleep(period * 3 + Duration::from_millis(1)).await;
    clock.abort();
    let woken = woken.lock().unwrap().clone();
    for i in 0..20 {
        let name = format!("o{i}");
        assert_eq!(woken.iter().filter(|n| **n == name).count(), 3, "{name} in {woken:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// The clock leaves an object alone while it is being reconciled: kube-runtime would run the
// clock's request right after a failure and drop the error policy's retry delay in its favour.

/// An object Ready; a spec edit starts a reconcile whose direct read is held in flight, then
/// refused with AccessDenied (Stalled: retried one resync period later). With `across_slot` the
/// read is held across the object's resync slot, otherwise released well before it. Returns how
/// many reconciles of the object started in the 3 s after the failure, and their spans.
async fn reconciles_after_a_stalled_failure(across_slot: bool) -> (usize, Vec<String>) {
    let aws = FakeAws::new().with_integration("api0", "int0");
    let period = Duration::from_secs(8);
    let name = if across_slot { "across" } else { "before" };
    let cluster = Cluster::start(aws, period, vec![object_json(name, "api0", "int0", "{\"v\": 1}")]).await;
    cluster.wait_until("Ready", Duration::from_secs(20), |c| c.ready_at_generation(name)).await;
    let id = cluster.stored(name)["status"]["integrationResponseId"].as_str().unwrap().to_owned();
    let obj: IntegrationResponse = serde_json::from_value(cluster.stored(name)).unwrap();
    let slot = next_slot(period, phase(&obj), Duration::from_secs(4));

    let armed = Arc::new(AtomicBool::new(true));
    let entered = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let (gate_armed, gate_entered, gate_release, held_id) =
        (armed.clone(), entered.clone(), release.clone(), id.clone());
    cluster.aws.set(move |state| {
        state.gate = Some(Arc::new(move |_who, what| {
            let hold = what.starts_with("GET") && what.contains(&format!("/integrationresponses/{held_id}"));
            let hold = hold && gate_armed.swap(false, Ordering::SeqCst);
            let (entered, release) = (gate_entered.clone(), gate_release.clone());
            Box::pin(async move {
                if hold {
                    entered.notify_one();
                    release.notified().await;
                }
            })
        }));
    });
    cluster.aws.fail_next("GetIntegrationResponse", error_response(403, "AccessDeniedException", "denied"));

    let (edit_at, release_at) = if across_slot {
        (slot - Duration::from_millis(1500), slot + Duration::from_millis(600))
    } else {
        (slot - Duration::from_millis(3900), slot - Duration::from_millis(3300))
    };
    sleep_until_wall(edit_at).await;
    cluster.edit_template(name, "{\"v\": 2}").await;
    tokio::time::timeout(Duration::from_secs(5), entered.notified()).await.expect("the reconcile reads the response");
    sleep_until_wall(release_at).await;
    let (before, spans_from) = (cluster.calls("GetIntegrationResponse"), spans::len());
    release.notify_one();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Reconciles that started after the failing one was released (kube-runtime's span, then ours).
    let reconciles: Vec<String> =
        spans::since(spans_from, name).into_iter().filter(|s| s.contains(" reconcile namespace")).collect();
    let status = &cluster.stored(name)["status"];
    eprintln!(
        "{name}: reads after the failure {}, status now {}",
        cluster.calls("GetIntegrationResponse") - before,
        status["conditions"]
    );
    (reconciles.len(), reconciles)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_during_a_failing_reconcile_keeps_its_stalled_retry_delay() {
    let (count, reconciles) = reconciles_after_a_stalled_failure(true).await;
    assert_eq!(
        count, 0,
        "a Stalled failure is retried one resync period (8 s) later, but the object was reconciled \
         again at once: the clock's wake-up, queued while the failing reconcile ran, runs right \
         after it and the scheduler drops the error policy's later retry. Reconciles started after \
         the failure: {reconciles:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_away_from_any_slot_keeps_its_stalled_retry_delay() {
    let (count, reconciles) = reconciles_after_a_stalled_failure(false).await;
    assert_eq!(count, 0, "{reconciles:#?}");
}

// ---------------------------------------------------------------------------------------------
// A re-list's changes start their reconciles once the list is complete: kube-runtime swaps the
// store only at InitDone, so a change seen first in a re-list used to be reconciled against the
// copy from before the watch broke, and an object made while the watch was down not at all.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_seen_first_in_a_relist_are_reconciled_against_the_listed_version() {
    let mut aws = FakeAws::new().with_integration("api0", "int0").with_integration("api1", "int1");
    let mut objects = vec![object_json("aaa", "api0", "int0", "{\"v\": 1}")];
    // 500 more objects, so the re-list takes two pages (kube-runtime lists 500 at a time).
    for i in 0..500 {
        let (api, integration) = (format!("api-f{i}"), format!("int-f{i}"));
        aws = aws.with_integration(&api, &integration);
        objects.push(object_json(&format!("f-{i:03}"), &api, &integration, "{}"));
    }
    let cluster = Cluster::start(aws, Duration::from_secs(600), objects).await;
    cluster
        .wait_until("all 501 objects Ready", Duration::from_secs(120), |c| {
            c.emulator.list(PLURAL, "default").iter().all(|o| {
                o["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .await;
    assert_eq!(cluster.template_in_aws("int0").as_deref(), Some("{\"v\": 1}"));

    // The watch breaks; while it is down, the user edits the spec and etcd compacts, so the
    // watch comes back with 410 Gone and the watcher lists again. The list's second page is slow.
    cluster.emulator.faults().add(Fault::delay("watch", PLURAL, Duration::from_secs(2), 1));
    cluster.emulator.faults().add(Fault::delay("list", PLURAL, Duration::from_secs(4), 1).after(1));
    cluster.emulator.drop_watches();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let spans_from = spans::len();
    cluster.edit_template("aaa", "{\"v\": 2}").await;
    cluster.emulator.create(PLURAL, "default", object_json("aab", "api1", "int1", "{}")).unwrap();
    cluster.emulator.compact();

    // Two seconds of watch delay, one backoff, four seconds of the second page, then some.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let reconciles: Vec<String> =
        spans::since(spans_from, "aaa").into_iter().filter(|s| s.contains(" reconcile namespace")).collect();
    let created: Vec<String> =
        spans::since(spans_from, "aab").into_iter().filter(|s| s.contains(" reconcile namespace")).collect();
    let (applied, made) = (cluster.template_in_aws("int0"), cluster.template_in_aws("int1"));
    assert!(
        applied.as_deref() == Some("{\"v\": 2}") && made.is_some(),
        "20 s after the re-list: aaa (edited while the watch was down, generation {}) has {applied:?} \
         in AWS, status observedGeneration {}, reconciles since the edit: {reconciles:#?}; aab \
         (created while the watch was down) has {made:?} in AWS, finalizers {}, reconciles: {created:#?}",
        cluster.stored("aaa")["metadata"]["generation"],
        cluster.stored("aaa")["status"]["observedGeneration"],
        cluster.stored("aab")["metadata"]["finalizers"],
    );
}

// ---------------------------------------------------------------------------------------------
// The owners index answers as the String-keyed one before it did (7696e29), for random histories.

mod old_owners {
    //! The index as it was before e8f9e31, verbatim but for `key_of`.
    use std::collections::HashMap;
    use std::sync::Mutex;

    use integration_response_operator::crd::IntegrationResponse;
    use kube::ResourceExt;

    type IdKey = (String, String);
    type ClaimKey = (String, String, String);

    #[derive(Default)]
    struct Index {
        by_id: HashMap<IdKey, Vec<String>>,
        by_claim: HashMap<ClaimKey, Vec<String>>,
        entries: HashMap<String, (Option<IdKey>, Option<ClaimKey>)>,
    }

    #[derive(Default)]
    pub struct Owners {
        index: Mutex<Index>,
    }

    impl Owners {
        pub fn observe(&self, obj: &IntegrationResponse) {
            let key = format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any());
            let status = obj.status.as_ref().filter(|_| obj.metadata.deletion_timestamp.is_none());
            let api = status.and_then(|s| s.api_id.clone());
            let id = status
                .filter(|s| !s.observed_only)
                .and_then(|s| Some((api.clone()?, s.integration_response_id.clone()?)));
            let claim = status.and_then(|s| {
                Some((api.clone()?, s.integration_id.clone()?, s.claimed_key()?.to_owned()))
                    .filter(|_| s.integration_response_id.is_none())
            });
            let mut index = self.index.lock().unwrap();
            index.remove(&key);
            if let Some(id) = &id {
                index.by_id.entry(id.clone()).or_default().push(key.clone());
            }
            if let Some(claim) = &claim {
                index.by_claim.entry(claim.clone()).or_default().push(key.clone());
            }
            if id.is_some() || claim.is_some() {
                index.entries.insert(key, (id, claim));
            }
        }

        pub fn forget(&self, object: &str) {
            self.index.lock().unwrap().remove(object);
        }

        pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
            let mut index = self.index.lock().unwrap();
            let gone: Vec<String> = index.entries.keys().filter(|k| !keep(k)).cloned().collect();
            for key in gone {
                index.remove(&key);
            }
        }

        pub fn other_manager(&self, api: &str, id: &str, integration: &str, key: &str, me: &str) -> Option<String> {
            let index = self.index.lock().unwrap();
            let recording = index.by_id.get(&(api.to_owned(), id.to_owned()));
            let claiming = index.by_claim.get(&(api.to_owned(), integration.to_owned(), key.to_owned()));
            recording.into_iter().chain(claiming).flatten().find(|other| *other != me).cloned()
        }

        pub fn yields_to(&self, api: &str, id: &str, me: &str) -> Option<String> {
            let index = self.index.lock().unwrap();
            let recording = index.by_id.get(&(api.to_owned(), id.to_owned()))?;
            recording.iter().filter(|other| other.as_str() < me).min().cloned()
        }

        pub fn len(&self) -> usize {
            self.index.lock().unwrap().entries.len()
        }
    }

    impl Index {
        fn remove(&mut self, object: &str) {
            let Some((id, claim)) = self.entries.remove(object) else { return };
            if let Some(id) = id
                && let Some(list) = self.by_id.get_mut(&id)
            {
                list.retain(|k| k != object);
                if list.is_empty() {
                    self.by_id.remove(&id);
                }
            }
            if let Some(claim) = claim
                && let Some(list) = self.by_claim.get_mut(&claim)
            {
                list.retain(|k| k != object);
                if list.is_empty() {
                    self.by_claim.remove(&claim);
                }
            }
        }
    }
}

#[test]
fn the_owners_index_answers_as_the_string_keyed_one_did_for_random_histories() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    // Parts chosen so that naive joins would collide: "1:a" vs "1"+"a", empty parts, digits.
    const PARTS: [&str; 6] = ["a", "1:a", "1", "", "1:", "a1"];
    const NAMES: [&str; 5] = ["a", "b", "c", "a1", "b0"];
    let pick = |rng: &mut StdRng| -> Option<&'static str> {
        if rng.random_bool(0.2) { None } else { Some(PARTS[rng.random_range(0..PARTS.len())]) }
    };
    for seed in 0..100u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let (new, old) = (controller::Owners::default(), old_owners::Owners::default());
        for _ in 0..60 {
            match rng.random_range(0..10) {
                0 => {
                    let name = format!("ns/{}", NAMES[rng.random_range(0..NAMES.len())]);
                    new.forget(&name);
                    old.forget(&name);
                }
                1 => {
                    let drop = NAMES[rng.random_range(0..NAMES.len())];
                    new.retain(|k| !k.ends_with(drop));
                    old.retain(|k| !k.ends_with(drop));
                }
                _ => {
                    let mut status = serde_json::Map::new();
                    for (field, value) in [
                        ("apiId", pick(&mut rng)),
                        ("integrationId", pick(&mut rng)),
                        ("integrationResponseId", pick(&mut rng)),
                        ("pendingCreateKey", pick(&mut rng)),
                    ] {
                        if let Some(value) = value {
                            status.insert(field.into(), json!(value));
                        }
                    }
                    if rng.random_bool(0.3) {
                        let key = PARTS[rng.random_range(0..PARTS.len())];
                        status.insert("pendingCreate".into(), json!({"key": key, "holder": "h", "since": "t"}));
                    }
                    if rng.random_bool(0.2) {
                        status.insert("observedOnly".into(), json!(true));
                    }
                    let mut metadata = json!({"name": NAMES[rng.random_range(0..NAMES.len())], "namespace": "ns"});
                    if rng.random_bool(0.1) {
                        metadata["deletionTimestamp"] = json!("2026-11-29T00:00:00Z");
                    }
                    let object: IntegrationResponse = serde_json::from_value(json!({
                        "apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1", "kind": "IntegrationResponse",
                        "metadata": metadata,
                        "spec": {"apiId": "x", "integrationId": "y", "integrationResponseKey": "$default"},
                        "status": Value::Object(status),
                    }))
                    .unwrap();
                    new.observe(&object);
                    old.observe(&object);
                }
            }
            assert_eq!(new.len(), old.len(), "seed {seed}");
            for api in PARTS {
                for id in PARTS {
                    for me in NAMES.iter().map(|n| format!("ns/{n}")).chain(["".to_owned(), "zz".to_owned()]) {
                        assert_eq!(new.yields_to(api, id, &me), old.yields_to(api, id, &me), "seed {seed}");
                        for integration in PARTS {
                            assert_eq!(
                                new.other_manager(api, id, integration, id, &me),
                                old.other_manager(api, id, integration, id, &me),
                                "seed {seed}: other_manager({api:?}, {id:?}, {integration:?}, {id:?}, {me:?})"
                            );
                        }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The trigger is decided against the version kube-runtime's store holds, which during a re-list is
// the one from before the watch broke until InitDone.

#[test]
fn during_a_relist_the_trigger_is_decided_against_the_version_from_before_the_watch_broke() {
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    let version = |generation: i64, uid: &str, rv: &str| -> CachedObject {
        let mut value = object_json("a", "api", "int", "{}");
        value["metadata"]["uid"] = json!(uid);
        value["metadata"]["generation"] = json!(generation);
        value["metadata"]["resourceVersion"] = json!(rv);
        serde_json::from_value(value).unwrap()
    };
    let (reader, mut writer) = reflector::store::<CachedObject>();
    writer.apply_watcher_event(&Event::Init);
    let mut first = version(1, "u1", "1");
    first.mark_trigger(&reader);
    assert!(first.starts_reconcile(), "first list");
    writer.apply_watcher_event(&Event::InitApply(first));
    writer.apply_watcher_event(&Event::InitDone);

    // Re-list: same trigger (a status write while down) -> no reconcile; changed -> reconcile,
    // even after a first interrupted re-list already buffered the new version.
    for interrupted in [false, true] {
        writer.apply_watcher_event(&Event::Init);
        if interrupted {
            writer.apply_watcher_event(&Event::InitApply(version(2, "u1", "5")));
            writer.apply_watcher_event(&Event::Init);
        }
        let mut same = version(1, "u1", "4");
        same.mark_trigger(&reader);
        assert!(!same.starts_reconcile());
        let mut edited = version(2, "u1", "5");
        edited.mark_trigger(&reader);
        assert!(edited.starts_reconcile());
        let mut recreated = version(1, "u2", "6");
        recreated.mark_trigger(&reader);
        assert!(recreated.starts_reconcile());
        // ... and the store the controller reconciles from still holds generation 1 meanwhile.
        let held = reader.get(&kube::runtime::reflector::ObjectRef::new("a").within("default")).unwrap();
        assert_eq!(held.decode().unwrap().metadata.generation, Some(1));
    }
}
