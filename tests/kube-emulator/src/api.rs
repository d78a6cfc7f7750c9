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
use crate::decode;
use crate::discovery;
use crate::faults::FaultAction;
use crate::patch;
use crate::resources::{ResourceType, Resources, View};
use crate::schema::Cause;
use crate::selector::Selector;
use crate::table;
use crate::validation::{self, Bad, MetaFlavour, NameRule, go_quote};

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

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    fn not_found(rt: &ResourceType, name: &str) -> Self {
        let mut err = Self::new(404, "NotFound", format!("{} {} not found", rt.group_resource(), go_quote(name)));
        err.details = Some(details(name, &rt.group, &rt.plural, &[]));
        err
    }

    /// 422 Invalid, as `errors.NewInvalid` builds it: the message lists each distinct error
    /// once; the causes keep every one.
    fn invalid(rt: &ResourceType, name: &str, causes: &[Cause]) -> Self {
        let mut err = Self::new(422, "Invalid", validation::invalid_message(&rt.qualified_kind(), name, causes));
        err.details = Some(details(name, rt.invalid_group(), &rt.kind, causes));
        err
    }

    fn conflict(rt: &ResourceType, name: &str) -> Self {
        let mut err = Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} {}: the object has been modified; please apply your changes to the latest version and try again",
                rt.group_resource(),
                go_quote(name)
            ),
        );
        err.details = Some(details(name, &rt.group, &rt.plural, &[]));
        err
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
        if self.reason.is_empty() {
            // An error that is not a Status (ErrorToAPIStatus): no reason.
            body.as_object_mut().unwrap().remove("reason");
        }
        if let Some(details) = &self.details {
            body["details"] = details.clone();
        }
        body
    }
}

/// `StatusDetails`, with Go's `omitempty`.
fn details(name: &str, group: &str, kind: &str, causes: &[Cause]) -> Value {
    let mut details = serde_json::Map::new();
    for (key, value) in [("name", name), ("group", group), ("kind", kind)] {
        if !value.is_empty() {
            details.insert(key.into(), json!(value));
        }
    }
    if !causes.is_empty() {
        let causes: Vec<Value> = causes
            .iter()
            .map(|c| {
                let mut cause = serde_json::Map::new();
                cause.insert("reason".into(), json!(c.reason));
                cause.insert("message".into(), json!(c.message));
                if !c.field.is_empty() {
                    cause.insert("field".into(), json!(c.field));
                }
                Value::Object(cause)
            })
            .collect();
        details.insert("causes".into(), Value::Array(causes));
    }
    Value::Object(details)
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
    let found = state.resources.read().unwrap().find(group, version, plural).cloned();
    let rt = match found {
        Some(rt) => rt,
        // A built-in resource the emulator lacks exists on the real server: say so.
        None if Resources::is_builtin_group(group) => {
            return Err(ApiError::not_implemented(match (group, namespace.as_deref(), &name) {
                ("", Some(_), None) if matches!(plural, "status" | "finalize") => {
                    format!("the {plural} subresource of namespaces")
                }
                ("", _, _) => format!("the resource {plural} in {version}"),
                _ => format!("the resource {plural} in {group}/{version}"),
            }));
        }
        None => return Err(unknown()),
    };
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
    "includeObject",
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
            // The release whose validation and wording the emulator follows.
            &json!({"major": "1", "minor": "36", "gitVersion": "v1.36.0-kube-emulator"}),
        );
    }
    let params = query_params(parts.uri.query());
    if let Some(response) = serve_discovery(&state, &parts.method, parts.uri.path(), &parts.headers) {
        return response;
    }
    match handle(&state, &parts.method, parts.uri.path(), &params, &parts.headers, body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

/// Discovery and OpenAPI documents; `None` for resource paths.
fn serve_discovery(state: &State, method: &Method, path: &str, headers: &axum::http::HeaderMap) -> Option<Response> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let is_document = matches!(parts.as_slice(), ["api"] | ["api", _] | ["apis"] | ["apis", _] | ["apis", _, _])
        || parts.first() == Some(&"openapi");
    if !is_document {
        return None;
    }
    if method != Method::GET {
        return Some(ApiError::new(405, "MethodNotAllowed", format!("{method} is not supported here")).into_response());
    }
    let resources = state.resources.read().unwrap();
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let not_found =
        || ApiError::new(404, "NotFound", "the server could not find the requested resource").into_response();
    let response = match parts.as_slice() {
        [root @ ("api" | "apis")] => match discovery::wanted(accept) {
            discovery::Wanted::Aggregated => (
                StatusCode::OK,
                [(header::CONTENT_TYPE, discovery::AGGREGATED_V2), (header::VARY, "Accept")],
                discovery::aggregated(&resources, *root == "api").to_string(),
            )
                .into_response(),
            discovery::Wanted::Legacy if *root == "api" => {
                let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1");
                json_response(StatusCode::OK, &discovery::api_versions(host))
            }
            discovery::Wanted::Legacy => json_response(StatusCode::OK, &discovery::api_group_list(&resources)),
            discovery::Wanted::Unsupported(accept) => ApiError::new(
                406,
                "NotAcceptable",
                format!(
                    "only the following media types are accepted: application/json, {} (asked for {accept})",
                    discovery::AGGREGATED_V2
                ),
            )
            .into_response(),
        },
        ["api", version] => discovery::api_resource_list(&resources, "", version)
            .map_or_else(not_found, |d| json_response(StatusCode::OK, &d)),
        ["apis", group] => {
            discovery::api_group_of(&resources, group).map_or_else(not_found, |d| json_response(StatusCode::OK, &d))
        }
        ["apis", group, version] => discovery::api_resource_list(&resources, group, version)
            .map_or_else(not_found, |d| json_response(StatusCode::OK, &d)),
        ["openapi", "v3"] => json_response(StatusCode::OK, &discovery::openapi_index(&resources)),
        ["openapi", "v3", "apis", group, version] => discovery::openapi_document(&resources, group, version)
            .map_or_else(not_found, |doc| json_response(StatusCode::OK, &doc)),
        ["openapi", "v3", "api", version] => discovery::openapi_document(&resources, "", version)
            .map_or_else(not_found, |doc| json_response(StatusCode::OK, &doc)),
        ["openapi", "v2"] => {
            ApiError::not_implemented("OpenAPI v2 (/openapi/v2); OpenAPI v3 is served for custom resources")
                .into_response()
        }
        _ => not_found(),
    };
    Some(response)
}

