//! The object store: objects by resource, namespace and name; one resourceVersion counter; a
//! bounded history of changes for watches to resume from.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

#[derive(Debug)]
pub struct Change {
    pub resource_version: u64,
    pub plural: String,
    pub namespace: String,
    /// ADDED, MODIFIED or DELETED.
    pub kind: &'static str,
    pub object: Arc<Value>,
    /// The object before a MODIFIED change (label-selector watches need it).
    pub previous: Option<Arc<Value>>,
}

type Key = (String, String, String);

pub struct Store {
    resource_version: u64,
    objects: BTreeMap<Key, Value>,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Changes at or below this version are forgotten; resuming from before it is 410 Gone.
    compacted: u64,
    changes: broadcast::Sender<Arc<Change>>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Self {
        Self {
            resource_version: 1,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit: 50_000,
            compacted: 0,
            changes: broadcast::channel(65_536).0,
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    pub fn next_resource_version(&mut self) -> u64 {
        self.resource_version += 1;
        self.resource_version
    }

    pub fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<&Value> {
        self.objects.get(&(plural.to_owned(), namespace.to_owned(), name.to_owned()))
    }

    /// Objects of one resource, in one namespace or all, ordered by namespace and name.
    pub fn list(&self, plural: &str, namespace: Option<&str>) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|((p, ns, _), _)| p == plural && namespace.is_none_or(|n| n == ns))
            .map(|(_, v)| v)
            .collect()
    }

    /// Stores `object` (its resourceVersion already set) and records the change.
    pub fn put(&mut self, plural: &str, namespace: &str, name: &str, object: Value) {
        let key = (plural.to_owned(), namespace.to_owned(), name.to_owned());
        let previous = self.objects.insert(key, object.clone());
        let kind = if previous.is_some() { "MODIFIED" } else { "ADDED" };
        self.record(plural, namespace, kind, object, previous);
    }

    /// Removes the object; `last` is its final state (with a new resourceVersion).
    pub fn remove(&mut self, plural: &str, namespace: &str, name: &str, last: Value) {
        let key = (plural.to_owned(), namespace.to_owned(), name.to_owned());
        let previous = self.objects.remove(&key);
        self.record(plural, namespace, "DELETED", last, previous);
    }

    fn record(&mut self, plural: &str, namespace: &str, kind: &'static str, object: Value, previous: Option<Value>) {
        let change = Arc::new(Change {
            resource_version: self.resource_version,
            plural: plural.to_owned(),
            namespace: namespace.to_owned(),
            kind,
            object: Arc::new(object),
            previous: previous.map(Arc::new),
        });
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted = dropped.resource_version;
            }
        }
        let _ = self.changes.send(change);
    }

    /// Changes after `resource_version`, or `Err(oldest)` when they are no longer kept.
    pub fn changes_since(&self, resource_version: u64) -> Result<Vec<Arc<Change>>, u64> {
        if resource_version < self.compacted {
            return Err(self.compacted + 1);
        }
        Ok(self.history.iter().filter(|c| c.resource_version > resource_version).cloned().collect())
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.changes.subscribe()
    }

    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.resource_version;
    }

    pub fn create_namespace(&mut self, name: &str) {
        if self.get("namespaces", "", name).is_some() {
            return;
        }
        let rv = self.next_resource_version();
        let namespace = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/metadata.name": name},
                "uid": crate::api::new_uid(),
                "resourceVersion": rv.to_string(),
                "creationTimestamp": crate::api::now(),
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        self.put("namespaces", "", name, namespace);
    }
}
