//! HTTP routing and the semantics of each verb.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State as AxumState};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::State;
use crate::faults::FaultAction;
use crate::patch;
use crate::resources::ResourceType;
use crate::selector::Selector;

pub fn router(state: Arc<State>) -> Router {
    Router::new().fallback(serve).with_state(state)
}

pub fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn new_uid() -> String {
    let n: u128 = rand::random();
    let h = format!("{n:032x}");
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// A failed request, answered as a `Status` object.
#[derive(Debug)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self { code, reason, message: message.into(), details: None }
    }

    fn not_implemented(what: impl Into<String>) -> Self {
        Self::new(501, "NotImplemented", format!("kube-emulator does not implement {}", what.into()))
    }

    fn not_found(rt: &ResourceType, name: &str) -> Self {
        let mut err = Self::new(404, "NotFound", format!("{} \"{name}\" not found", rt.group_resource()));
        err.details = Some(json!({"name": name, "group": rt.group, "kind": rt.plural}));
        err
    }

    fn conflict(rt: &ResourceType, name: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                rt.group_resource()
            ),
        )
    }

    fn injected(code: u16) -> Self {
        match code {
            409 => Self::new(
                409,
                "Conflict",
                "Operation cannot be fulfilled: the object has been modified (injected fault)",
            ),
            429 => Self::new(
                429,
                "TooManyRequests",
                "the server has received too many requests and has asked us to try again later",
            ),
            503 => Self::new(
                503,
                "ServiceUnavailable",
                "the server is currently unable to handle the request (injected fault)",
            ),
            code => Self::new(code, "InternalError", "Internal error occurred: injected fault"),
        }
    }

    fn status_body(&self) -> Value {
        let mut body = json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason, "code": self.code,
        });
        if let Some(details) = &self.details {
            body["details"] = details.clone();
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response =
            (status, [(header::CONTENT_TYPE, "application/json")], self.status_body().to_string()).into_response();
        if self.code == 429 {
            response.headers_mut().insert(header::RETRY_AFTER, "1".parse().unwrap());
        }
        response
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// What a request path names.
struct Route {
    rt: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn route(state: &State, path: &str) -> Result<Route, ApiError> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let unknown = || ApiError::new(404, "NotFound", "the server could not find the requested resource");
    let (group, version, rest) = match parts.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(unknown()),
    };
    let (namespace, rest) = match rest {
        // `/api/v1/namespaces/{name}` is the namespace itself, not a namespaced path.
        ["namespaces", ns, plural, rest @ ..] => (Some(ns.to_string()), {
            let mut v = vec![*plural];
            v.extend_from_slice(rest);
            v
        }),
        rest => (None, rest.to_vec()),
    };
    let (plural, name, subresource) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(name.to_string()), None),
        [plural, name, sub] => (*plural, Some(name.to_string()), Some(sub.to_string())),
        _ => return Err(unknown()),
    };
    let rt = state.resources.read().unwrap().find(group, version, plural).ok_or_else(unknown)?.clone();
    if rt.namespaced && namespace.is_none() && name.is_some() {
        return Err(unknown());
    }
    if !rt.namespaced && namespace.is_some() {
        return Err(unknown());
    }
    match subresource.as_deref() {
        None => {}
        Some("status") if rt.status_subresource => {}
        Some(other) => {
            return Err(ApiError::not_implemented(format!("the {other} subresource of {}", rt.plural)));
        }
    }
    Ok(Route { rt, namespace, name, subresource })
}

fn query_params(query: Option<&str>) -> HashMap<String, String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query parameters that change what the real server does; any other is refused loudly.
const KNOWN_PARAMS: &[&str] = &[
    "watch",
    "resourceVersion",
    "resourceVersionMatch",
    "labelSelector",
    "fieldSelector",
    "limit",
    "continue",
    "timeoutSeconds",
    "allowWatchBookmarks",
    "fieldManager",
    "force",
    "propagationPolicy",
    "gracePeriodSeconds",
    "sendInitialEvents",
    "fieldValidation",
    "pretty",
];

