//! The Kubernetes side of the deterministic simulation: many IntegrationResponses in one
//! namespace, served as kube-apiserver would for the requests the operator makes (GET, finalizer
//! JSON patches, status server-side apply with resourceVersion preconditions, Events), with
//! seeded faults. Every request waits at the simulation's gate before it takes effect and again
//! before its answer is delivered, so the scheduler decides the interleaving of all writers and
//! can drop a request's caller at either point (a crash, or a lost reply).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};

use futures::future::BoxFuture;
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

use super::fake_aws::Gate;
use super::fake_kube::{json_patch_metadata, status_error};

const OBJECTS: &str = "/apis/apigatewayv2.aws.operator.rs/v1alpha1/namespaces/default/integrationresponses";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

/// Checks the world makes at the moment of a write, with what AWS holds then.
pub trait Witness: Send {
    /// `name`'s status goes from `old` to `new`.
    fn status_written(&mut self, name: &str, old: &Value, new: &Value, by: &str);
    /// The last finalizer of `object` (being deleted) is removed; `others` are the ids other
    /// live objects record at that moment.
    fn finalizer_released(&mut self, object: &Value, by: &str, others: &std::collections::BTreeSet<String>);
}

pub struct World {
    pub objects: BTreeMap<String, Value>,
    resource_version: u64,
    pub events: BTreeMap<String, Value>,
    /// Seeded faults; `None` once faults stop.
    pub faults: Option<KubeFaults>,
    pub unexpected: Vec<String>,
    pub witness: Box<dyn Witness>,
}

pub struct KubeFaults {
    pub rng: StdRng,
    /// A write refused with 500 before it takes effect.
    pub refuse: f64,
    /// A write that takes effect, but whose answer is a 500 (a timeout seen by the client).
    pub lost_reply: f64,
}

impl World {
    pub fn new(witness: Box<dyn Witness>) -> Self {
        Self {
            objects: BTreeMap::new(),
            resource_version: 1,
            events: BTreeMap::new(),
            faults: None,
            unexpected: Vec::new(),
            witness,
        }
    }

    fn bump(&mut self, name: &str) {
        self.resource_version += 1;
        let rv = self.resource_version.to_string();
        if let Some(object) = self.objects.get_mut(name) {
            object["metadata"]["resourceVersion"] = json!(rv);
        }
    }

    /// `kubectl apply` of a new object.
    pub fn create(&mut self, mut object: Value) {
        let name = object["metadata"]["name"].as_str().unwrap().to_owned();
        object["metadata"]["namespace"] = json!("default");
        object["metadata"]["uid"] = json!(format!("uid-{name}-{}", self.resource_version));
        object["metadata"]["generation"] = json!(1);
        self.objects.insert(name.clone(), object);
        self.bump(&name);
    }

    /// A user's spec edit: generation goes up.
    pub fn edit_spec(&mut self, name: &str, edit: impl FnOnce(&mut Value)) {
        let Some(object) = self.objects.get_mut(name) else { return };
        if object["metadata"].get("deletionTimestamp").is_some() {
            return;
        }
        edit(&mut object["spec"]);
        let generation = object["metadata"]["generation"].as_i64().unwrap() + 1;
        object["metadata"]["generation"] = json!(generation);
        self.bump(name);
    }

    pub fn annotate(&mut self, name: &str, key: &str, value: &str) {
        let Some(object) = self.objects.get_mut(name) else { return };
        object["metadata"]["annotations"] = json!({ key: value });
        self.bump(name);
    }