/// What the client's `Accept` asks a read to return: a `meta.k8s.io/v1` Table, or the object.
fn wants_table(headers: &axum::http::HeaderMap) -> Result<bool, ApiError> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.trim().is_empty() {
        return Ok(false);
    }
    for (media, params) in discovery::media_types(accept) {
        let get = |k: &str| params.get(k).map(String::as_str);
        match (media.as_str(), get("as")) {
            ("application/json", Some("Table")) if get("g") == Some("meta.k8s.io") && get("v") == Some("v1") => {
                return Ok(true);
            }
            ("application/json" | "*/*" | "application/*", None) => return Ok(false),
            _ => {}
        }
    }
    Err(ApiError::new(
        406,
        "NotAcceptable",
        format!("kube-emulator serves only application/json and meta.k8s.io/v1 Tables (asked for {accept})"),
    ))
}

/// A stored object as the resource serves it.
fn present(rt: &ResourceType, object: &Value) -> Value {
    match rt.view {
        View::Stored => object.clone(),
        View::CoreEvent => table::core_event(object),
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
    if rt.view == View::CoreEvent && !matches!(verb, "get" | "list" | "watch") {
        return Err(ApiError::not_implemented(
            "writes of core v1 Events (they are served read-only, converted from events.k8s.io/v1 Events)",
        ));
    }
    let as_table = if matches!(verb, "get" | "list" | "watch") { wants_table(headers)? } else { false };
    let include = params.get("includeObject").map_or("Metadata", String::as_str).to_owned();
    if !matches!(include.as_str(), "Metadata" | "Object" | "None") {
        return Err(ApiError::bad_request(format!("includeObject: Unsupported value: {include:?}")));
    }
    let status_only = route.subresource.is_some();
    let validation = field_validation(params)?;
    let mut warnings = Vec::new();
    // Who writes, for managedFields: `fieldManager`, else the User-Agent up to its first "/"
    // (`prefixFromUserAgent`).
    let manager = params.get("fieldManager").filter(|m| !m.is_empty()).cloned().unwrap_or_else(|| {
        let agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
        agent.split('/').next().unwrap_or("").to_owned()
    });
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    match verb {
        "get" => {
            let store = state.store.lock().unwrap();
            let name = route.name.as_deref().unwrap();
            let object = store
                .get(&rt.plural, &namespace, name)
                .map(|o| present(rt, o))
                .ok_or_else(|| ApiError::not_found(rt, name))?;
            if as_table {
                let meta = json!({"resourceVersion": object["metadata"]["resourceVersion"]});
                return Ok(json_response(StatusCode::OK, &table::table(rt, &[object], meta, &include, false)));
            }
            Ok(json_response(StatusCode::OK, &object))
        }
        "list" => {
            let mut listed = list(state, rt, route.namespace.as_deref(), params)?;
            if as_table {
                let items = listed["items"].as_array().cloned().unwrap_or_default();
                listed = table::table(rt, &items, listed["metadata"].take(), &include, false);
            }
            Ok(json_response(StatusCode::OK, &listed))
        }
        "watch" => watch(state, rt, route.namespace.clone(), params, as_table.then_some(include)),
        "create" => {
            let object = parse_body(&body)?;
            create_checked(state, rt, &namespace, object, validation, &mut warnings, &manager)
                .map(|o| with_warnings(json_response(StatusCode::CREATED, &o), &warnings))
        }
        "update" => {
            let object = parse_body(&body)?;
            let name = route.name.as_deref().unwrap();
            update(state, rt, &namespace, name, object, status_only, validation, &mut warnings, &manager)
                .map(|(code, o)| with_warnings(json_response(code, &o), &warnings))
        }
        "patch" => {
            let name = route.name.as_deref().unwrap();
            patch_object(
                state,
                rt,
                &namespace,
                name,
                &content_type,
                &body,
                params,
                status_only,
                validation,
                &mut warnings,
                &manager,
            )
            .map(|(code, o)| with_warnings(json_response(code, &o), &warnings))
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

/// A field selector: `key=value`, `key==value` or `key!=value` terms, comma-separated, over the
/// fields the real server indexes for the kind.
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    fn parse(rt: &ResourceType, text: &str) -> Result<Self, ApiError> {
        let mut terms = Vec::new();
        for term in text.split(',').filter(|t| !t.is_empty()) {
            let (key, equal, value) = if let Some((k, v)) = term.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = term.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = term.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiError::not_implemented(format!("the field selector {text:?}")));
            };
            let core_event = rt.view == View::CoreEvent;
            let supported = matches!(key, "metadata.name" | "metadata.namespace")
                || (core_event
                    && matches!(
                        key,
                        "reason"
                            | "type"
                            | "reportingComponent"
                            | "source"
                            | "involvedObject.kind"
                            | "involvedObject.namespace"
                            | "involvedObject.name"
                            | "involvedObject.uid"
                            | "involvedObject.apiVersion"
                            | "involvedObject.resourceVersion"
                            | "involvedObject.fieldPath"
                    ))
                || (!core_event
                    && rt.builtin == Some(crate::builtin::Builtin::Event)
                    && matches!(
                        key,
                        "reason"
                            | "type"
                            | "reportingController"
                            | "regarding.kind"
                            | "regarding.namespace"
                            | "regarding.name"
                            | "regarding.uid"
                            | "regarding.apiVersion"
                            | "regarding.resourceVersion"
                            | "regarding.fieldPath"
                    ));
            if !supported {
                return Err(ApiError::not_implemented(format!("the field selector {text:?}")));
            }
            // The core API's `source` selects on the source's component.
            let key = if core_event && key == "source" { "source.component" } else { key };
            terms.push((key.to_owned(), equal, value.to_owned()));
        }
        Ok(Self(terms))
    }

    fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(key, equal, value)| {
            let actual = key.split('.').fold(object, |o, k| &o[k]).as_str().unwrap_or("");
            (actual == value) == *equal
        })
    }
}

