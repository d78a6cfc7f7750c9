//! `meta.k8s.io/v1` Table responses, as `kubectl get` asks for them
//! (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`): a CRD's `additionalPrinterColumns`
//! (apiextensions-apiserver's `tableconvertor`), and the built-in kinds' printers
//! (`pkg/printers/internalversion`: Namespace, Lease, Event). The server always prints the wide
//! columns; `kubectl` hides those of priority above 0 unless `-o wide`.

use std::sync::LazyLock;

use serde_json::{Value, json};

use crate::builtin::Builtin;
use crate::resources::{ResourceType, View};

/// One of a CRD version's `additionalPrinterColumns`.
#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub path: JsonPath,
}

/// The subset of kubectl's JSONPath that printer columns use: `.field`, `['field']`, `[n]`,
/// `[*]` and `[?(@.a.b=="x")]` (also `!=`). Anything else is refused when the CRD is loaded.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonPath(Vec<Step>);

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    Index(usize),
    All,
    Filter { path: Vec<String>, equal: bool, value: String },
}

impl JsonPath {
    pub fn parse(text: &str) -> Result<Self, String> {
        let unsupported = || format!("kube-emulator does not implement the JSONPath {text:?} of a printer column");
        let mut steps = Vec::new();
        let mut rest = text.trim();
        rest = rest.strip_prefix('{').and_then(|r| r.strip_suffix('}')).unwrap_or(rest);
        rest = rest.strip_prefix('$').unwrap_or(rest);
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                if end == 0 {
                    return Err(unsupported());
                }
                steps.push(Step::Field(after[..end].to_owned()));
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix("[?(") {
                let end = after.find(")]").ok_or_else(unsupported)?;
                let condition = &after[..end];
                let (left, equal, right) = if let Some((l, r)) = condition.split_once("!=") {
                    (l, false, r)
                } else if let Some((l, r)) = condition.split_once("==") {
                    (l, true, r)
                } else {
                    return Err(unsupported());
                };
                let path = left.trim().strip_prefix("@.").ok_or_else(unsupported)?;
                let value = right.trim();
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                    .ok_or_else(unsupported)?;
                steps.push(Step::Filter {
                    path: path.split('.').map(str::to_owned).collect(),
                    equal,
                    value: value.to_owned(),
                });
                rest = &after[end + 2..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = after.find(']').ok_or_else(unsupported)?;
                let inner = after[..end].trim();
                steps.push(if inner == "*" {
                    Step::All
                } else if let Ok(n) = inner.parse() {
                    Step::Index(n)
                } else if let Some(key) = inner
                    .strip_prefix('\'')
                    .and_then(|k| k.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|k| k.strip_suffix('"')))
                {
                    Step::Field(key.to_owned())
                } else {
                    return Err(unsupported());
                });
                rest = &after[end + 1..];
            } else {
                return Err(unsupported());
            }
        }
        Ok(Self(steps))
    }

    /// Every value the path reaches (missing keys give none, as with `AllowMissingKeys`).
    pub fn find<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        let mut current = vec![root];
        for step in &self.0 {
            let mut next = Vec::new();
            for value in current {
                match step {
                    Step::Field(name) => next.extend(value.get(name.as_str())),
                    Step::Index(n) => next.extend(value.get(*n)),
                    Step::All => match value {
                        Value::Array(items) => next.extend(items),
                        Value::Object(map) => next.extend(map.values()),
                        _ => {}
                    },
                    Step::Filter { path, equal, value: wanted } => {
                        let items: Vec<&Value> = match value {
                            Value::Array(items) => items.iter().collect(),
                            Value::Object(map) => map.values().collect(),
                            _ => Vec::new(),
                        };
                        for item in items {
                            let actual = path.iter().try_fold(item, |v, k| v.get(k.as_str()));
                            let matched = actual.is_some_and(|a| text_of(a) == *wanted);
                            if matched == *equal && (actual.is_some() || !*equal) {
                                next.push(item);
                            }
                        }
                    }
                }
            }
            current = next;
        }
        current
    }
}

/// How JSONPath prints a value: strings bare, other scalars as Go prints them, objects as JSON.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

static META: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(include_str!("openapi_k8s.json")).expect("openapi_k8s.json parses"));