    /// `kubectl delete`: kept, marked, while finalizers remain (the generation goes up, as
    /// kube-apiserver does for objects with finalizers).
    pub fn request_deletion(&mut self, name: &str) {
        let Some(object) = self.objects.get_mut(name) else { return };
        if object["metadata"].get("deletionTimestamp").is_some() {
            return;
        }
        let has_finalizers = object["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
        if !has_finalizers {
            self.objects.remove(name);
            return;
        }
        object["metadata"]["deletionTimestamp"] = json!("2026-11-29T00:00:00Z");
        let generation = object["metadata"]["generation"].as_i64().unwrap() + 1;
        object["metadata"]["generation"] = json!(generation);
        self.bump(name);
    }

    /// Decides a fault for a write: `Some(true)` refuse, `Some(false)` lose the reply.
    fn fault(&mut self) -> Option<bool> {
        let faults = self.faults.as_mut()?;
        let roll: f64 = faults.rng.random();
        if roll < faults.refuse {
            Some(true)
        } else if roll < faults.refuse + faults.lost_reply {
            Some(false)
        } else {
            None
        }
    }

    fn serve(&mut self, method: &Method, path: &str, query: &str, body: Value, by: &str) -> (StatusCode, Value) {
        if let Some(rest) = path.strip_prefix(EVENTS) {
            // Events are informational; stored so their names can be patched.
            let name = rest.trim_start_matches('/');
            return match *method {
                Method::POST => {
                    let name = body["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                    self.events.insert(name, body.clone());
                    (StatusCode::CREATED, body)
                }
                Method::PATCH => match self.events.get_mut(name) {
                    Some(event) => {
                        json_patch::merge(event, &body);
                        (StatusCode::OK, event.clone())
                    }
                    None => status_error(404, "NotFound", "no such event"),
                },
                _ => self.unexpected(method, path, query),
            };
        }
        let Some(rest) = path.strip_prefix(OBJECTS).map(|r| r.trim_start_matches('/')) else {
            return self.unexpected(method, path, query);
        };
        let (name, status) = match rest.strip_suffix("/status") {
            Some(name) => (name.to_owned(), true),
            None => (rest.to_owned(), false),
        };
        match (method, status) {
            (&Method::GET, false) => match self.objects.get(&name) {
                Some(object) => (StatusCode::OK, object.clone()),
                None => status_error(404, "NotFound", "not found"),
            },
            (&Method::PATCH, true) => {
                let fault = self.fault();
                if fault == Some(true) {
                    return status_error(500, "InternalError", "injected");
                }
                let Some(object) = self.objects.get(&name).cloned() else {
                    return status_error(404, "NotFound", "not found");
                };
                if let Some(expected) = body["metadata"]["resourceVersion"].as_str()
                    && object["metadata"]["resourceVersion"].as_str() != Some(expected)
                {
                    return status_error(409, "Conflict", "the object has been modified");
                }
                let old = object.get("status").cloned().unwrap_or(Value::Null);
                let new = body["status"].clone();
                self.witness.status_written(&name, &old, &new, by);
                self.objects.get_mut(&name).unwrap()["status"] = new;
                self.bump(&name);
                match fault {
                    Some(false) => status_error(500, "InternalError", "reply lost"),
                    _ => (StatusCode::OK, self.objects[&name].clone()),
                }
            }
            (&Method::PATCH, false) => {
                let fault = self.fault();
                if fault == Some(true) {
                    return status_error(500, "InternalError", "injected");
                }
                let Some(object) = self.objects.get(&name).cloned() else {
                    return status_error(404, "NotFound", "not found");
                };
                let (patched, deleting, after) = match json_patch_metadata(&object, body) {
                    Ok(done) => done,
                    Err(refused) => return refused,
                };
                self.objects.insert(name.clone(), patched);
                self.bump(&name);
                let reply = self.objects[&name].clone();
                if deleting && after == 0 {
                    let others = self
                        .objects
                        .iter()
                        .filter(|(other, o)| **other != name && o["metadata"].get("deletionTimestamp").is_none())
                        .filter_map(|(_, o)| o["status"]["integrationResponseId"].as_str().map(str::to_owned))
                        .collect();
                    self.witness.finalizer_released(&reply, by, &others);
                    self.objects.remove(&name);
                }
                match fault {
                    Some(false) => status_error(500, "InternalError", "reply lost"),
                    _ => (StatusCode::OK, reply),
                }
            }
            _ => self.unexpected(method, path, query),
        }
    }

    fn unexpected(&mut self, method: &Method, path: &str, query: &str) -> (StatusCode, Value) {
        let described = format!("{method} {path}?{query}");
        self.unexpected.push(described.clone());
        status_error(501, "NotImplemented", &described)
    }
}

/// One operator instance's connection to the world.
#[derive(Clone)]
pub struct SimKube {
    pub world: Arc<Mutex<World>>,
    pub gate: Gate,
    pub who: String,
}

impl tower::Service<Request<Body>> for SimKube {
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Self::Error>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let world = self.world.clone();
        let gate = self.gate.clone();
        let who = self.who.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let what = format!("{} {}", parts.method, parts.uri.path());
            let body = body.collect_bytes().await.unwrap();
            let body: Value = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap() };
            // Before the request reaches the server ...
            gate(who.clone(), format!("send {what}")).await;
            let (status, reply) = world.lock().unwrap().serve(
                &parts.method,
                parts.uri.path(),
                parts.uri.query().unwrap_or_default(),
                body,
                &who,
            );
            // ... and after it took effect, before the answer arrives.
            gate(who, format!("answer {what} {status}")).await;
            Ok(Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                .unwrap())
        })
    }
}