async fn serve(AxumState(state): AxumState<Arc<State>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, 16 << 20).await {
        Ok(body) => body,
        Err(err) => return ApiError::new(400, "BadRequest", err.to_string()).into_response(),
    };
    if parts.uri.path() == "/version" {
        return json_response(
            StatusCode::OK,
            &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-kube-emulator"}),
        );
    }
    let params = query_params(parts.uri.query());
    match handle(&state, &parts.method, parts.uri.path(), &params, &parts.headers, body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn handle(
    state: &Arc<State>,
    method: &Method,
    path: &str,
    params: &HashMap<String, String>,
    headers: &axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let route = route(state, path)?;
    if let Some(unknown) = params.keys().find(|k| !KNOWN_PARAMS.contains(&k.as_str())) {
        return Err(ApiError::not_implemented(format!("the query parameter {unknown}")));
    }
    if params.get("dryRun").is_some() {
        return Err(ApiError::not_implemented("dryRun"));
    }
    let watching = matches!(params.get("watch").map(String::as_str), Some("true" | "1"));
    let verb = match (method, &route.name) {
        (&Method::GET, Some(_)) => "get",
        (&Method::GET, None) if watching => "watch",
        (&Method::GET, None) => "list",
        (&Method::POST, None) => "create",
        (&Method::PUT, Some(_)) => "update",
        (&Method::PATCH, Some(_)) => "patch",
        (&Method::DELETE, Some(_)) => "delete",
        (&Method::DELETE, None) => return Err(ApiError::not_implemented("deletecollection")),
        (method, _) => {
            return Err(ApiError::new(405, "MethodNotAllowed", format!("{method} is not supported here")));
        }
    };
    let resource = match &route.subresource {
        Some(sub) => format!("{}/{sub}", route.rt.plural),
        None => route.rt.plural.clone(),
    };
    match state.faults.take(verb, &resource) {
        Some(FaultAction::Fail(code)) => return Err(ApiError::injected(code)),
        Some(FaultAction::Delay(delay)) => tokio::time::sleep(delay).await,
        None => {}
    }
    let namespace = route.namespace.clone().unwrap_or_default();
    let rt = &route.rt;
    let status_only = route.subresource.is_some();
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    match verb {
        "get" => {
            let store = state.store.lock().unwrap();
            let name = route.name.as_deref().unwrap();
            store
                .get(&rt.plural, &namespace, name)
                .cloned()
                .map(|o| json_response(StatusCode::OK, &o))
                .ok_or_else(|| ApiError::not_found(rt, name))
        }
        "list" => list(state, rt, route.namespace.as_deref(), params).map(|v| json_response(StatusCode::OK, &v)),
        "watch" => watch(state, rt, route.namespace.clone(), params),
        "create" => {
            let object = parse_body(&body)?;
            create(state, rt, &namespace, object).map(|o| json_response(StatusCode::CREATED, &o))
        }
        "update" => {
            let object = parse_body(&body)?;
            let name = route.name.as_deref().unwrap();
            update(state, rt, &namespace, name, object, status_only).map(|o| json_response(StatusCode::OK, &o))
        }
        "patch" => {
            let name = route.name.as_deref().unwrap();
            patch_object(state, rt, &namespace, name, &content_type, &body, params, status_only)
                .map(|o| json_response(StatusCode::OK, &o))
        }
        "delete" => {
            let name = route.name.as_deref().unwrap();
            let options = if body.is_empty() { Value::Null } else { parse_body(&body)? };
            delete(state, rt, &namespace, name, &options).map(|o| json_response(StatusCode::OK, &o))
        }
        _ => unreachable!(),
    }
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .or_else(|_| serde_saphyr::from_slice(body).map_err(|e| e.to_string()))
        .map_err(|e| ApiError::new(400, "BadRequest", format!("the request body could not be decoded: {e}")))
}

fn selector_of(params: &HashMap<String, String>) -> Result<(Selector, Option<(String, String)>), ApiError> {
    let labels = Selector::parse(params.get("labelSelector").map_or("", String::as_str))
        .map_err(|e| ApiError::new(400, "BadRequest", format!("unable to parse labelSelector: {e}")))?;
    let field = match params.get("fieldSelector").map(String::as_str).filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => match text.split_once('=') {
            Some((key @ ("metadata.name" | "metadata.namespace"), value)) => {
                Some((key.to_owned(), value.trim_start_matches('=').to_owned()))
            }
            _ => {
                return Err(ApiError::not_implemented(format!("the field selector {text:?}")));
            }
        },
    };
    Ok((labels, field))
}