/// The description of an `ObjectMeta` field, as the real server's column definitions carry it.
fn meta_doc(field: &str) -> String {
    META["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"][field]["description"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

fn column(name: &str, format: &str, description: &str, priority: i64) -> Value {
    json!({"name": name, "type": "string", "format": format, "description": description, "priority": priority})
}

fn column_definitions(rt: &ResourceType) -> Vec<Value> {
    let name = column("Name", "name", &meta_doc("name"), 0);
    let age = column("Age", "", &meta_doc("creationTimestamp"), 0);
    match rt.builtin {
        None => std::iter::once(name)
            .chain(rt.columns.iter().map(|c| {
                json!({"name": c.name, "type": c.type_, "format": c.format, "description": c.description, "priority": c.priority})
            }))
            .collect(),
        Some(Builtin::Namespace) => vec![
            name,
            column(
                "Status",
                "",
                "Phase is the current lifecycle phase of the namespace. More info: https://kubernetes.io/docs/tasks/administer-cluster/namespaces/",
                0,
            ),
            age,
        ],
        Some(Builtin::Lease) => vec![
            name,
            column(
                "Holder",
                "",
                "holderIdentity contains the identity of the holder of a current lease. If Coordinated Leader Election is used, the holder identity must be equal to the elected LeaseCandidate.metadata.name field.",
                0,
            ),
            age,
        ],
        Some(Builtin::Event) => vec![
            column("Last Seen", "", "The time at which the most recent occurrence of this event was recorded.", 0),
            column("Type", "", "Type of this event (Normal, Warning), new types could be added in the future", 0),
            column(
                "Reason",
                "",
                "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
                0,
            ),
            column("Object", "", "The object that this event is about.", 0),
            column(
                "Subobject",
                "",
                "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.",
                1,
            ),
            column("Source", "", "The component reporting this event. Should be a short machine understandable string.", 1),
            column("Message", "", "A human-readable description of the status of this operation.", 0),
            column(
                "First Seen",
                "",
                "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
                1,
            ),
            column("Count", "", "The number of times this event has occurred.", 1),
            column("Name", "name", &meta_doc("name"), 1),
        ],
    }
}

/// `duration.HumanDuration`: how `kubectl` shows ages.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 { format!("{}y", hours / 24 / 365) } else { format!("{}y{days}d", hours / 24 / 365) };
    }
    format!("{}y", hours / 24 / 365)
}

/// `translateTimestampSince`: `<unknown>` for a zero time.
fn since(timestamp: &Value) -> String {
    match timestamp.as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok()) {
        Some(t) => human_duration(jiff::Timestamp::now().duration_since(t).as_secs()),
        None => "<unknown>".into(),
    }
}

/// `cellForJSONValue` of the CRD table convertor.
fn typed_cell(type_: &str, value: &Value) -> Value {
    match (type_, value) {
        ("integer", Value::Number(n)) => {
            n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).map_or(Value::Null, |i| json!(i))
        }
        ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, |f| json!(f)),
        ("boolean", Value::Bool(b)) => json!(b),
        ("string", Value::String(s)) => json!(s),
        ("date", Value::String(s)) => match s.parse::<jiff::Timestamp>() {
            Ok(_) => json!(since(value)),
            Err(_) => json!("<invalid>"),
        },
        _ => Value::Null,
    }
}

/// The cells of one row. `object` is as served through `rt` (core Events already converted).
fn cells(rt: &ResourceType, object: &Value) -> Vec<Value> {
    let name = object["metadata"]["name"].clone();
    let created = since(&object["metadata"]["creationTimestamp"]);
    match rt.builtin {
        None => std::iter::once(name)
            .chain(rt.columns.iter().map(|c| match c.path.find(object).first() {
                None => Value::Null,
                Some(value) if c.type_ == "string" => json!(text_of(value)),
                Some(value) => typed_cell(&c.type_, value),
            }))
            .collect(),
        Some(Builtin::Namespace) => vec![name, object["status"]["phase"].clone(), json!(created)],
        Some(Builtin::Lease) => {
            vec![name, json!(object["spec"]["holderIdentity"].as_str().unwrap_or("")), json!(created)]
        }
        Some(Builtin::Event) => {
            let event = match rt.view {
                View::CoreEvent => object.clone(),
                View::Stored => core_event(object),
            };
            event_cells(&event)
        }
    }
}

/// `printEvent`, on the core (internal) shape of an Event.
fn event_cells(event: &Value) -> Vec<Value> {
    let first =
        if event["firstTimestamp"].is_string() { since(&event["firstTimestamp"]) } else { since(&event["eventTime"]) };
    let mut last = if event["lastTimestamp"].is_string() { since(&event["lastTimestamp"]) } else { first.clone() };
    let mut count = event["count"].as_i64().unwrap_or(0);
    if event["series"].is_object() {
        last = since(&event["series"]["lastObservedTime"]);
        count = event["series"]["count"].as_i64().unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let involved = &event["involvedObject"];
    let kind = involved["kind"].as_str().unwrap_or("").to_lowercase();
    let target = match involved["name"].as_str().filter(|n| !n.is_empty()) {
        Some(name) => format!("{kind}/{name}"),
        None => kind,
    };
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    // formatEventSource: the component (or reporting controller), then the host or instance.
    let (component, host) = match text(&event["source"]["component"]) {
        c if c.is_empty() => (text(&event["reportingComponent"]), text(&event["reportingInstance"])),
        c => (c, text(&event["source"]["host"])),
    };
    let source = if host.is_empty() { component } else { format!("{component}, {host}") };
    vec![
        json!(last),
        event["type"].clone(),
        event["reason"].clone(),
        json!(target),
        json!(text(&event["involvedObject"]["fieldPath"])),
        json!(source),
        json!(text(&event["message"]).trim()),
        json!(first),
        json!(count),
        event["metadata"]["name"].clone(),
    ]
}

/// What a row carries as its object (`includeObject`: Metadata by default, Object, None).
fn row_object(object: &Value, include: &str) -> Value {
    match include {
        "None" => Value::Null,
        "Object" => object.clone(),
        _ => json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object["metadata"]}),
    }
}

