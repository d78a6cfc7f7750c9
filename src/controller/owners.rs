//! One response, one owner: which watched object records or is creating which response.
//!
//! Fed from the watch (every object as it is stored, and every deletion), so it is as current as
//! this process's cache. Adoption consults it to refuse a response another object manages; and
//! since two instances with lagging caches can still both end up recording one response, every
//! reconcile of an object with an id checks it again and the two settle on one owner by a rule
//! both instances apply alike (see [`Owners::yields_to`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::ResourceExt;

use crate::crd::IntegrationResponse;

/// Where a response lives (API and response id) or a claim (API, integration and key), as one
/// string: length-prefixed parts, so no two tuples share a key.
fn place(parts: &[&str]) -> String {
    parts.iter().map(|part| format!("{}:{part}", part.len())).collect()
}

/// The objects at one place: almost always one, so one pointer without a vector.
enum Holders {
    One(Arc<str>),
    Many(Vec<Arc<str>>),
}

impl Holders {
    fn iter(&self) -> impl Iterator<Item = &Arc<str>> {
        let (one, many) = match self {
            Self::One(object) => (Some(object), &[][..]),
            Self::Many(objects) => (None, &objects[..]),
        };
        one.into_iter().chain(many)
    }

    fn add(&mut self, object: Arc<str>) {
        match self {
            Self::One(first) => *self = Self::Many(vec![first.clone(), object]),
            Self::Many(objects) => objects.push(object),
        }
    }

    /// Removes `object`; `false` when none are left.
    fn remove(&mut self, object: &str) -> bool {
        match self {
            Self::One(first) => &**first != object,
            Self::Many(objects) => {
                objects.retain(|o| &**o != object);
                !objects.is_empty()
            }
        }
    }
}

/// Where one object is indexed: its response and its claim.
type Places = (Option<Arc<str>>, Option<Arc<str>>);

/// Sized for 100,000 objects: each object's name and place are allocated once and shared by
/// the maps (about 250 bytes per object, where String keys in each map took twice that).
#[derive(Default)]
struct Index {
    /// Place of a response → objects recording it.
    by_id: HashMap<Arc<str>, Holders>,
    /// Place of a claim → objects with a create claim on it.
    by_claim: HashMap<Arc<str>, Holders>,
    /// Object ("namespace/name") → the places it is indexed under, to remove it again.
    entries: HashMap<Arc<str>, Places>,
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
        let api = status.and_then(|s| s.api_id.as_deref());
        // A response only observed (managementPolicy Observe) is not owned by the observer.
        let id = status
            .filter(|s| !s.observed_only)
            .and_then(|s| Some(place(&[api?, s.integration_response_id.as_deref()?])));
        let claim = status.and_then(|s| {
            Some(place(&[api?, s.integration_id.as_deref()?, s.claimed_key()?]))
                .filter(|_| s.integration_response_id.is_none())
        });
        let mut index = self.index.lock().expect("owners lock");
        index.remove(&key);
        if id.is_none() && claim.is_none() {
            return;
        }
        let key: Arc<str> = key.into();
        let id = id.map(|id| index.add(Kind::Id, id, key.clone()));
        let claim = claim.map(|claim| index.add(Kind::Claim, claim, key.clone()));
        index.entries.insert(key, (id, claim));
    }

    pub fn forget(&self, object: &str) {
        self.index.lock().expect("owners lock").remove(object);
    }

    /// Keeps only the objects `keep` accepts.
    pub fn retain(&self, mut keep: impl FnMut(&str) -> bool) {
        let mut index = self.index.lock().expect("owners lock");
        let gone: Vec<Arc<str>> = index.entries.keys().filter(|k| !keep(k)).cloned().collect();
        for key in gone {
            index.remove(&key);
        }
    }

    /// Another object that records response `id`, or is creating a response with `key` on
    /// `integration`, other than `me`.
    pub fn other_manager(&self, api: &str, id: &str, integration: &str, key: &str, me: &str) -> Option<String> {
        let index = self.index.lock().expect("owners lock");
        let recording = index.by_id.get(place(&[api, id]).as_str());
        let claiming = index.by_claim.get(place(&[api, integration, key]).as_str());
        recording
            .into_iter()
            .chain(claiming)
            .flat_map(Holders::iter)
            .find(|other| &***other != me)
            .map(|o| o.to_string())
    }

    /// The object `me` must give response `id` up to, if another one records it too: the one
    /// whose "namespace/name" sorts first keeps it. Arbitrary, but every instance decides alike.
    pub fn yields_to(&self, api: &str, id: &str, me: &str) -> Option<String> {
        let index = self.index.lock().expect("owners lock");
        let recording = index.by_id.get(place(&[api, id]).as_str())?;
        recording.iter().filter(|other| &***other < me).min().map(|o| o.to_string())
    }

    pub fn len(&self) -> usize {
        self.index.lock().expect("owners lock").entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Id,
    Claim,
}

impl Index {
    fn places(&mut self, kind: Kind) -> &mut HashMap<Arc<str>, Holders> {
        match kind {
            Kind::Id => &mut self.by_id,
            Kind::Claim => &mut self.by_claim,
        }
    }

    /// Adds `object` at `place`; returns the place as shared with the map's key.
    fn add(&mut self, kind: Kind, place: String, object: Arc<str>) -> Arc<str> {
        let places = self.places(kind);
        if let Some(shared) = places.get_key_value(place.as_str()).map(|(shared, _)| shared.clone()) {
            places.get_mut(&shared).expect("just found").add(object);
            return shared;
        }
        let shared: Arc<str> = place.into();
        places.insert(shared.clone(), Holders::One(object));
        shared
    }

    fn remove(&mut self, object: &str) {
        let Some((id, claim)) = self.entries.remove(object) else { return };
        for (kind, place) in [(Kind::Id, id), (Kind::Claim, claim)] {
            let Some(place) = place else { continue };
            let places = self.places(kind);
            if let Some(holders) = places.get_mut(&place)
                && !holders.remove(object)
            {
                places.remove(&place);
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
