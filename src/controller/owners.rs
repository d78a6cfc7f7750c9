//! One response, one owner: which watched object records or is creating which response.
//!
//! Fed from the watch (every object as it is stored, and every deletion), so it is as current as
//! this process's cache. Adoption consults it to refuse a response another object manages; and
//! since two instances with lagging caches can still both end up recording one response, every
//! reconcile of an object with an id checks it again and the two settle on one owner by a rule
//! both instances apply alike (see [`Owners::yields_to`]).

use std::collections::HashMap;
use std::sync::Mutex;

use kube::ResourceExt;

use crate::crd::IntegrationResponse;

/// Where a response or a claim lives: API and the response id, or integration and key.
type IdKey = (String, String);
type ClaimKey = (String, String, String);

#[derive(Default)]
struct Index {
    /// (api, response id) → objects recording it.
    by_id: HashMap<IdKey, Vec<String>>,
    /// (api, integration, key) → objects with a create claim on it.
    by_claim: HashMap<ClaimKey, Vec<String>>,
    /// object → what it was indexed under, to remove it again.
    entries: HashMap<String, (Option<IdKey>, Option<ClaimKey>)>,
}

#[derive(Default)]
pub struct Owners {
    index: Mutex<Index>,
}

impl Owners {
    /// Indexes an object as stored (replacing what it was indexed under before). Objects being
    /// deleted own nothing any more: they are on their way out.
    pub fn observe(&self, obj: &IntegrationResponse) {
        let key = super::key_of(obj.namespace().as_deref(), &obj.name_any());
        let status = obj.status.as_ref().filter(|_| obj.metadata.deletion_timestamp.is_none());
        let api = status.and_then(|s| s.api_id.clone());
        // A response only observed (managementPolicy Observe) is not owned by the observer.
        let id =
            status.filter(|s| !s.observed_only).and_then(|s| Some((api.clone()?, s.integration_response_id.clone()?)));
        let claim = status.and_then(|s| {
            Some((api.clone()?, s.integration_id.clone()?, s.claimed_key()?.to_owned()))
                .filter(|_| s.integration_response_id.is_none())
        });
        let mut index = self.index.lock().expect("owners lock");
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
        self.index.lock().expect("owners lock").remove(object);
    }

    /// Keeps only the objects `keep` accepts.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        let mut index = self.index.lock().expect("owners lock");
        let gone: Vec<String> = index.entries.keys().filter(|k| !keep(k)).cloned().collect();
        for key in gone {
            index.remove(&key);
        }
    }

    /// Another object that records response `id`, or is creating a response with `key` on
    /// `integration`, other than `me`.
    pub fn other_manager(&self, api: &str, id: &str, integration: &str, key: &str, me: &str) -> Option<String> {
        let index = self.index.lock().expect("owners lock");
        let recording = index.by_id.get(&(api.to_owned(), id.to_owned()));
        let claiming = index.by_claim.get(&(api.to_owned(), integration.to_owned(), key.to_owned()));
        recording.into_iter().chain(claiming).flatten().find(|other| *other != me).cloned()
    }

    /// The object `me` must give response `id` up to, if another one records it too: the one
    /// whose "namespace/name" sorts first keeps it. Arbitrary, but every instance decides alike.
    pub fn yields_to(&self, api: &str, id: &str, me: &str) -> Option<String> {
        let index = self.index.lock().expect("owners lock");
        let recording = index.by_id.get(&(api.to_owned(), id.to_owned()))?;
        recording.iter().filter(|other| other.as_str() < me).min().cloned()
    }

    pub fn len(&self) -> usize {
        self.index.lock().expect("owners lock").entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
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

#[cfg(test)]
mod tests {
    use super::*;

    fn object(name: &str, status: serde_json::Value) -> IntegrationResponse {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1",
            "kind": "IntegrationResponse",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"apiId": "api", "integrationId": "int", "integrationResponseKey": "$default"},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn records_and_claims_are_found_until_the_object_moves_on() {
        let owners = Owners::default();
        owners.observe(&object(
            "a",
            serde_json::json!({"apiId": "api", "integrationId": "int", "integrationResponseId": "r1"}),
        ));
        owners.observe(&object(
            "b",
            serde_json::json!({"apiId": "api", "integrationId": "int",
                "pendingCreate": {"key": "/4\\d\\d/", "holder": "x", "since": "2026-11-29T00:00:00Z"}}),
        ));
        assert_eq!(owners.other_manager("api", "r1", "int", "$default", "ns/c").as_deref(), Some("ns/a"));
        assert_eq!(owners.other_manager("api", "r1", "int", "$default", "ns/a"), None, "not itself");
        assert_eq!(owners.other_manager("api", "r9", "int", "/4\\d\\d/", "ns/c").as_deref(), Some("ns/b"));
        assert_eq!(owners.other_manager("other", "r1", "int", "$default", "ns/c"), None, "ids are per API");

        // a gives the response up; b's create finishes.
        owners.observe(&object("a", serde_json::json!({"apiId": "api", "integrationId": "int"})));
        owners.observe(&object(
            "b",
            serde_json::json!({"apiId": "api", "integrationId": "int", "integrationResponseId": "r2"}),
        ));
        assert_eq!(owners.other_manager("api", "r1", "int", "$default", "ns/c"), None);
        assert_eq!(owners.other_manager("api", "r9", "int", "/4\\d\\d/", "ns/c"), None);
        owners.forget("ns/b");
        assert!(owners.is_empty());
    }

    #[test]
    fn a_response_only_observed_has_no_owner() {
        let owners = Owners::default();
        owners.observe(&object(
            "watcher",
            serde_json::json!({"apiId": "api", "integrationId": "int", "integrationResponseId": "r1", "observedOnly": true}),
        ));
        assert_eq!(owners.other_manager("api", "r1", "int", "/x/", "ns/c"), None);
        assert_eq!(owners.yields_to("api", "r1", "ns/z"), None);
        owners.observe(&object(
            "watcher",
            serde_json::json!({"apiId": "api", "integrationId": "int", "integrationResponseId": "r1"}),
        ));
        assert_eq!(owners.other_manager("api", "r1", "int", "/x/", "ns/c").as_deref(), Some("ns/watcher"));
    }

    #[test]
    fn of_two_objects_recording_one_response_the_first_by_name_keeps_it() {
        let owners = Owners::default();
        for name in ["b", "a"] {
            owners.observe(&object(name, serde_json::json!({"apiId": "api", "integrationResponseId": "r1"})));
        }
        assert_eq!(owners.yields_to("api", "r1", "ns/b").as_deref(), Some("ns/a"));
        assert_eq!(owners.yields_to("api", "r1", "ns/a"), None);
        owners.retain(|k| k != "ns/a");
        assert_eq!(owners.yields_to("api", "r1", "ns/b"), None);
    }
}