fn field_matches(field: &Option<(String, String)>, object: &Value) -> bool {
    match field {
        None => true,
        Some((key, value)) => {
            let actual =
                if key == "metadata.name" { &object["metadata"]["name"] } else { &object["metadata"]["namespace"] };
            actual.as_str() == Some(value)
        }
    }
}

fn list(
    state: &State,
    rt: &ResourceType,
    namespace: Option<&str>,
    params: &HashMap<String, String>,
) -> Result<Value, ApiError> {
    if params.get("resourceVersionMatch").is_some_and(|m| m == "Exact") {
        return Err(ApiError::not_implemented("lists at an exact resourceVersion"));
    }
    let (labels, field) = selector_of(params)?;
    let store = state.store.lock().unwrap();
    let matching: Vec<Value> = store
        .list(&rt.plural, namespace)
        .into_iter()
        .filter(|o| labels.matches(o) && field_matches(&field, o))
        .cloned()
        .collect();
    // Pages: `continue` is "<resourceVersion>:<offset>".
    let offset = match params.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => token
            .split_once(':')
            .and_then(|(_, o)| o.parse::<usize>().ok())
            .ok_or_else(|| ApiError::new(400, "BadRequest", "invalid continue token"))?,
        None => 0,
    };
    let limit = params.get("limit").and_then(|l| l.parse::<usize>().ok()).filter(|l| *l > 0).unwrap_or(usize::MAX);
    let end = offset.saturating_add(limit).min(matching.len());
    let mut metadata = json!({"resourceVersion": store.resource_version().to_string()});
    if end < matching.len() {
        metadata["continue"] = json!(format!("{}:{end}", store.resource_version()));
        metadata["remainingItemCount"] = json!(matching.len() - end);
    }
    Ok(json!({
        "apiVersion": rt.api_version(),
        "kind": format!("{}List", rt.kind),
        "metadata": metadata,
        "items": matching.get(offset.min(matching.len())..end).unwrap_or_default(),
    }))
}

fn watch(
    state: &Arc<State>,
    rt: &ResourceType,
    namespace: Option<String>,
    params: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    if params.get("sendInitialEvents").is_some_and(|v| v == "true") {
        return Err(ApiError::not_implemented("streaming lists (sendInitialEvents=true)"));
    }
    let (labels, field) = selector_of(params)?;
    let timeout = params.get("timeoutSeconds").and_then(|t| t.parse::<u64>().ok()).unwrap_or(1800);
    let bookmarks = params.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let since = params.get("resourceVersion").and_then(|rv| rv.parse::<u64>().ok()).filter(|rv| *rv > 0);
    let visible = {
        let namespace = namespace.clone();
        move |ns: &str, object: &Value| {
            namespace.as_deref().is_none_or(|n| n == ns) && labels.matches(object) && field_matches(&field, object)
        }
    };
    let plural = rt.plural.clone();
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let line = |kind: &str, object: &Value| Ok(Bytes::from(format!("{}\n", json!({"type": kind, "object": object}))));

    let mut expired = false;
    let (initial, mut changes, current) = {
        let store = state.store.lock().unwrap();
        let initial: Vec<Result<Bytes, Infallible>> = match since {
            None => store
                .list(&plural, namespace.as_deref())
                .into_iter()
                .filter(|o| visible(o["metadata"]["namespace"].as_str().unwrap_or(""), o))
                .map(|o| line("ADDED", o))
                .collect(),
            Some(rv) => match store.changes_since(rv) {
                Ok(changes) => changes
                    .iter()
                    .filter(|c| c.plural == plural)
                    .filter_map(|c| translate(c, &visible).map(|(kind, o)| line(kind, o)))
                    .collect(),
                Err(oldest) => {
                    // The real server answers 200, then one ERROR event, then closes.
                    expired = true;
                    let status = ApiError::new(410, "Expired", format!("too old resource version: {rv} ({oldest})"));
                    vec![line("ERROR", &status.status_body())]
                }
            },
        };
        (initial, store.subscribe(), store.resource_version())
    };
    let state = state.clone();
    let api_version = rt.api_version();
    let kind = rt.kind.clone();
    tokio::spawn(async move {
        for event in initial {
            if tx.send(event).await.is_err() {
                return;
            }
        }
        if expired {
            return;
        }
        let mut last = current;
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                change = changes.recv() => match change {
                    Ok(change) => {
                        last = change.resource_version;
                        if change.plural != plural { continue }
                        if let Some((kind, object)) = translate(&change, &visible)
                            && tx.send(line(kind, object)).await.is_err() {
                            return;
                        }
                    }
                    // A watcher too slow to keep up is closed, as the real server does.
                    Err(_) => return,
                },
                _ = state.drop_watches.notified() => return,
                _ = &mut deadline => {
                    if bookmarks {
                        let bookmark = json!({"apiVersion": api_version, "kind": kind, "metadata": {"resourceVersion": last.to_string()}});
                        let _ = tx.send(line("BOOKMARK", &bookmark)).await;
                    }
                    return;
                }
                _ = tx.closed() => return,
            }
        }
    });
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/json")], Body::from_stream(ReceiverStream::new(rx)))
        .into_response())
}