/// A Table of `objects` (already converted for the resource's view); `list_meta` is the list's
/// metadata (resourceVersion, continue, remainingItemCount), or the single object's version.
pub fn table(rt: &ResourceType, objects: &[Value], list_meta: Value, include: &str, no_headers: bool) -> Value {
    let rows: Vec<Value> =
        objects.iter().map(|o| json!({"cells": cells(rt, o), "object": row_object(o, include)})).collect();
    let mut table = json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "rows": rows});
    if !no_headers {
        table["columnDefinitions"] = Value::Array(column_definitions(rt));
    }
    table
}

/// An `events.k8s.io/v1` Event as the core `v1` API serves it (the conversion through the
/// internal type): `regarding` is `involvedObject`, `note` is `message`, `reportingController`
/// is `reportingComponent`, and the `deprecated*` fields lose their prefix.
pub fn core_event(event: &Value) -> Value {
    let mut core = serde_json::Map::new();
    core.insert("kind".into(), json!("Event"));
    core.insert("apiVersion".into(), json!("v1"));
    core.insert("metadata".into(), event["metadata"].clone());
    core.insert("involvedObject".into(), event.get("regarding").cloned().unwrap_or_else(|| json!({})));
    for (from, to) in [("reason", "reason"), ("note", "message")] {
        if let Some(value) = event.get(from).filter(|v| v.as_str().is_some_and(|s| !s.is_empty())) {
            core.insert(to.into(), value.clone());
        }
    }
    core.insert("source".into(), event.get("deprecatedSource").cloned().unwrap_or_else(|| json!({})));
    core.insert("firstTimestamp".into(), event.get("deprecatedFirstTimestamp").cloned().unwrap_or(Value::Null));
    core.insert("lastTimestamp".into(), event.get("deprecatedLastTimestamp").cloned().unwrap_or(Value::Null));
    if let Some(count) = event.get("deprecatedCount").filter(|c| c.as_i64().is_some_and(|c| c != 0)) {
        core.insert("count".into(), count.clone());
    }
    if let Some(kind) = event.get("type").filter(|v| v.as_str().is_some_and(|s| !s.is_empty())) {
        core.insert("type".into(), kind.clone());
    }
    core.insert("eventTime".into(), event.get("eventTime").cloned().unwrap_or(Value::Null));
    for (from, to) in [("series", "series"), ("action", "action"), ("related", "related")] {
        if let Some(value) = event.get(from).filter(|v| !v.is_null() && v.as_str() != Some("")) {
            core.insert(to.into(), value.clone());
        }
    }
    core.insert("reportingComponent".into(), json!(event["reportingController"].as_str().unwrap_or("")));
    core.insert("reportingInstance".into(), json!(event["reportingInstance"].as_str().unwrap_or("")));
    Value::Object(core)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_column_paths_find_what_kubectl_would() {
        let object = json!({"status": {"conditions": [
            {"type": "Reconciling", "status": "False"},
            {"type": "Ready", "status": "True", "reason": "Synced"},
        ]}, "spec": {"a.b": 1}});
        let ready = JsonPath::parse(r#".status.conditions[?(@.type=="Ready")].status"#).unwrap();
        assert_eq!(ready.find(&object), [&json!("True")]);
        assert_eq!(JsonPath::parse(".status.conditions[0].type").unwrap().find(&object), [&json!("Reconciling")]);
        assert_eq!(JsonPath::parse("{.spec['a.b']}").unwrap().find(&object), [&json!(1)]);
        assert!(JsonPath::parse(".missing.field").unwrap().find(&object).is_empty());
        assert!(JsonPath::parse(".status.conditions[?(@.type ~ 'x')]").is_err());
        assert!(JsonPath::parse(".a[1:2]").is_err());
    }

    #[test]
    fn ages_read_as_kubectl_prints_them() {
        for (seconds, text) in [
            (5, "5s"),
            (119, "119s"),
            (150, "2m30s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (9 * 3600, "9h"),
            (3 * 86400, "3d"),
        ] {
            assert_eq!(human_duration(seconds), text);
        }
    }

    #[test]
    fn events_convert_to_the_core_shape() {
        let event = json!({
            "metadata": {"name": "e", "namespace": "default"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "example.com/op", "reportingInstance": "pod-1",
            "action": "Reconcile", "reason": "Created", "type": "Normal", "note": "made it",
            "regarding": {"kind": "Widget", "name": "w", "namespace": "default"},
            "deprecatedSource": {}, "deprecatedFirstTimestamp": null, "deprecatedLastTimestamp": null,
        });
        let core = core_event(&event);
        assert_eq!(core["involvedObject"]["name"], "w");
        assert_eq!(core["message"], "made it");
        assert_eq!(core["reportingComponent"], "example.com/op");
        assert_eq!(core["apiVersion"], "v1");
        assert!(core.get("note").is_none() && core.get("regarding").is_none());
    }
}
