//! A small stateful Kubernetes API for reconcile tests, on tower-test's mock service: it holds
//! one IntegrationResponse, applies the requests the reconciler makes (finalizer JSON patches,
//! status server-side apply, Events) as kube-apiserver would, logs each request, and answers
//! anything else with an error that fails the test.

use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use integration_response_operator::crd::IntegrationResponse;
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

const OBJECTS: &str = "/apis/apigatewayv2.aws.operator.rs/v1alpha1/namespaces/default/integrationresponses/";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

#[derive(Default)]
pub struct KubeState {
    /// The object as stored; `None` once deleted.
    pub object: Option<Value>,
    /// Other objects in the namespace, by name, which tests may add; only read.
    pub others: std::collections::BTreeMap<String, Value>,
    /// Objects of other controllers (ACK, Crossplane) by API path, for spec.integrationRef;
    /// any other path under their groups is 404, as for a missing object.
    pub referenced: std::collections::BTreeMap<String, Value>,
    /// Fixed answers (status code, body) to GETs of these paths, whatever else is stored.
    pub answers: std::collections::BTreeMap<String, (u16, Value)>,
    pub events: Vec<Value>,
    /// "PATCH finalizers", "APPLY status", "POST event", ...
    pub requests: Vec<String>,
    /// Requests nothing here knows how to answer.
    pub unexpected: Vec<String>,
    /// Let this many status writes pass, then fail `fail_status_writes` of them with HTTP 500.
    pub pass_status_writes: usize,
    pub fail_status_writes: usize,
    resource_version: u64,
}

#[derive(Clone)]
pub struct FakeKube {
    pub state: Arc<Mutex<KubeState>>,
    client: Client,
}

impl FakeKube {
    pub fn start(object: &IntegrationResponse) -> Self {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let state = Arc::new(Mutex::new(KubeState {
            object: Some(serde_json::to_value(object).unwrap()),
            resource_version: 1,
            ..Default::default()
        }));
        let served = state.clone();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let body = body.collect_bytes().await.unwrap();
                let body: Value = if body.is_empty() { Value::Null } else { serde_json::from_slice(&body).unwrap() };
                let (status, reply) = served.lock().unwrap().serve(&parts, body);
                let response = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap();
                send.send_response(response);
            }
        });
        Self { state, client: Client::new(service, "default") }
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The object as the controller's store would hand it to reconcile.
    pub fn object(&self) -> Option<IntegrationResponse> {
        self.state.lock().unwrap().object.clone().map(|o| serde_json::from_value(o).unwrap())
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }

    pub fn event_reasons(&self) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state.events.iter().map(|e| e["reason"].as_str().unwrap_or_default().to_owned()).collect()
    }

    pub fn events(&self) -> Vec<Value> {
        self.state.lock().unwrap().events.clone()
    }

    pub fn event_notes(&self) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state.events.iter().map(|e| e["note"].as_str().unwrap_or_default().to_owned()).collect()
    }

    pub fn unexpected(&self) -> Vec<String> {
        self.state.lock().unwrap().unexpected.clone()
    }

    /// A user edits the spec: generation goes up, as the API server does for spec changes.
    pub fn edit_spec(&self, edit: impl FnOnce(&mut Value)) {
        let mut state = self.state.lock().unwrap();
        let object = state.object.as_mut().expect("object exists");
        edit(&mut object["spec"]);
        let generation = object["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
        object["metadata"]["generation"] = json!(generation);
        state.bump();
    }

    /// Stores (or with `None` removes) another controller's object at its API path.
    pub fn put_referenced(&self, path: &str, object: Option<Value>) {
        let mut state = self.state.lock().unwrap();
        match object {
            Some(object) => state.referenced.insert(path.to_owned(), object),
            None => state.referenced.remove(path),
        };
    }

    /// Answers every GET of `path` with `code` and `body` (a Status for errors).
    pub fn answer(&self, path: &str, code: u16, body: Value) {
        self.state.lock().unwrap().answers.insert(path.to_owned(), (code, body));
    }

    pub fn set_annotation(&self, key: &str, value: &str) {
        let mut state = self.state.lock().unwrap();
        let object = state.object.as_mut().expect("object exists");
        object["metadata"]["annotations"] = json!({ key: value });
        state.bump();
    }

    /// `kubectl delete`: with finalizers present the object stays, marked for deletion.
    pub fn request_deletion(&self) {
        let mut state = self.state.lock().unwrap();
        let object = state.object.as_mut().expect("object exists");
        object["metadata"]["deletionTimestamp"] = json!("2026-11-25T00:00:00Z");
        state.bump();
    }
}

impl KubeState {
    fn bump(&mut self) {
        self.resource_version += 1;
        if let Some(object) = self.object.as_mut() {
            object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        }
    }

