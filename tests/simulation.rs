//! Deterministic simulation: the real reconcile code of two or three operator instances, a user
//! and another tool, interleaved by a seeded scheduler over a simulated Kubernetes API
//! (`support::sim_kube`) and the stateful fake API Gateway, with faults: crashes at every await
//! point (an instance loses its in-flight work, its memory and its cache), stale and dropped
//! watch events, API server 500s and lost replies, AWS throttling, 5xx and lost replies. After
//! each history the faults stop, the instances converge, and the invariants are checked.
//!
//! Every request to either fake waits at a gate, and only the scheduler opens gates, one at a
//! time, so a history depends on the seed alone: a failing seed prints itself and replays with
//! `SIM_SEED=<seed> cargo test --test simulation -- --nocapture`. `SIM_SEEDS=<n>` runs more seeds,
//! from `SIM_FIRST` (0 unless set; the default keeps `cargo test` within about a minute).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use integration_response_operator::aws::AwsClients;
use integration_response_operator::controller::{Context, EventRecorder, Settings, reconcile, reconcile_trigger};
use integration_response_operator::crd::IntegrationResponse;
use integration_response_operator::metrics::Metrics;
use integration_response_operator::pacing::Pacer;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use support::fake_aws::{Chaos, FakeAws, Gate};
use support::sim_kube::{KubeFaults, SimKube, Witness, World};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const API: &str = "api1";
const ADOPT: &str = "apigatewayv2.aws.operator.rs/adopt";

/// The objects a user may create: name, integration, key, deletion policy.
const SLOTS: &[(&str, &str, &str, &str)] = &[
    ("a", "int1", "$default", "Delete"),
    ("b", "int1", "/4\\d\\d/", "Delete"),
    ("c", "int2", "$default", "Delete"),
    ("d", "int2", "/5\\d\\d/", "Delete"),
    ("e", "int1", "/2\\d\\d/", "Retain"),
    // Same integration and key as `a`: only with an API Gateway that refuses duplicate keys,
    // since with moto's leniency two objects racing for one key cannot be kept apart.
    ("f", "int1", "$default", "Delete"),
];
/// A response another tool made before the operator ran; `d` may adopt it.
const FOREIGN: (&str, &str) = ("int2", "/5\\d\\d/");

// ---------------------------------------------------------------------------------------------
// Gates: every request parks here until the scheduler releases it.

struct Parked {
    who: String,
    what: String,
    release: oneshot::Sender<()>,
}

#[derive(Default)]
struct Gates {
    parked: Mutex<Vec<Parked>>,
    arrivals: AtomicU64,
    /// During convergence every request passes at once.
    open: AtomicBool,
}

fn gate(gates: &Arc<Gates>) -> Gate {
    let gates = gates.clone();
    Arc::new(move |who, what| {
        let gates = gates.clone();
        Box::pin(async move {
            if std::env::var("SIM_FULL").is_ok() && (what.contains("amazonaws") || what.contains("PATCH")) {
                println!("  [{who} at gate: {what}]");
            }
            if gates.open.load(Ordering::SeqCst) {
                return;
            }
            let (release, wait) = oneshot::channel();
            gates.parked.lock().unwrap().push(Parked { who, what, release });
            gates.arrivals.fetch_add(1, Ordering::SeqCst);
            let _ = wait.await;
        })
    })
}

// ---------------------------------------------------------------------------------------------
// Invariants checked at the moment of each write.

#[derive(Default)]
struct Records {
    /// Every id each object name ever recorded.
    ids: BTreeMap<String, BTreeSet<String>>,
    /// Ids of responses whose object went with deletionPolicy Retain.
    retained: BTreeSet<String>,
    violations: Vec<String>,
}

struct Watch {
    aws: FakeAws,
    records: Arc<Mutex<Records>>,
}