/// How a change looks through a filtered watch: an object that starts matching is ADDED, one
/// that stops matching is DELETED (as kube-apiserver's watch cache reports it).
fn translate<'a>(
    change: &'a crate::store::Change,
    visible: &impl Fn(&str, &Value) -> bool,
) -> Option<(&'static str, &'a Value)> {
    let now = visible(&change.namespace, &change.object);
    let before = change.previous.as_deref().is_some_and(|p| visible(&change.namespace, p));
    match (change.kind, before, now) {
        ("ADDED", _, true) => Some(("ADDED", &change.object)),
        ("DELETED", true, _) => Some(("DELETED", &change.object)),
        ("MODIFIED", true, true) => Some(("MODIFIED", &change.object)),
        ("MODIFIED", false, true) => Some(("ADDED", &change.object)),
        ("MODIFIED", true, false) => Some(("DELETED", &change.object)),
        _ => None,
    }
}

fn check_type(rt: &ResourceType, object: &Value) -> Result<(), ApiError> {
    if object["apiVersion"] != rt.api_version().as_str() || object["kind"] != rt.kind.as_str() {
        return Err(ApiError::new(
            400,
            "BadRequest",
            format!(
                "the API version in the data ({}) does not match the expected API version ({})",
                object["apiVersion"],
                rt.api_version()
            ),
        ));
    }
    Ok(())
}

/// Omits empty metadata collections, as the real server stores them.
fn normalize(object: &mut Value) {
    if let Some(metadata) = object["metadata"].as_object_mut() {
        for key in ["finalizers", "labels", "annotations", "managedFields"] {
            let empty = match metadata.get(key) {
                Some(Value::Array(a)) => a.is_empty(),
                Some(Value::Object(o)) => o.is_empty(),
                Some(Value::Null) => true,
                _ => false,
            };
            if empty {
                metadata.remove(key);
            }
        }
    }
}

fn validate(rt: &ResourceType, object: &mut Value, old: Option<&Value>, name: &str) -> Result<(), ApiError> {
    let Some(schema) = &rt.schema else {
        return Ok(());
    };
    schema.prune(object);
    schema.validate(object, old).map_err(|causes| {
        let mut err = ApiError::new(422, "Invalid", schema.invalid_message(name, &causes));
        err.details = Some(json!({
            "name": name, "group": rt.group, "kind": rt.kind,
            "causes": causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect::<Vec<_>>(),
        }));
        err
    })
}