fn selector_of(rt: &ResourceType, params: &HashMap<String, String>) -> Result<(Selector, FieldSelector), ApiError> {
    let labels = Selector::parse(params.get("labelSelector").map_or("", String::as_str))
        .map_err(|e| ApiError::new(400, "BadRequest", format!("unable to parse labelSelector: {e}")))?;
    let field = FieldSelector::parse(rt, params.get("fieldSelector").map_or("", String::as_str))?;
    Ok((labels, field))
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
    let (labels, field) = selector_of(rt, params)?;
    // Pages: `continue` is "<resourceVersion>:<offset>".
    let offset = match params.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => token
            .split_once(':')
            .and_then(|(_, o)| o.parse::<usize>().ok())
            .ok_or_else(|| ApiError::new(400, "BadRequest", "invalid continue token"))?,
        None => 0,
    };
    let limit = params.get("limit").and_then(|l| l.parse::<usize>().ok()).filter(|l| *l > 0).unwrap_or(usize::MAX);
    let store = state.store.lock().unwrap();
    let stored = store.list(&rt.plural, namespace);
    let selects_all =
        [params.get("labelSelector"), params.get("fieldSelector")].iter().all(|s| s.is_none_or(|s| s.is_empty()));
    // Without selectors only the page is presented (a paged list of a large store would
    // otherwise copy every object for every page).
    let (total, items): (usize, Vec<Value>) = if selects_all {
        let end = offset.saturating_add(limit).min(stored.len());
        let page = stored.get(offset.min(stored.len())..end).unwrap_or_default();
        (stored.len(), page.iter().map(|o| present(rt, o)).collect())
    } else {
        let matching: Vec<Value> =
            stored.into_iter().map(|o| present(rt, o)).filter(|o| labels.matches(o) && field.matches(o)).collect();
        let end = offset.saturating_add(limit).min(matching.len());
        (matching.len(), matching.get(offset.min(matching.len())..end).unwrap_or_default().to_vec())
    };
    let end = offset.min(total) + items.len();
    let mut metadata = json!({"resourceVersion": store.resource_version().to_string()});
    if end < total {
        metadata["continue"] = json!(format!("{}:{end}", store.resource_version()));
        metadata["remainingItemCount"] = json!(total - end);
    }
    Ok(json!({
        "apiVersion": rt.api_version(),
        "kind": format!("{}List", rt.kind),
        "metadata": metadata,
        "items": items,
    }))
}