impl Witness for Watch {
    fn status_written(&mut self, name: &str, old: &Value, new: &Value, by: &str) {
        let mut records = self.records.lock().unwrap();
        if std::env::var("SIM_FULL").is_ok() {
            let reason = new["conditions"].as_array().and_then(|c| c.first()).map(|c| c["reason"].clone());
            println!(
                "  [{by} writes {name}: id {} claim {} {reason:?}]",
                new["integrationResponseId"], new["pendingCreate"]
            );
        }
        if let Some(id) = new["integrationResponseId"].as_str() {
            records.ids.entry(name.to_owned()).or_default().insert(id.to_owned());
        }
        // An id may go only with its response, or to the object that keeps it (AlreadyManaged).
        if let Some(old_id) = old["integrationResponseId"].as_str()
            && new["integrationResponseId"].as_str() != Some(old_id)
            && self.aws.state.lock().unwrap().responses.contains_key(old_id)
            && new["conditions"].as_array().is_none_or(|c| !c.iter().any(|c| c["reason"] == "AlreadyManaged"))
        {
            records.violations.push(format!("{by} erased id {old_id} of {name} while it exists in AWS: {new}"));
        }
    }

    fn finalizer_released(&mut self, object: &Value, by: &str, others: &BTreeSet<String>) {
        let name = object["metadata"]["name"].as_str().unwrap();
        let mut records = self.records.lock().unwrap();
        // A response another live object records is that object's to delete.
        let ids: BTreeSet<String> =
            records.ids.get(name).cloned().unwrap_or_default().difference(others).cloned().collect();
        let in_aws: Vec<String> = {
            let state = self.aws.state.lock().unwrap();
            ids.iter().filter(|id| state.responses.contains_key(*id)).cloned().collect()
        };
        if object["spec"]["deletionPolicy"] == "Retain" {
            records.retained.extend(in_aws);
            // A create whose id was never recorded is kept too (Retain keeps whatever exists).
            let status = &object["status"];
            if let (Some(integration), Some(key)) =
                (status["integrationId"].as_str(), status["pendingCreate"]["key"].as_str())
            {
                let state = self.aws.state.lock().unwrap();
                let claimed = state
                    .responses
                    .values()
                    .filter(|r| r.integration_id == integration && r.key == key)
                    .map(|r| r.id.clone());
                records.retained.extend(claimed.collect::<Vec<_>>());
            }
        } else if !in_aws.is_empty() {
            records.violations.push(format!("{by} released the finalizer of {name} while {in_aws:?} exist in AWS"));
        }
        records.ids.remove(name);
    }
}

// ---------------------------------------------------------------------------------------------
// Operator instances.

struct Instance {
    name: String,
    ctx: Arc<Context>,
    /// The instance's watch cache: possibly behind the world.
    cache: Arc<Mutex<BTreeMap<String, IntegrationResponse>>>,
    /// What of each cached object last started a reconcile (the controller's predicate).
    triggers: BTreeMap<String, u64>,
    /// Objects due for a reconcile (a watch trigger or a requeue).
    due: BTreeSet<String>,
    tasks: BTreeMap<String, JoinHandle<()>>,
}

impl Instance {
    fn new(name: &str, world: &Arc<Mutex<World>>, aws: &FakeAws, gates: &Arc<Gates>) -> Self {
        let cache: Arc<Mutex<BTreeMap<String, IntegrationResponse>>> = Arc::default();
        let kube =
            kube::Client::new(SimKube { world: world.clone(), gate: gate(gates), who: name.to_owned() }, "default");
        let metrics = Arc::new(Metrics::default());
        let clients = AwsClients::fixed(aws.client_as(name), Arc::new(Pacer::unlimited()), metrics.clone());
        let events = EventRecorder::new(kube.clone(), "integration-response-operator", name);
        let settings = Settings {
            default_region: Some("us-east-1".into()),
            resync_period: std::time::Duration::from_secs(600),
            identity: name.to_owned(),
            // Instances come back under their own name after a crash, as a restarted pod does;
            // a claim is never left to expire here (the scenarios cover expiry).
            claim_timeout: std::time::Duration::from_secs(3600),
            allow_cluster_scoped_refs: false,
            reference_kinds: Vec::new(),
            require_role_selector: false,
        };
        let ctx = Arc::new(Context::new(kube, clients, events, settings, metrics));
        Self {
            name: name.to_owned(),
            ctx,
            cache,
            triggers: BTreeMap::new(),
            due: BTreeSet::new(),
            tasks: BTreeMap::new(),
        }
    }

