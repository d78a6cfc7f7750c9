//! A test-only Kubernetes API emulator.
//!
//! It serves, over plain HTTP on 127.0.0.1, the parts of the Kubernetes API that the operator
//! uses: its custom resource (from the CRD files), namespaces, `events.k8s.io/v1` Events and
//! `coordination.k8s.io/v1` Leases. It follows kube-apiserver's documented behaviour for those
//! (resourceVersion and generation, finalizers, the status subresource, watch with 410 Gone,
//! JSON/merge patch, server-side apply with field ownership, schema and CEL validation,
//! `fieldValidation`, and the built-in kinds' own decoding and validation with the real
//! server's wording), serves what `kubectl` needs (discovery, OpenAPI v3, Tables, core `v1`
//! Events read from the `events.k8s.io` ones), and answers anything else with 501 naming what
//! is missing, never with a made-up success.
//! Differences from the real server are listed in `tests/README.md`.

pub mod api;
pub mod builtin;
pub mod decode;
pub mod discovery;
pub mod faults;
pub mod patch;
pub mod resources;
pub mod schema;
pub mod selector;
pub mod store;
pub mod table;
pub mod validation;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use serde_json::Value;
use tokio::sync::Notify;

pub use faults::{Fault, Faults};

/// Everything the HTTP handlers share.
pub struct State {
    pub store: Mutex<store::Store>,
    pub resources: RwLock<resources::Resources>,
    pub faults: Faults,
    /// Notified to close every open watch (fault injection).
    pub drop_watches: Notify,
}

pub struct Emulator {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl Emulator {
    /// Serves the custom resources defined in `crd_files` on a free 127.0.0.1 port.
    pub async fn start(crd_files: &[&Path]) -> Result<Self, String> {
        Self::start_on("127.0.0.1:0".parse().unwrap(), crd_files).await
    }

    pub async fn start_on(addr: SocketAddr, crd_files: &[&Path]) -> Result<Self, String> {
        let mut resources = resources::Resources::builtin();
        for file in crd_files {
            let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
            resources.add_crd(&text)?;
        }
        let state = Arc::new(State {
            store: Mutex::new(store::Store::new()),
            resources: RwLock::new(resources),
            faults: Faults::default(),
            drop_watches: Notify::new(),
        });
        state.store.lock().unwrap().create_namespace("default");
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("bind {addr}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let router = api::router(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(Self { addr, state, server })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig that points kube clients (and kubectl) at this emulator.
    pub fn kubeconfig(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: emulator\n  cluster:\n    server: {}\nusers:\n- name: emulator\n  user: {{}}\ncontexts:\n- name: emulator\n  context:\n    cluster: emulator\n    user: emulator\n    namespace: default\ncurrent-context: emulator\n",
            self.url()
        )
    }

    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// The stored object, as the API server would return it.
    pub fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        self.state.store.lock().unwrap().get(plural, namespace, name).cloned()
    }

    /// All stored objects of one resource in one namespace.
    pub fn list(&self, plural: &str, namespace: &str) -> Vec<Value> {
        self.state.store.lock().unwrap().list(plural, Some(namespace)).into_iter().cloned().collect()
    }

    pub fn create_namespace(&self, name: &str) {
        self.state.store.lock().unwrap().create_namespace(name);
    }

    /// Installs a CustomResourceDefinition while running (as `kubectl apply -f crd.yaml`).
    pub fn add_crd(&self, yaml: &str) -> Result<(), String> {
        self.state.resources.write().unwrap().add_crd(yaml)
    }

    /// Creates an object as a client's POST would (validation included), without HTTP: for load
    /// generators that should not be the bottleneck.
    pub fn create(&self, plural: &str, namespace: &str, object: Value) -> Result<Value, String> {
        let rt = {
            let resources = self.state.resources.read().unwrap();
            resources.by_plural(plural).cloned().ok_or_else(|| format!("no resource {plural}"))?
        };
        api::create(&self.state, &rt, namespace, object).map_err(|e| e.message)
    }

    /// Stores an object as-is, skipping validation: how a malformed object (written under an
    /// older schema, say) ends up in etcd. Watches see it as ADDED.
    pub fn insert_raw(&self, plural: &str, namespace: &str, name: &str, mut object: Value) {
        let mut store = self.state.store.lock().unwrap();
        let rv = store.next_resource_version();
        object["metadata"]["resourceVersion"] = serde_json::json!(rv.to_string());
        object["metadata"]["uid"] = serde_json::json!(api::new_uid());
        store.put(plural, namespace, name, object);
    }

    /// Forgets the watch history, as etcd compaction does: a watch resuming from any earlier
    /// resourceVersion is then answered 410 Gone.
    pub fn compact(&self) {
        self.state.store.lock().unwrap().compact();
    }

    /// Closes every open watch, as an API server restart or a load balancer would.
    pub fn drop_watches(&self) {
        self.state.drop_watches.notify_waiters();
    }

    /// Requests served so far, per "verb resource[/subresource]".
    pub fn request_count(&self, verb: &str, resource: &str) -> u64 {
        self.state.faults.count(verb, resource)
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.server.abort();
    }
}