pub(crate) fn create(state: &State, rt: &ResourceType, namespace: &str, mut object: Value) -> Result<Value, ApiError> {
    check_type(rt, &object)?;
    let mut store = state.store.lock().unwrap();
    if rt.namespaced && store.get("namespaces", "", namespace).is_none() {
        return Err(ApiError::new(404, "NotFound", format!("namespaces \"{namespace}\" not found")));
    }
    let metadata =
        object["metadata"].as_object_mut().ok_or_else(|| ApiError::new(400, "BadRequest", "metadata is required"))?;
    let name =
        match (metadata.get("name").and_then(Value::as_str), metadata.get("generateName").and_then(Value::as_str)) {
            (Some(name), _) if !name.is_empty() => name.to_owned(),
            (_, Some(prefix)) => format!("{prefix}{:05x}", rand::random::<u32>() & 0xfffff),
            _ => {
                return Err(ApiError::new(
                    422,
                    "Invalid",
                    format!(
                        "{} \"\" is invalid: metadata.name: Required value: name or generateName is required",
                        rt.kind
                    ),
                ));
            }
        };
    if let Some(ns) = metadata.get("namespace").and_then(Value::as_str)
        && rt.namespaced
        && ns != namespace
    {
        return Err(ApiError::new(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if store.get(&rt.plural, if rt.namespaced { namespace } else { "" }, &name).is_some() {
        let mut err = ApiError::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", rt.group_resource()));
        err.details = Some(json!({"name": name, "group": rt.group, "kind": rt.plural}));
        return Err(err);
    }
    for system in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "managedFields",
    ] {
        metadata.remove(system);
    }
    metadata.insert("name".into(), json!(name));
    if rt.namespaced {
        metadata.insert("namespace".into(), json!(namespace));
    }
    metadata.insert("uid".into(), json!(new_uid()));
    metadata.insert("creationTimestamp".into(), json!(now()));
    if rt.generation {
        metadata.insert("generation".into(), json!(1));
    }
    if rt.status_subresource {
        object.as_object_mut().unwrap().remove("status");
    }
    normalize(&mut object);
    validate(rt, &mut object, None, &name)?;
    let rv = store.next_resource_version();
    object["metadata"]["resourceVersion"] = json!(rv.to_string());
    store.put(&rt.plural, if rt.namespaced { namespace } else { "" }, &name, object.clone());
    Ok(object)
}

fn stripped(object: &Value, drop: &[&str]) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        for key in drop {
            map.remove(*key);
        }
    }
    copy
}

/// Update semantics shared by PUT and every PATCH: `new` is the whole intended object.
fn commit(
    store: &mut crate::store::Store,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    old: &Value,
    mut new: Value,
    status_only: bool,
) -> Result<Value, ApiError> {
    if new["metadata"]["name"].as_str().is_some_and(|n| n != name) {
        return Err(ApiError::new(400, "BadRequest", "the name of the object does not match the name on the URL"));
    }
    if let Some(rv) = new["metadata"]["resourceVersion"].as_str().filter(|rv| !rv.is_empty())
        && Some(rv) != old["metadata"]["resourceVersion"].as_str()
    {
        return Err(ApiError::conflict(rt, name));
    }
    if status_only {
        // The status subresource changes status only.
        let status = new.get("status").cloned();
        let managed = new["metadata"].get("managedFields").cloned();
        new = old.clone();
        match status {
            Some(status) if !status.is_null() => new["status"] = status,
            _ => {
                new.as_object_mut().unwrap().remove("status");
            }
        }
        if let Some(managed) = managed {
            new["metadata"]["managedFields"] = managed;
        }
    } else {
        if rt.status_subresource {
            match old.get("status") {
                Some(status) => new["status"] = status.clone(),
                None => {
                    new.as_object_mut().map(|m| m.remove("status"));
                }
            }
        }
        let metadata =
            new["metadata"].as_object_mut().ok_or_else(|| ApiError::new(400, "BadRequest", "metadata is required"))?;
        for system in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "name",
        ] {
            match old["metadata"].get(system) {
                Some(value) => metadata.insert(system.into(), value.clone()),
                None => metadata.remove(system),
            };
        }
        if !metadata.contains_key("managedFields")
            && let Some(managed) = old["metadata"].get("managedFields")
        {
            metadata.insert("managedFields".into(), managed.clone());
        }
    }
    let deleting = old["metadata"].get("deletionTimestamp").is_some();
    let finalizers = |o: &Value| -> Vec<String> {
        o["metadata"]["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(str::to_owned))
            .collect()
    };
    let added: Vec<String> = finalizers(&new).into_iter().filter(|f| !finalizers(old).contains(f)).collect();
    if deleting && !added.is_empty() {
        return Err(ApiError::new(
            422,
            "Invalid",
            format!(
                "{} \"{name}\" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers {added:?}",
                rt.kind
            ),
        ));
    }
    if rt.generation {
        let content = |o: &Value| stripped(o, &["metadata", "status"]);
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
        new["metadata"]["generation"] = json!(if content(&new) != content(old) { generation + 1 } else { generation });
    }
    normalize(&mut new);
    validate(rt, &mut new, Some(old), name)?;
    let without_rv = |o: &Value| {
        let mut copy = o.clone();
        copy["metadata"].as_object_mut().map(|m| m.remove("resourceVersion"));
        copy
    };
    if without_rv(&new) == without_rv(old) {
        // A no-op write changes nothing: no new resourceVersion, no watch event.
        return Ok(old.clone());
    }
    let rv = store.next_resource_version();
    new["metadata"]["resourceVersion"] = json!(rv.to_string());
    let key_ns = if rt.namespaced { namespace } else { "" };
    if deleting && finalizers(&new).is_empty() {
        store.remove(&rt.plural, key_ns, name, new.clone());
    } else {
        store.put(&rt.plural, key_ns, name, new.clone());
    }
    Ok(new)
}