    /// A watch event for `name`: the cache takes the world's current copy; what the predicate
    /// sees as changed makes the object due.
    fn observe(&mut self, name: &str, world: &World) {
        match world.objects.get(name) {
            Some(value) => {
                let object: IntegrationResponse = serde_json::from_value(value.clone()).unwrap();
                let trigger = reconcile_trigger(&object.metadata);
                if self.triggers.insert(name.to_owned(), trigger) != Some(trigger) {
                    self.due.insert(name.to_owned());
                }
                self.ctx.owners.observe(&object);
                self.cache.lock().unwrap().insert(name.to_owned(), object);
            }
            None => {
                self.cache.lock().unwrap().remove(name);
                self.triggers.remove(name);
                self.due.remove(name);
                self.ctx.forget(Some("default"), name);
            }
        }
    }

    fn start(&mut self, name: &str, trace: &mut Vec<String>) {
        let Some(object) = self.cache.lock().unwrap().get(name).cloned() else { return };
        if self.tasks.get(name).is_some_and(|t| !t.is_finished()) {
            return;
        }
        self.due.remove(name);
        trace.push(format!("{} reconciles {name}", self.name));
        let ctx = self.ctx.clone();
        let handle = tokio::spawn(async move {
            let _ = reconcile(Arc::new(object), ctx).await;
        });
        self.tasks.insert(name.to_owned(), handle);
    }

    /// Finished reconciles come back due: the controller requeues every object.
    fn reap(&mut self) {
        let finished: Vec<String> =
            self.tasks.iter().filter(|(_, t)| t.is_finished()).map(|(n, _)| n.clone()).collect();
        for name in finished {
            self.tasks.remove(&name);
            self.due.insert(name);
        }
    }

    fn busy(&self) -> bool {
        self.tasks.values().any(|t| !t.is_finished())
    }
}

// ---------------------------------------------------------------------------------------------
// One history.

struct Sim {
    rng: StdRng,
    world: Arc<Mutex<World>>,
    aws: FakeAws,
    gates: Arc<Gates>,
    instances: Vec<Instance>,
    records: Arc<Mutex<Records>>,
    foreign: BTreeSet<String>,
    strict: bool,
    trace: Vec<String>,
}

fn object(slot: &(&str, &str, &str, &str), rng: &mut StdRng) -> Value {
    let (name, integration, key, policy) = slot;
    json!({
        "apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1",
        "kind": "IntegrationResponse",
        "metadata": {"name": name},
        "spec": {
            "apiId": API,
            "integrationId": integration,
            "integrationResponseKey": key,
            "responseTemplates": {"application/json": format!("v{}", rng.random_range(0..3))},
            "deletionPolicy": policy,
        }
    })
}

impl Sim {
    fn new(seed: u64, strict: bool, instances: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let aws = FakeAws::new().with_integration(API, "int1").with_integration(API, "int2");
        let records = Arc::new(Mutex::new(Records::default()));
        let world = Arc::new(Mutex::new(World::new(Box::new(Watch { aws: aws.clone(), records: records.clone() }))));
        let gates = Arc::new(Gates::default());
        let foreign = aws.insert_foreign(API, FOREIGN.0, FOREIGN.1);
        aws.set(|state| {
            state.lenient_keys = !strict;
            state.gate = Some(gate(&gates));
            state.chaos = Some(Chaos {
                rng: StdRng::seed_from_u64(rng.random()),
                throttle: 0.05,
                server_error: 0.05,
                lost_reply: 0.1,
            });
        });
        world.lock().unwrap().faults =
            Some(KubeFaults { rng: StdRng::seed_from_u64(rng.random()), refuse: 0.05, lost_reply: 0.05 });
        let instances =
            (0..instances).map(|i| Instance::new(&format!("op{i}"), &world, &aws, &gates)).collect::<Vec<_>>();
        Self { rng, world, aws, gates, instances, records, foreign: [foreign].into(), strict, trace: Vec::new() }
    }