    fn serve(&mut self, parts: &http::request::Parts, body: Value) -> (StatusCode, Value) {
        let path = parts.uri.path();
        let query = parts.uri.query().unwrap_or_default();
        let content_type = parts.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        if parts.method == Method::GET
            && let Some((code, body)) = self.answers.get(path)
        {
            self.requests.push(format!("GET {path}"));
            return (StatusCode::from_u16(*code).unwrap(), body.clone());
        }
        match (&parts.method, path) {
            (&Method::POST, EVENTS) => {
                self.requests.push("POST event".into());
                self.events.push(body.clone());
                (StatusCode::CREATED, body)
            }
            (&Method::PATCH, p) if p.starts_with(EVENTS) => {
                // A repeated Event: client-go style, its series is updated with a merge patch.
                assert_eq!(content_type, "application/merge-patch+json", "event series are merge patches");
                self.requests.push("PATCH event".into());
                let name = p.trim_start_matches(EVENTS).trim_start_matches('/');
                match self.events.iter_mut().find(|e| e["metadata"]["name"] == name) {
                    Some(event) => {
                        json_patch::merge(event, &body);
                        (StatusCode::OK, event.clone())
                    }
                    None => status_error(404, "NotFound", "no such event"),
                }
            }
            (&Method::GET, p) if p.starts_with(OBJECTS) && !p.ends_with("/status") => {
                self.requests.push("GET object".into());
                let name = p.trim_start_matches(OBJECTS);
                let ours = self.object.as_ref().filter(|o| o["metadata"]["name"] == name);
                match ours.or(self.others.get(name)) {
                    Some(object) => (StatusCode::OK, object.clone()),
                    None => status_error(404, "NotFound", "gone"),
                }
            }
            (&Method::PATCH, p) if p.starts_with(OBJECTS) && p.ends_with("/status") => {
                assert_eq!(
                    content_type, "application/apply-patch+yaml",
                    "status must be written with server-side apply"
                );
                assert!(query.contains("fieldManager=integration-response-operator"), "field manager: {query}");
                assert!(query.contains("force=true"), "status apply must force: {query}");
                assert!(body.get("spec").is_none(), "the operator never writes spec");
                self.requests.push("APPLY status".into());
                // kube-apiserver takes metadata.resourceVersion in an apply body as a precondition.
                let current = self.object.as_ref().map(|o| o["metadata"]["resourceVersion"].clone());
                if let Some(expected) = body["metadata"]["resourceVersion"].as_str()
                    && current.as_ref().and_then(Value::as_str) != Some(expected)
                {
                    return status_error(409, "Conflict", "the object has been modified");
                }
                if self.pass_status_writes > 0 {
                    self.pass_status_writes -= 1;
                } else if self.fail_status_writes > 0 {
                    self.fail_status_writes -= 1;
                    return status_error(500, "InternalError", "injected failure");
                }
                let Some(object) = self.object.as_mut() else {
                    return status_error(404, "NotFound", "gone");
                };
                // One field manager owns all of status, so an apply replaces it whole.
                object["status"] = body["status"].clone();
                self.bump();
                (StatusCode::OK, self.object.clone().unwrap())
            }
            (&Method::PATCH, p) if p.starts_with(OBJECTS) => {
                assert_eq!(content_type, "application/json-patch+json", "unexpected patch type on the object");
                self.requests.push("PATCH finalizers".into());
                let Some(object) = self.object.as_mut() else {
                    return status_error(404, "NotFound", "gone");
                };
                let (patched, deleting, after) = match json_patch_metadata(object, body) {
                    Ok(done) => done,
                    Err(refused) => return refused,
                };
                *object = patched;
                self.bump();
                let reply = self.object.clone().unwrap();
                if deleting && after == 0 {
                    self.object = None;
                }
                (StatusCode::OK, reply)
            }
            (&Method::GET, p)
                if [
                    "apigatewayv2.services.k8s.aws",
                    "apigatewayv2.aws.upbound.io",
                    "apigatewayv2.aws.m.upbound.io",
                ]
                .iter()
                .any(|group| p.starts_with(&format!("/apis/{group}/"))) =>
            {
                self.requests.push(format!("GET {p}"));
                match self.referenced.get(p) {
                    Some(object) => (StatusCode::OK, object.clone()),
                    None => status_error(404, "NotFound", "not found"),
                }
            }
            _ => {
                let described = format!("{} {}?{}", parts.method, path, query);
                self.unexpected.push(described.clone());
                status_error(501, "NotImplemented", &described)
            }
        }
    }
}

/// A JSON patch of an object's metadata (finalizers), as kube-apiserver applies it: returns the
/// patched object, whether it is being deleted, and how many finalizers it has left.
pub fn json_patch_metadata(object: &Value, body: Value) -> Result<(Value, bool, usize), (StatusCode, Value)> {
    let before = object["metadata"]["finalizers"].as_array().map_or(0, Vec::len);
    let patch: json_patch::Patch = serde_json::from_value(body).unwrap();
    // kube-apiserver's JSON patch (evanphx/json-patch) treats `test` against null as passing
    // when the path is absent; the json-patch crate does not, so such tests are checked here and
    // left out.
    let mut ops = Vec::new();
    for op in patch.0 {
        match &op {
            json_patch::PatchOperation::Test(test) if test.value.is_null() => {
                if !object.pointer(test.path.as_str()).is_none_or(Value::is_null) {
                    return Err(status_error(422, "Invalid", "test operation failed"));
                }
            }
            _ => ops.push(op),
        }
    }
    let mut patched = object.clone();
    if let Err(err) = json_patch::patch(&mut patched, &ops) {
        return Err(status_error(422, "Invalid", &err.to_string()));
    }
    // Empty lists are omitted from metadata, as the real server stores them.
    if patched["metadata"]["finalizers"].as_array().is_some_and(Vec::is_empty) {
        patched["metadata"].as_object_mut().unwrap().remove("finalizers");
    }
    let after = patched["metadata"]["finalizers"].as_array().map_or(0, Vec::len);
    let deleting = patched["metadata"].get("deletionTimestamp").is_some();
    if deleting && after > before {
        return Err(status_error(422, "Forbidden", "no new finalizers can be added if the object is being deleted"));
    }
    Ok((patched, deleting, after))
}

pub fn status_error(code: u16, reason: &str, message: &str) -> (StatusCode, Value) {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message, "code": code});
    (StatusCode::from_u16(code).unwrap(), body)
}