/// A watch; with `table` (the `includeObject` setting), each event's object is a Table of one
/// row, and only the first carries the column definitions, as kube-apiserver sends them.
fn watch(
    state: &Arc<State>,
    rt: &ResourceType,
    namespace: Option<String>,
    params: &HashMap<String, String>,
    table: Option<String>,
) -> Result<Response, ApiError> {
    if params.get("sendInitialEvents").is_some_and(|v| v == "true") {
        return Err(ApiError::not_implemented("streaming lists (sendInitialEvents=true)"));
    }
    let (labels, field) = selector_of(rt, params)?;
    let timeout = params.get("timeoutSeconds").and_then(|t| t.parse::<u64>().ok()).unwrap_or(1800);
    let bookmarks = params.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let since = params.get("resourceVersion").and_then(|rv| rv.parse::<u64>().ok()).filter(|rv| *rv > 0);
    let view = rt.clone();
    let visible = {
        let namespace = namespace.clone();
        let view = view.clone();
        move |ns: &str, object: &Value| {
            let object = present(&view, object);
            namespace.as_deref().is_none_or(|n| n == ns) && labels.matches(&object) && field.matches(&object)
        }
    };
    let plural = rt.plural.clone();
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let headers_sent = std::sync::atomic::AtomicBool::new(false);
    let line = move |kind: &str, object: &Value| {
        let object = match (kind, &table) {
            ("ERROR", _) => object.clone(),
            ("BOOKMARK", None) => object.clone(),
            ("BOOKMARK", Some(include)) => {
                let meta = json!({"resourceVersion": object["metadata"]["resourceVersion"]});
                let no_headers = headers_sent.swap(true, std::sync::atomic::Ordering::Relaxed);
                table::table(&view, &[], meta, include, no_headers)
            }
            (_, None) => present(&view, object),
            (_, Some(include)) => {
                let object = present(&view, object);
                let meta = json!({"resourceVersion": object["metadata"]["resourceVersion"]});
                let no_headers = headers_sent.swap(true, std::sync::atomic::Ordering::Relaxed);
                table::table(&view, &[object], meta, include, no_headers)
            }
        };
        Ok(Bytes::from(format!("{}\n", json!({"type": kind, "object": object}))))
    };

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
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({}) does not match the expected API version ({})",
            object["apiVersion"],
            rt.api_version()
        )));
    }
    Ok(())
}

/// Decodes a body as the real server's JSON decoder does: built-in kinds into their Go structs,
/// custom resources' metadata into `ObjectMeta`. Unknown fields of built-in kinds are dropped.
fn decode_object(rt: &ResourceType, object: &mut Value) -> Result<(), String> {
    match rt.builtin {
        Some(builtin) => decode::decode_object(object, builtin.shape()).map_err(|e| e.0),
        None => match object.get_mut("metadata") {
            // schemaobjectmeta.Coerce: `metadata: Invalid value: <metadata>: <error>`.
            Some(metadata) => {
                let original = metadata.clone();
                decode::decode_metadata(metadata)
                    .map_err(|e| format!("metadata: Invalid value: {}: {}", validation::go_json(&original), e.0))
            }
            None => Ok(()),
        },
    }
}

/// A request body that does not decode is a 400, as `transformDecodeError` words it.
fn decode_body(rt: &ResourceType, object: &mut Value) -> Result<(), ApiError> {
    decode_object(rt, object).map_err(|e| cannot_be_handled(rt, &e))
}

/// A patch whose result does not decode is a 422 naming the patched object, as the patch
/// handler words it (`errors.NewInvalid(schema.GroupKind{}, "", ...)`: no kind, no name). The
/// object's JSON here has this emulator's field order, not Go's.
fn decode_patched(rt: &ResourceType, object: &mut Value) -> Result<(), ApiError> {
    let rendered = object.to_string();
    decode_object(rt, object).map_err(|e| {
        let causes = [Cause::invalid("patch", Bad::Str(&rendered), &e)];
        let mut err = ApiError::new(422, "Invalid", validation::invalid_message("", "", &causes));
        err.details = Some(details("", "", "", &causes));
        err
    })
}

fn unsupported_fields(rt: &ResourceType, object: &Value) -> Result<(), ApiError> {
    match rt.builtin.and_then(|b| b.unsupported(object)) {
        Some(what) => Err(ApiError::not_implemented(what)),
        None => Ok(()),
    }
}