    fn slots(&self) -> &'static [(&'static str, &'static str, &'static str, &'static str)] {
        if self.strict { SLOTS } else { &SLOTS[..5] }
    }

    /// Lets every task run until each is parked at a gate or finished.
    async fn settle(&mut self) {
        let mut last = u64::MAX;
        loop {
            for _ in 0..16 {
                tokio::task::yield_now().await;
            }
            let finished = self.instances.iter().flat_map(|i| i.tasks.values()).filter(|t| t.is_finished()).count();
            let now = self.gates.arrivals.load(Ordering::SeqCst) + finished as u64;
            if now == last {
                break;
            }
            last = now;
        }
        for instance in &mut self.instances {
            instance.reap();
        }
        self.gates.parked.lock().unwrap().retain(|p| !p.release.is_closed());
    }

    fn user(&mut self) {
        let slots = self.slots();
        let slot = slots[self.rng.random_range(0..slots.len())];
        let name = slot.0;
        let mut world = self.world.lock().unwrap();
        let exists = world.objects.contains_key(name);
        match self.rng.random_range(0..10) {
            0..=3 if !exists => {
                world.create(object(&slot, &mut self.rng));
                self.trace.push(format!("user creates {name}"));
            }
            4..=5 if exists => {
                let value = format!("v{}", self.rng.random_range(0..3));
                world.edit_spec(name, |spec| spec["responseTemplates"] = json!({"application/json": value}));
                self.trace.push(format!("user edits {name}"));
            }
            6 if exists => {
                world.annotate(name, ADOPT, "true");
                self.trace.push(format!("user lets {name} adopt"));
            }
            7 if exists => {
                world.request_deletion(name);
                self.trace.push(format!("user deletes {name}"));
            }
            8 => {
                // Another tool changes or deletes a response in AWS (drift).
                let mut state = self.aws.state.lock().unwrap();
                let ids: Vec<String> = state.responses.keys().cloned().collect();
                if !ids.is_empty() {
                    let id = ids[self.rng.random_range(0..ids.len())].clone();
                    if self.rng.random_bool(0.5) {
                        state.responses.get_mut(&id).unwrap().response_templates.insert("x".into(), "drift".into());
                        self.trace.push(format!("tool changes {id}"));
                    } else {
                        state.responses.remove(&id);
                        self.trace.push(format!("tool deletes {id}"));
                    }
                }
            }
            _ => {}
        }
    }

    async fn step(&mut self) {
        let which = self.rng.random_range(0..self.instances.len());
        match self.rng.random_range(0..100) {
            0..=9 => self.user(),
            10..=34 => {
                // A watch event reaches one instance (others may stay behind: stale caches).
                let names: Vec<String> = {
                    let world = self.world.lock().unwrap();
                    let cached = self.instances[which].cache.lock().unwrap();
                    world.objects.keys().chain(cached.keys()).cloned().collect::<BTreeSet<_>>().into_iter().collect()
                };
                if !names.is_empty() {
                    let name = names[self.rng.random_range(0..names.len())].clone();
                    let world = self.world.lock().unwrap();
                    self.instances[which].observe(&name, &world);
                }
            }
            35..=54 => {
                let due: Vec<String> = self.instances[which].due.iter().cloned().collect();
                if !due.is_empty() {
                    let name = due[self.rng.random_range(0..due.len())].clone();
                    self.instances[which].start(&name, &mut self.trace);
                }
            }
            55..=96 => {
                let mut parked = self.gates.parked.lock().unwrap();
                if !parked.is_empty() {
                    let i = self.rng.random_range(0..parked.len());
                    let p = parked.swap_remove(i);
                    self.trace.push(format!("{}: {}", p.who, p.what));
                    let _ = p.release.send(());
                }
            }
            _ => {
                // A crash: in-flight work, memory and cache are gone; the process comes back
                // under the same name and lists everything again.
                let instance = &mut self.instances[which];
                self.trace.push(format!("{} crashes", instance.name));
                for task in instance.tasks.values() {
                    task.abort();
                }
                let name = instance.name.clone();
                *instance = Instance::new(&name, &self.world, &self.aws, &self.gates);
                let world = self.world.lock().unwrap();
                let names: Vec<String> = world.objects.keys().cloned().collect();
                for name in names {
                    self.instances[which].observe(&name, &world);
                }
            }
        }
        self.settle().await;
    }

    /// Faults stop; every instance sees every object and reconciles until nothing changes.
    async fn converge(&mut self) -> Result<(), String> {
        self.trace.push("-- faults stop; converging --".into());
        self.world.lock().unwrap().faults = None;
        self.aws.set(|state| state.chaos = None);
        self.gates.open.store(true, Ordering::SeqCst);
        // Time passes: what instances verified from memory or from a shared snapshot is looked
        // at again (the periodic resync comes this much later in production).
        tokio::time::advance(std::time::Duration::from_secs(300)).await;
        for parked in self.gates.parked.lock().unwrap().drain(..) {
            let _ = parked.release.send(());
        }
        self.settle().await;
        for _ in 0..100 {
            if !self.instances.iter().any(Instance::busy) {
                break;
            }
            self.settle().await;
        }
        let mut quiet_rounds = 0;
        for _round in 0..20 {
            // Each round is a periodic resync: later than any verification kept in memory.
            tokio::time::advance(std::time::Duration::from_secs(300)).await;
            let before = self.fingerprint();
            for which in 0..self.instances.len() {
                let names: Vec<String> = {
                    let world = self.world.lock().unwrap();
                    let cached = self.instances[which].cache.lock().unwrap();
                    world.objects.keys().chain(cached.keys()).cloned().collect::<BTreeSet<_>>().into_iter().collect()
                };
                for name in names {
                    {
                        let world = self.world.lock().unwrap();
                        self.instances[which].observe(&name, &world);
                    }
                    self.instances[which].start(&name, &mut self.trace);
                    for _ in 0..100 {
                        self.settle().await;
                        if !self.instances[which].busy() {
                            break;
                        }
                    }
                }
            }
            if self.fingerprint() == before {
                quiet_rounds += 1;
                if quiet_rounds == 2 {
                    return Ok(());
                }
            } else {
                quiet_rounds = 0;
            }
        }
        Err("did not converge in 20 rounds".into())
    }

    /// What the world and AWS hold, to tell whether a round changed anything.
    fn fingerprint(&self) -> String {
        let world = self.world.lock().unwrap();
        let objects: Vec<(String, Value, Value)> = world
            .objects
            .iter()
            .map(|(name, o)| (name.clone(), o["metadata"]["finalizers"].clone(), o["status"].clone()))
            .collect();
        format!("{objects:?}{:?}", self.aws.responses())
    }

    fn check(&self) -> Vec<String> {
        let mut violations = self.records.lock().unwrap().violations.clone();
        let world = self.world.lock().unwrap();
        violations.extend(world.unexpected.iter().map(|r| format!("unexpected request {r}")));
        let responses = self.aws.responses();
        let retained = self.records.lock().unwrap().retained.clone();
        let mut per_key: BTreeMap<(String, String), usize> = BTreeMap::new();
        for response in &responses {
            *per_key.entry((response.integration_id.clone(), response.key.clone())).or_default() += 1;
            let owners: Vec<&String> = world
                .objects
                .iter()
                .filter(|(_, o)| o["status"]["integrationResponseId"].as_str() == Some(response.id.as_str()))
                .map(|(name, _)| name)
                .collect();
            if owners.len() > 1 {
                violations.push(format!("{} is recorded by {owners:?}", response.id));
            }
            if owners.is_empty() && !self.foreign.contains(&response.id) && !retained.contains(&response.id) {
                violations.push(format!("{} (key {}) is leaked: no object records it", response.id, response.key));
            }
        }
        for ((integration, key), count) in per_key {
            if count > 1 {
                violations.push(format!("{count} responses for {integration} {key}"));
            }
        }
        for (name, object) in &world.objects {
            if object["metadata"].get("deletionTimestamp").is_some() {
                violations.push(format!("{name} is still being deleted"));
                continue;
            }
            let generation = object["metadata"]["generation"].as_i64();
            let status = &object["status"];
            let ready = status["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "Ready"));
            let Some(ready) = ready else {
                violations.push(format!("{name} has no Ready condition: {status}"));
                continue;
            };
            if ready["observedGeneration"].as_i64() != generation {
                violations.push(format!("{name}'s conditions are for another generation: {status}"));
            }
            let spec = &object["spec"];
            let reason = ready["reason"].as_str().unwrap_or_default();
            if ready["status"] == "True" {
                let id = status["integrationResponseId"].as_str().unwrap_or_default();
                match responses.iter().find(|r| r.id == id) {
                    None => violations.push(format!("{name} is Ready with {id}, which is not in AWS")),
                    Some(r) => {
                        let templates: Value = serde_json::to_value(&r.response_templates).unwrap();
                        if r.key != spec["integrationResponseKey"].as_str().unwrap()
                            || r.integration_id != spec["integrationId"].as_str().unwrap()
                            || templates != spec["responseTemplates"]
                        {
                            violations.push(format!("{name} is Ready but AWS differs: {r:?}"));
                        }
                    }
                }
            } else {
                // Stalled only for a reason AWS explains: the key is held by a response that
                // another object or another tool owns.
                let key_taken = responses.iter().any(|r| {
                    r.integration_id == spec["integrationId"].as_str().unwrap()
                        && r.key == spec["integrationResponseKey"].as_str().unwrap()
                        && status["integrationResponseId"].as_str() != Some(r.id.as_str())
                });
                if !(matches!(reason, "AlreadyExists" | "AlreadyManaged") && key_taken) {
                    violations.push(format!("{name} is not Ready ({reason}) without a reason AWS explains: {status}"));
                }
            }
        }
        violations
    }
}