fn stored(store: &crate::store::Store, rt: &ResourceType, namespace: &str, name: &str) -> Result<Value, ApiError> {
    store
        .get(&rt.plural, if rt.namespaced { namespace } else { "" }, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(rt, name))
}

fn update(
    state: &State,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    object: Value,
    status_only: bool,
) -> Result<Value, ApiError> {
    check_type(rt, &object)?;
    let mut store = state.store.lock().unwrap();
    let old = stored(&store, rt, namespace, name)?;
    commit(&mut store, rt, namespace, name, &old, object, status_only)
}

#[allow(clippy::too_many_arguments)]
fn patch_object(
    state: &State,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    content_type: &str,
    body: &Bytes,
    params: &HashMap<String, String>,
    status_only: bool,
) -> Result<Value, ApiError> {
    let patch = parse_body(body)?;
    let mut store = state.store.lock().unwrap();
    let old = stored(&store, rt, namespace, name)?;
    let media = content_type.split(';').next().unwrap_or("").trim();
    let new = match media {
        "application/merge-patch+json" => {
            let mut new = old.clone();
            patch::merge(&mut new, &patch);
            new
        }
        "application/json-patch+json" => {
            patch::json_patch(&old, &patch).map_err(|e| ApiError::new(422, "Invalid", e))?
        }
        "application/apply-patch+yaml" => {
            if !status_only {
                return Err(ApiError::not_implemented("server-side apply outside the status subresource"));
            }
            check_type(rt, &patch)?;
            let manager = params
                .get("fieldManager")
                .filter(|m| !m.is_empty())
                .ok_or_else(|| ApiError::new(400, "BadRequest", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"))?;
            let force = params.get("force").is_some_and(|f| f == "true");
            patch::apply_status(&old, &patch, manager, force, &now()).map_err(|e| ApiError::new(409, "Conflict", e))?
        }
        "application/strategic-merge-patch+json" if rt.schema.is_some() => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            ));
        }
        other => {
            return Err(ApiError::not_implemented(format!("patches of type {other:?} on {}", rt.plural)));
        }
    };
    commit(&mut store, rt, namespace, name, &old, new, status_only)
}

fn delete(state: &State, rt: &ResourceType, namespace: &str, name: &str, options: &Value) -> Result<Value, ApiError> {
    if rt.plural == "namespaces" {
        return Err(ApiError::not_implemented("namespace deletion (it would cascade to every object in it)"));
    }
    let mut store = state.store.lock().unwrap();
    let old = stored(&store, rt, namespace, name)?;
    let preconditions = &options["preconditions"];
    if preconditions["uid"].as_str().is_some_and(|uid| Some(uid) != old["metadata"]["uid"].as_str())
        || preconditions["resourceVersion"]
            .as_str()
            .is_some_and(|rv| Some(rv) != old["metadata"]["resourceVersion"].as_str())
    {
        return Err(ApiError::conflict(rt, name));
    }
    let key_ns = if rt.namespaced { namespace } else { "" };
    let has_finalizers = old["metadata"]["finalizers"].as_array().is_some_and(|f| !f.is_empty());
    if !has_finalizers {
        let mut last = old.clone();
        last["metadata"]["resourceVersion"] = json!(store.next_resource_version().to_string());
        store.remove(&rt.plural, key_ns, name, last.clone());
        return Ok(last);
    }
    if old["metadata"].get("deletionTimestamp").is_some() {
        return Ok(old);
    }
    // Deletion starts: kube-apiserver sets deletionTimestamp and a zero grace period, and bumps
    // generation (controllers must notice the change of intent).
    let mut new = old.clone();
    new["metadata"]["deletionTimestamp"] = json!(now());
    new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
    if let Some(generation) = old["metadata"]["generation"].as_i64() {
        new["metadata"]["generation"] = json!(generation + 1);
    }
    new["metadata"]["resourceVersion"] = json!(store.next_resource_version().to_string());
    store.put(&rt.plural, key_ns, name, new.clone());
    Ok(new)
}