/// Omits empty metadata collections, as the real server stores them.
fn normalize(object: &mut Value) {
    if let Some(metadata) = object["metadata"].as_object_mut() {
        for key in ["finalizers", "labels", "annotations", "managedFields", "ownerReferences"] {
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

/// The schema of a custom resource: pruning, then OpenAPI and CEL validation.
fn schema_causes(rt: &ResourceType, object: &mut Value, old: Option<&Value>) -> Vec<Cause> {
    let Some(schema) = &rt.schema else {
        return Vec::new();
    };
    schema.prune(object);
    schema.validate(object, old).err().unwrap_or_default()
}

/// Create validation: the kind's strategy (metadata included) then, for custom resources, the
/// schema; all errors in one 422.
fn validate_create(rt: &ResourceType, object: &mut Value, name: &str) -> Result<(), ApiError> {
    let mut causes = match rt.builtin {
        Some(builtin) => builtin.validate_create(object),
        None => validation::object_meta_create(object, NameRule::DnsSubdomain, MetaFlavour::Apimachinery),
    };
    causes.extend(schema_causes(rt, object, None));
    if causes.is_empty() { Ok(()) } else { Err(ApiError::invalid(rt, name, &causes)) }
}

/// Update validation; `causes` holds what was found before system fields were restored.
fn validate_update(
    rt: &ResourceType,
    new: &mut Value,
    old: &Value,
    name: &str,
    mut causes: Vec<Cause>,
) -> Result<(), ApiError> {
    causes.extend(match rt.builtin {
        Some(builtin) => builtin.validate_update(new, old),
        None => validation::object_meta_update(new, old, MetaFlavour::Apimachinery),
    });
    causes.extend(schema_causes(rt, new, Some(old)));
    if causes.is_empty() { Ok(()) } else { Err(ApiError::invalid(rt, name, &causes)) }
}

/// `fieldValidation`: what to do with fields the schema does not declare.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum FieldValidation {
    Ignore,
    /// The default: the request succeeds with a `Warning` header per dropped field.
    Warn,
    Strict,
}

fn field_validation(params: &HashMap<String, String>) -> Result<FieldValidation, ApiError> {
    match params.get("fieldValidation").map(String::as_str) {
        None | Some("" | "Warn") => Ok(FieldValidation::Warn),
        Some("Ignore") => Ok(FieldValidation::Ignore),
        Some("Strict") => Ok(FieldValidation::Strict),
        Some(other) => Err(ApiError::bad_request(format!(
            "fieldValidation: Unsupported value: {}: supported values: \"Ignore\", \"Strict\", \"Warn\"",
            go_quote(other)
        ))),
    }
}

/// Fields of a custom resource that pruning would drop: refused (`Strict`, through `refuse`
/// with the `strict decoding error: ...` text), warned about (`Warn`), or ignored.
fn check_unknown(
    rt: &ResourceType,
    object: &Value,
    validation: FieldValidation,
    warnings: &mut Vec<String>,
    refuse: impl FnOnce(String) -> ApiError,
) -> Result<(), ApiError> {
    let unknown = match (&rt.schema, rt.builtin) {
        (_, Some(builtin)) => decode::unknown_fields(object, builtin.shape()),
        (Some(schema), None) => {
            let mut unknown = decode::unknown_metadata_fields(&object["metadata"]);
            unknown.extend(schema.unknown_fields(object));
            unknown
        }
        (None, None) => Vec::new(),
    };
    let errors: Vec<String> = unknown.iter().map(|p| format!("unknown field {}", go_quote(p))).collect();
    if errors.is_empty() {
        return Ok(());
    }
    match validation {
        FieldValidation::Ignore => Ok(()),
        FieldValidation::Warn => {
            warnings.extend(errors);
            Ok(())
        }
        FieldValidation::Strict => Err(refuse(format!("strict decoding error: {}", errors.join(", ")))),
    }
}

/// A request body that cannot be decoded, as `transformDecodeError` words it.
fn cannot_be_handled(rt: &ResourceType, error: &str) -> ApiError {
    ApiError::bad_request(format!(
        "{} in version {} cannot be handled as a {}: {error}",
        rt.kind,
        go_quote(&rt.version),
        rt.kind
    ))
}

/// Adds `Warning: 299 - "<text>"` headers, as the real server sends them.
fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let quoted = warning.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(value) = format!("299 - \"{quoted}\"").parse() {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    response
}

pub(crate) fn create(state: &State, rt: &ResourceType, namespace: &str, object: Value) -> Result<Value, ApiError> {
    create_checked(state, rt, namespace, object, FieldValidation::Warn, &mut Vec::new(), "")
}

fn create_checked(
    state: &State,
    rt: &ResourceType,
    namespace: &str,
    mut object: Value,
    validation: FieldValidation,
    warnings: &mut Vec<String>,
    manager: &str,
) -> Result<Value, ApiError> {
    check_type(rt, &object)?;
    // Unknown fields are found before decoding drops them; a decoding error comes first.
    let sent = object.clone();
    decode_body(rt, &mut object)?;
    unsupported_fields(rt, &object)?;
    check_unknown(rt, &sent, validation, warnings, |e| cannot_be_handled(rt, &e))?;
    let mut store = state.store.lock().unwrap();
    store_new(&mut store, rt, namespace, object, Written::By(manager))
}

/// The create path after decoding: namespace, name generation, system fields, the strategy's
/// preparation, validation, then the store (409 if the name is taken).
fn store_new(
    store: &mut crate::store::Store,
    rt: &ResourceType,
    namespace: &str,
    mut object: Value,
    written: Written<'_>,
) -> Result<Value, ApiError> {
    if rt.namespaced && store.get("namespaces", "", namespace).is_none() {
        return Err(ApiError::new(404, "NotFound", format!("namespaces {} not found", go_quote(namespace))));
    }
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    let metadata = object["metadata"].as_object_mut().unwrap();
    match metadata.get("namespace").and_then(Value::as_str).filter(|ns| !ns.is_empty()) {
        Some(ns) if rt.namespaced && ns != namespace => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        _ => {}
    }
    let generate_name = metadata.get("generateName").and_then(Value::as_str).unwrap_or("").to_owned();
    let name = match metadata.get("name").and_then(Value::as_str).unwrap_or("") {
        "" if !generate_name.is_empty() => validation::generate_name(&generate_name),
        name => name.to_owned(),
    };
    for system in [
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "managedFields",
        "selfLink",
        "namespace",
    ] {
        metadata.remove(system);
    }
    if !name.is_empty() {
        metadata.insert("name".into(), json!(name));
    }
    if rt.namespaced {
        metadata.insert("namespace".into(), json!(namespace));
    }
    metadata.insert("uid".into(), json!(new_uid()));
    metadata.insert("creationTimestamp".into(), json!(now()));
    if let Written::Applied(managed) = &written
        && !managed.is_null()
    {
        metadata.insert("managedFields".into(), managed.clone());
    }
    if rt.generation {
        metadata.insert("generation".into(), json!(1));
    }
    if rt.status_subresource {
        object.as_object_mut().unwrap().remove("status");
    }
    if let Some(builtin) = rt.builtin {
        builtin.prepare_for_create(&mut object, &name);
    }
    normalize(&mut object);
    validate_create(rt, &mut object, &name)?;
    if let Written::By(manager) = written {
        patch::record_update(None, &mut object, manager, false, &now());
    }
    let key_ns = if rt.namespaced { namespace } else { "" };
    if store.get(&rt.plural, key_ns, &name).is_some() {
        let mut err =
            ApiError::new(409, "AlreadyExists", format!("{} {} already exists", rt.group_resource(), go_quote(&name)));
        err.details = Some(details(&name, &rt.group, &rt.plural, &[]));
        return Err(err);
    }
    let rv = store.next_resource_version();
    object["metadata"]["resourceVersion"] = json!(rv.to_string());
    store.put(&rt.plural, key_ns, &name, object.clone());
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

/// How a write is recorded in `managedFields`.
enum Written<'a> {
    /// An Update (create, PUT, merge/JSON/strategic patch) by this manager.
    By(&'a str),
    /// A server-side apply, whose entries are already computed.
    Applied(Value),
}

/// Update semantics shared by PUT and every PATCH: `new` is the whole intended object.
#[allow(clippy::too_many_arguments)]
fn commit(
    store: &mut crate::store::Store,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    old: &Value,
    mut new: Value,
    status_only: bool,
    written: Written<'_>,
) -> Result<Value, ApiError> {
    // checkName.
    let new_name = new["metadata"]["name"].as_str().unwrap_or("");
    if new_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({new_name}) does not match the name on the URL ({name})"
        )));
    }
    if rt.namespaced
        && let Some(ns) = new["metadata"]["namespace"].as_str().filter(|ns| !ns.is_empty() && *ns != namespace)
    {
        return Err(ApiError::bad_request(format!(
            "the namespace of the object ({ns}) does not match the namespace on the request ({namespace})"
        )));
    }
    // A resourceVersion in the body (PUT, or kept or set by a patch) is a precondition.
    match new["metadata"]["resourceVersion"].as_str().filter(|rv| !rv.is_empty()) {
        Some(rv) if Some(rv) != old["metadata"]["resourceVersion"].as_str() => {
            return Err(ApiError::conflict(rt, name));
        }
        Some(_) => {}
        None if rt.allow_unconditional_update() => {}
        None => {
            // The generic store's words; its "kind" is the resource.
            let causes = [Cause::invalid("metadata.resourceVersion", Bad::Int(0), "must be specified for an update")];
            let mut err =
                ApiError::new(422, "Invalid", validation::invalid_message(&rt.group_resource(), name, &causes));
            err.details = Some(details(name, &rt.group, &rt.plural, &causes));
            return Err(err);
        }
    }
    let mut early_causes = Vec::new();
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
        early_causes = validation::immutable_system_fields(&new, old);
        if rt.status_subresource {
            match old.get("status") {
                Some(status) => new["status"] = status.clone(),
                None => {
                    new.as_object_mut().map(|m| m.remove("status"));
                }
            }
        }
        let metadata = new["metadata"].as_object_mut().ok_or_else(|| ApiError::bad_request("metadata is required"))?;
        for system in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
            "namespace",
            "name",
            "selfLink",
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
        if let Some(builtin) = rt.builtin {
            builtin.prepare_for_update(&mut new, old, name);
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
    if rt.generation {
        let content = |o: &Value| stripped(o, &["metadata", "status"]);
        let generation = old["metadata"]["generation"].as_i64().unwrap_or(1);
        new["metadata"]["generation"] = json!(if content(&new) != content(old) { generation + 1 } else { generation });
    }
    normalize(&mut new);
    validate_update(rt, &mut new, old, name, early_causes)?;
    if let Written::By(manager) = written {
        patch::record_update(Some(old), &mut new, manager, status_only, &now());
    }
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

/// PUT: an update, or a create for kinds whose strategy allows it (201 then).
#[allow(clippy::too_many_arguments)]
fn update(
    state: &State,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    mut object: Value,
    status_only: bool,
    validation: FieldValidation,
    warnings: &mut Vec<String>,
    manager: &str,
) -> Result<(StatusCode, Value), ApiError> {
    check_type(rt, &object)?;
    // Unknown fields are found before decoding drops them; a decoding error comes first.
    let sent = object.clone();
    decode_body(rt, &mut object)?;
    unsupported_fields(rt, &object)?;
    check_unknown(rt, &sent, validation, warnings, |e| cannot_be_handled(rt, &e))?;
    let mut store = state.store.lock().unwrap();
    let old = match stored(&store, rt, namespace, name) {
        Ok(old) => old,
        Err(_) if rt.allow_create_on_update() && !status_only => {
            let object_name = object["metadata"]["name"].as_str().unwrap_or("");
            if object_name != name {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({object_name}) does not match the name on the URL ({name})"
                )));
            }
            if let Some(metadata) = object["metadata"].as_object_mut() {
                metadata.remove("resourceVersion");
            }
            return store_new(&mut store, rt, namespace, object, Written::By(manager))
                .map(|o| (StatusCode::CREATED, o));
        }
        Err(err) => return Err(err),
    };
    commit(&mut store, rt, namespace, name, &old, object, status_only, Written::By(manager))
        .map(|o| (StatusCode::OK, o))
}