async fn run(seed: u64, strict: bool, steps: usize) -> Result<Vec<String>, String> {
    let instances = 2 + (seed % 2) as usize;
    let mut sim = Sim::new(seed, strict, instances);
    for _ in 0..steps {
        sim.step().await;
    }
    let converged = sim.converge().await;
    let mut violations = sim.check();
    if let Err(err) = converged {
        violations.push(err);
    }
    // Stop what is left (nothing should be) before the next history.
    for instance in &sim.instances {
        for task in instance.tasks.values() {
            task.abort();
        }
    }
    if !violations.is_empty() {
        // The end state, for whoever reads a failure.
        let world = sim.world.lock().unwrap();
        for (name, object) in &world.objects {
            let status = &object["status"];
            let ready = status["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "Ready"));
            violations.push(format!(
                "(end) {name}: generation {} id {} claim {} ready {}/{} deleting {}",
                object["metadata"]["generation"],
                status["integrationResponseId"],
                status["pendingCreate"],
                ready.map(|r| r["status"].clone()).unwrap_or_default(),
                ready.map(|r| r["reason"].clone()).unwrap_or_default(),
                object["metadata"].get("deletionTimestamp").is_some(),
            ));
        }
        for r in sim.aws.responses() {
            violations.push(format!("(end) AWS {} {} {} {:?}", r.id, r.integration_id, r.key, r.response_templates));
        }
    }
    if violations.is_empty() {
        Ok(sim.trace)
    } else {
        let shown = if std::env::var("SIM_SEED").is_ok() { usize::MAX } else { 40 };
        let history = sim.trace.iter().position(|t| t.starts_with("-- faults stop")).unwrap_or(sim.trace.len());
        let history = if std::env::var("SIM_FULL").is_ok() { sim.trace.len() } else { history };
        let tail = sim.trace[..history].iter().rev().take(shown).rev().cloned().collect::<Vec<_>>().join("\n  ");
        Err(format!(
            "seed {seed} ({} keys, {instances} instances) broke invariants:\n- {}\nlast steps:\n  {tail}\nreplay: SIM_SEED={seed} cargo test --test simulation -- --nocapture",
            if strict { "strict" } else { "lenient" },
            violations.join("\n- ")
        ))
    }
}

fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("SIM_SEED") {
        // Replaying one seed: the operator's own log too (RUST_LOG picks the level).
        let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).try_init();
        return vec![seed.parse().expect("SIM_SEED is a number")];
    }
    let count: u64 = std::env::var("SIM_SEEDS").ok().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let first: u64 = std::env::var("SIM_FIRST").ok().and_then(|n| n.parse().ok()).unwrap_or(0);
    (first..first + count).collect()
}

async fn run_all(strict: bool) {
    let started = std::time::Instant::now();
    let seeds = seeds();
    let mut failures = Vec::new();
    for &seed in &seeds {
        if let Err(failure) = run(seed, strict, 150).await {
            failures.push(failure);
            if failures.len() >= 3 {
                break;
            }
        }
    }
    println!(
        "simulation ({}): {} seeds in {:.1} s, {} failed",
        if strict { "strict keys" } else { "lenient keys" },
        seeds.len(),
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn invariants_hold_with_an_api_gateway_that_refuses_duplicate_keys() {
    run_all(true).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn invariants_hold_with_moto_s_lenient_duplicate_keys() {
    run_all(false).await;
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_seed_replays_exactly() {
    let first = run(7, true, 150).await;
    let second = run(7, true, 150).await;
    assert_eq!(first, second, "the same seed gives the same history");
    let trace = first.expect("seed 7 keeps the invariants");
    assert!(trace.len() > 100, "a history has steps: {}", trace.len());
}