/// Keys of a strategic merge patch that a JSON merge patch would apply differently: directives
/// (`$patch`, `$retainKeys`, `$setElementOrder/...`, `$deleteFromPrimitiveList/...`) and the
/// metadata lists whose patch strategy is "merge".
fn strategic_only(patch: &Value) -> Option<String> {
    fn directive(value: &Value, path: &str) -> Option<String> {
        match value {
            Value::Object(map) => map.iter().find_map(|(k, v)| {
                if k.starts_with('$') { Some(format!("{path}{k}")) } else { directive(v, &format!("{path}{k}.")) }
            }),
            Value::Array(items) => items.iter().find_map(|v| directive(v, path)),
            _ => None,
        }
    }
    if let Some(found) = directive(patch, "") {
        return Some(format!("the strategic merge patch directive {found}"));
    }
    ["finalizers", "ownerReferences"]
        .into_iter()
        .find(|k| patch["metadata"].get(*k).is_some())
        .map(|k| format!("strategic merge patches of metadata.{k} (merged by key on the real server)"))
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
    validation: FieldValidation,
    warnings: &mut Vec<String>,
    manager: &str,
) -> Result<(StatusCode, Value), ApiError> {
    let patch = parse_body(body)?;
    let media = content_type.split(';').next().unwrap_or("").trim();
    let force = params.get("force").is_some_and(|f| f == "true");
    if force && media != "application/apply-patch+yaml" {
        let causes = [Cause::forbidden("force", "may not be specified for non-apply patch")];
        let mut err =
            ApiError::new(422, "Invalid", validation::invalid_message("PatchOptions.meta.k8s.io", "", &causes));
        err.details = Some(details("", "meta.k8s.io", "PatchOptions", &causes));
        return Err(err);
    }
    let apply_manager = || {
        params.get("fieldManager").filter(|m| !m.is_empty()).ok_or_else(|| {
            ApiError::bad_request(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
            )
        })
    };
    let mut store = state.store.lock().unwrap();
    // Server-side apply of the whole object: custom resources, Leases and Events (whose fields
    // are scalars and structs, owned leaf by leaf).
    let main_apply = media == "application/apply-patch+yaml"
        && !status_only
        && rt.view == View::Stored
        && matches!(rt.builtin, None | Some(crate::builtin::Builtin::Lease | crate::builtin::Builtin::Event));
    if media == "application/apply-patch+yaml" && (main_apply || status_only) {
        // structured-merge-diff refuses fields the schema lacks, whatever fieldValidation
        // says, with an error that is not a Status: a 500 on kube-apiserver up to 1.36
        // (kubernetes/kubernetes#139253).
        let unknown = match (&rt.schema, rt.builtin) {
            (_, Some(builtin)) => decode::unknown_fields(&patch, builtin.shape()),
            (Some(schema), None) => schema.unknown_fields(&patch),
            (None, None) => Vec::new(),
        };
        if !unknown.is_empty() {
            let errors: Vec<String> = unknown.iter().map(|p| format!(".{p}: field not declared in schema")).collect();
            let text =
                if let [one] = errors.as_slice() { one.clone() } else { format!("errors:\n  {}", errors.join("\n  ")) };
            let key = if rt.namespaced { format!("{namespace}/{name}") } else { format!("/{name}") };
            return Err(ApiError::new(
                500,
                "",
                format!("failed to create typed patch object ({key}; {}, Kind={}): {text}", rt.api_version(), rt.kind),
            ));
        }
    }
    if main_apply {
        check_type(rt, &patch)?;
        let manager = apply_manager()?;
        if let Some(body_name) = patch["metadata"]["name"].as_str().filter(|n| *n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if stored(&store, rt, namespace, name).is_err() {
            // Apply creates what does not exist yet.
            let skeleton = json!({"apiVersion": rt.api_version(), "kind": rt.kind, "metadata": {"name": name}});
            let mut created = patch::apply_main(&skeleton, &patch, manager, force, &now()).map_err(apply_conflict)?;
            let managed = created["metadata"]["managedFields"].take();
            decode_body(rt, &mut created)?;
            return store_new(&mut store, rt, namespace, created, Written::Applied(managed))
                .map(|o| (StatusCode::CREATED, o));
        }
    }
    if media == "application/apply-patch+yaml" && !status_only && !main_apply {
        return Err(ApiError::not_implemented(format!("server-side apply of {}", rt.group_resource())));
    }
    let old = stored(&store, rt, namespace, name)?;
    let mut new = match media {
        "application/merge-patch+json" => {
            let mut new = old.clone();
            patch::merge(&mut new, &patch);
            new
        }
        // Built-in kinds accept strategic merge patches; for the fields of Events, Leases and
        // Namespaces (scalars and plain objects) they apply as a JSON merge patch does.
        "application/strategic-merge-patch+json" if rt.builtin.is_some() => {
            if let Some(what) = strategic_only(&patch) {
                return Err(ApiError::not_implemented(what));
            }
            let mut new = old.clone();
            patch::merge(&mut new, &patch);
            new
        }
        "application/json-patch+json" => {
            patch::json_patch(&old, &patch).map_err(|e| ApiError::new(422, "Invalid", e))?
        }
        "application/apply-patch+yaml" => {
            check_type(rt, &patch)?;
            let manager = apply_manager()?;
            let mut new = if status_only {
                patch::apply_status(&old, &patch, manager, force, &now()).map_err(apply_conflict)?
            } else {
                match patch::apply_main(&old, &patch, manager, force, &now()) {
                    Err(conflicts) if patch::upgrades_client_side_apply(&old, manager, &conflicts) => {
                        patch::apply_main(&old, &patch, manager, true, &now())
                    }
                    applied => applied,
                }
                .map_err(apply_conflict)?
            };
            // A resourceVersion in the applied configuration is a precondition.
            if let Some(rv) = patch["metadata"]["resourceVersion"].as_str().filter(|rv| !rv.is_empty()) {
                new["metadata"]["resourceVersion"] = json!(rv);
            }
            new
        }
        "application/strategic-merge-patch+json" => {
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
    let patched = new.clone();
    decode_patched(rt, &mut new)?;
    unsupported_fields(rt, &new)?;
    if media != "application/apply-patch+yaml" {
        let rendered = patched.to_string();
        check_unknown(rt, &patched, validation, warnings, |e| {
            let causes = [Cause::invalid("patch", Bad::Str(&rendered), &e)];
            let mut err = ApiError::new(422, "Invalid", validation::invalid_message("", "", &causes));
            err.details = Some(details("", "", "", &causes));
            err
        })?;
    }
    let written =
        if media == "application/apply-patch+yaml" { Written::Applied(Value::Null) } else { Written::By(manager) };
    commit(&mut store, rt, namespace, name, &old, new, status_only, written).map(|o| (StatusCode::OK, o))
}

/// 409 for fields other managers own, as `internal.NewConflictError` builds it.
fn apply_conflict(conflicts: Vec<patch::Conflict>) -> ApiError {
    let mut err = ApiError::new(409, "Conflict", patch::conflict_message(&conflicts));
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", c.manager), "field": c.path}))
        .collect();
    err.details = Some(json!({"causes": causes}));
    err
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
