//! The built-in kinds the emulator stores (Namespace, `events.k8s.io/v1` Event,
//! `coordination.k8s.io/v1` Lease): their Go shapes, what their registry strategies do on
//! create and update, and their validation, following kube-apiserver's source:
//! `pkg/apis/core/validation/events.go` (`ValidateEventCreate`, `ValidateEventUpdate`,
//! `legacyValidateEvent`), `pkg/apis/coordination/validation` (`ValidateLease`) and
//! `pkg/apis/core/validation` (`ValidateNamespace`), with `pkg/registry/...` strategies.
//!
//! Events are validated on the internal `core.Event` after conversion, so errors name the
//! internal fields: `involvedObject` (regarding), `message` (note), `count`, `firstTimestamp`,
//! `lastTimestamp`, `source` (the deprecated* fields).

use serde_json::{Value, json};

use crate::decode::{OBJECT_META, Struct, Ty};
use crate::schema::Cause;
use crate::validation::{self, Bad, MetaFlavour, NameRule, go_json, go_quote, is_qualified_name};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Builtin {
    Namespace,
    Event,
    Lease,
}

static OBJECT_REFERENCE: Struct = Struct {
    go_type: "v1.ObjectReference",
    fields: &[
        ("kind", Ty::Str("string")),
        ("namespace", Ty::Str("string")),
        ("name", Ty::Str("string")),
        ("uid", Ty::Str("types.UID")),
        ("apiVersion", Ty::Str("string")),
        ("resourceVersion", Ty::Str("string")),
        ("fieldPath", Ty::Str("string")),
    ],
};

static EVENT_SERIES: Struct =
    Struct { go_type: "v1.EventSeries", fields: &[("count", Ty::Int32), ("lastObservedTime", Ty::MicroTime)] };

static EVENT_SOURCE: Struct =
    Struct { go_type: "v1.EventSource", fields: &[("component", Ty::Str("string")), ("host", Ty::Str("string"))] };

static EVENT: Struct = Struct {
    go_type: "v1.Event",
    fields: &[
        ("metadata", Ty::Struct(&OBJECT_META)),
        ("eventTime", Ty::MicroTime),
        ("series", Ty::Struct(&EVENT_SERIES)),
        ("reportingController", Ty::Str("string")),
        ("reportingInstance", Ty::Str("string")),
        ("action", Ty::Str("string")),
        ("reason", Ty::Str("string")),
        ("regarding", Ty::Struct(&OBJECT_REFERENCE)),
        ("related", Ty::Struct(&OBJECT_REFERENCE)),
        ("note", Ty::Str("string")),
        ("type", Ty::Str("string")),
        ("deprecatedSource", Ty::Struct(&EVENT_SOURCE)),
        ("deprecatedFirstTimestamp", Ty::Time),
        ("deprecatedLastTimestamp", Ty::Time),
        ("deprecatedCount", Ty::Int32),
    ],
};

static LEASE_SPEC: Struct = Struct {
    go_type: "v1.LeaseSpec",
    fields: &[
        ("holderIdentity", Ty::Str("string")),
        ("leaseDurationSeconds", Ty::Int32),
        ("acquireTime", Ty::MicroTime),
        ("renewTime", Ty::MicroTime),
        ("leaseTransitions", Ty::Int32),
        ("strategy", Ty::Str("v1.CoordinatedLeaseStrategy")),
        ("preferredHolder", Ty::Str("string")),
    ],
};

static LEASE: Struct = Struct {
    go_type: "v1.Lease",
    fields: &[("metadata", Ty::Struct(&OBJECT_META)), ("spec", Ty::Struct(&LEASE_SPEC))],
};

static NAMESPACE_CONDITION: Struct = Struct {
    go_type: "v1.NamespaceCondition",
    fields: &[
        ("type", Ty::Str("v1.NamespaceConditionType")),
        ("status", Ty::Str("v1.ConditionStatus")),
        ("lastTransitionTime", Ty::Time),
        ("reason", Ty::Str("string")),
        ("message", Ty::Str("string")),
    ],
};

static NAMESPACE_SPEC: Struct =
    Struct { go_type: "v1.NamespaceSpec", fields: &[("finalizers", Ty::StrList("v1.FinalizerName"))] };

static NAMESPACE_STATUS: Struct = Struct {
    go_type: "v1.NamespaceStatus",
    fields: &[("phase", Ty::Str("v1.NamespacePhase")), ("conditions", Ty::StructList(&NAMESPACE_CONDITION))],
};

static NAMESPACE: Struct = Struct {
    go_type: "v1.Namespace",
    fields: &[
        ("metadata", Ty::Struct(&OBJECT_META)),
        ("spec", Ty::Struct(&NAMESPACE_SPEC)),
        ("status", Ty::Struct(&NAMESPACE_STATUS)),
    ],
};

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn set(value: &Value) -> bool {
    !value.is_null()
}

impl Builtin {
    pub fn of(group: &str, kind: &str) -> Option<Self> {
        match (group, kind) {
            ("", "Namespace") => Some(Self::Namespace),
            ("events.k8s.io", "Event") => Some(Self::Event),
            ("coordination.k8s.io", "Lease") => Some(Self::Lease),
            _ => None,
        }
    }

    pub fn shape(self) -> &'static Struct {
        match self {
            Self::Namespace => &NAMESPACE,
            Self::Event => &EVENT,
            Self::Lease => &LEASE,
        }
    }

    /// `AllowCreateOnUpdate`: a PUT of a missing Event or Lease creates it.
    pub fn allow_create_on_update(self) -> bool {
        matches!(self, Self::Event | Self::Lease)
    }

    /// `AllowUnconditionalUpdate`: a PUT without resourceVersion overwrites (Events,
    /// Namespaces); a Lease needs one.
    pub fn allow_unconditional_update(self) -> bool {
        matches!(self, Self::Event | Self::Namespace)
    }

    /// Fields the real server handles in ways not implemented here.
    pub fn unsupported(self, object: &Value) -> Option<String> {
        match self {
            // Dropped or kept depending on the CoordinatedLeaderElection feature gate.
            Self::Lease if ["strategy", "preferredHolder"].iter().any(|f| set(&object["spec"][f])) => {
                Some("spec.strategy and spec.preferredHolder of Leases (feature-gated on the real server)".into())
            }
            _ => None,
        }
    }

    /// The registry strategy's `PrepareForCreate` (and `Canonicalize`).
    pub fn prepare_for_create(self, object: &mut Value, name: &str) {
        if self == Self::Namespace {
            object["status"] = json!({"phase": "Active"});
            let finalizers = object["spec"]["finalizers"].as_array().cloned().unwrap_or_default();
            if !finalizers.iter().any(|f| f == "kubernetes") {
                let mut finalizers = finalizers;
                finalizers.push(json!("kubernetes"));
                object["spec"]["finalizers"] = Value::Array(finalizers);
            }
            object["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
        }
        self.fill_go_zero_values(object);
    }

    /// The registry strategy's `PrepareForUpdate` (and `Canonicalize`).
    pub fn prepare_for_update(self, new: &mut Value, old: &Value, name: &str) {
        if self == Self::Namespace {
            // Spec and status change through the finalize and status subresources only.
            new["spec"] = old["spec"].clone();
            new["status"] = old["status"].clone();
            new["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
        }
        self.fill_go_zero_values(new);
    }

    /// Fields Go writes even when unset (structs are never omitted, a zero `metav1.Time` is
    /// `null`), so objects read back as from the real server.
    fn fill_go_zero_values(self, object: &mut Value) {
        let defaults: &[(&str, Value)] = match self {
            Self::Namespace => &[("spec", json!({})), ("status", json!({}))],
            Self::Lease => &[("spec", json!({}))],
            Self::Event => &[
                ("eventTime", Value::Null),
                ("regarding", json!({})),
                ("deprecatedSource", json!({})),
                ("deprecatedFirstTimestamp", Value::Null),
                ("deprecatedLastTimestamp", Value::Null),
            ],
        };
        if let Some(map) = object.as_object_mut() {
            for (key, value) in defaults {
                map.entry(*key).or_insert_with(|| value.clone());
            }
        }
    }

    pub fn validate_create(self, object: &Value) -> Vec<Cause> {
        match self {
            Self::Namespace => {
                let mut causes = validation::object_meta_create(object, NameRule::DnsLabel, MetaFlavour::Core);
                causes.extend(namespace_spec_finalizers(object));
                causes
            }
            Self::Lease => {
                let mut causes =
                    validation::object_meta_create(object, NameRule::DnsSubdomain, MetaFlavour::Apimachinery);
                causes.extend(lease_spec(object));
                causes
            }
            Self::Event => {
                let mut causes = legacy_event(object);
                causes.extend(validation::object_meta_create(object, NameRule::DnsSubdomain, MetaFlavour::Core));
                causes.extend(event_series(object));
                if !set(&object["eventTime"]) {
                    causes.push(Cause::required("eventTime", ""));
                }
                let kind = text(object, "/type");
                if kind != "Normal" && kind != "Warning" {
                    causes.push(Cause::invalid("type", Bad::Str(""), &format!("has invalid value: {kind}")));
                }
                for (field, internal) in
                    [("deprecatedFirstTimestamp", "firstTimestamp"), ("deprecatedLastTimestamp", "lastTimestamp")]
                {
                    if set(&object[field]) {
                        causes.push(Cause::invalid(internal, Bad::Str(""), "needs to be unset"));
                    }
                }
                if object["deprecatedCount"].as_i64().unwrap_or(0) != 0 {
                    causes.push(Cause::invalid("count", Bad::Str(""), "needs to be unset"));
                }
                if !text(object, "/deprecatedSource/component").is_empty()
                    || !text(object, "/deprecatedSource/host").is_empty()
                {
                    causes.push(Cause::invalid("source", Bad::Str(""), "needs to be unset"));
                }
                causes
            }
        }
    }

    pub fn validate_update(self, new: &Value, old: &Value) -> Vec<Cause> {
        match self {
            Self::Namespace => validation::object_meta_update(new, old, MetaFlavour::Core),
            Self::Lease => {
                let mut causes = validation::object_meta_update(new, old, MetaFlavour::Apimachinery);
                causes.extend(lease_spec(new));
                causes
            }
            Self::Event => {
                let mut causes = legacy_event(new);
                causes.extend(validation::object_meta_update(new, old, MetaFlavour::Core));
                if new["series"] != old["series"] {
                    causes.extend(event_series(new));
                }
                causes.extend(event_immutables(new, old));
                causes
            }
        }
    }
}

/// `ValidateNamespace`: spec.finalizers are qualified names, and domain-less ones must be
/// Kubernetes' own.
fn namespace_spec_finalizers(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    for name in object["spec"]["finalizers"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        for msg in is_qualified_name(name) {
            causes.push(Cause::invalid("spec.finalizers", Bad::Str(name), &msg));
        }
        if !name.contains('/') && !matches!(name, "kubernetes" | "orphan" | "foregroundDeletion") {
            causes.push(Cause::invalid(
                "spec.finalizers",
                Bad::Str(name),
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    causes
}

/// `ValidateLeaseSpec`.
fn lease_spec(object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(seconds) = object["spec"]["leaseDurationSeconds"].as_i64()
        && seconds <= 0
    {
        causes.push(Cause::invalid("spec.leaseDurationSeconds", Bad::Int(seconds), "must be greater than 0"));
    }
    if let Some(transitions) = object["spec"]["leaseTransitions"].as_i64()
        && transitions < 0
    {
        causes.push(Cause::invalid(
            "spec.leaseTransitions",
            Bad::Int(transitions),
            "must be greater than or equal to 0",
        ));
    }
    causes
}

/// `legacyValidateEvent`, which every Event passes, in its order.
fn legacy_event(event: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let namespace = text(event, "/metadata/namespace");
    let regarding_namespace = text(event, "/regarding/namespace");
    let mismatch =
        || Cause::invalid("involvedObject.namespace", Bad::Str(regarding_namespace), "does not match event.namespace");
    if !set(&event["eventTime"]) {
        // An old-style Event: its namespace must match the object's.
        if regarding_namespace.is_empty() {
            if !namespace.is_empty() && namespace != "default" {
                causes.push(mismatch());
            }
        } else if namespace != regarding_namespace {
            causes.push(mismatch());
        }
    } else {
        // A new-style Event: only a cluster-scoped object's Event may sit outside the
        // object's namespace, and then only in default or kube-system.
        if regarding_namespace.is_empty() && namespace != "default" && namespace != "kube-system" {
            causes.push(mismatch());
        }
        let controller = text(event, "/reportingController");
        if controller.is_empty() {
            causes.push(Cause::required("reportingController", ""));
        }
        for msg in is_qualified_name(controller) {
            causes.push(Cause::invalid("reportingController", Bad::Str(controller), &msg));
        }
        for (field, internal, limit) in
            [("reportingInstance", "reportingInstance", 128), ("action", "action", 128), ("reason", "reason", 128)]
        {
            let value = text(event, &format!("/{field}"));
            if value.is_empty() {
                causes.push(Cause::required(internal, ""));
            }
            if value.len() > limit {
                causes.push(Cause::invalid(internal, Bad::Str(""), &format!("can have at most {limit} characters")));
            }
        }
        if text(event, "/note").len() > 1024 {
            causes.push(Cause::invalid("message", Bad::Str(""), "can have at most 1024 characters"));
        }
    }
    for msg in validation::is_dns1123_subdomain(namespace) {
        causes.push(Cause::invalid("namespace", Bad::Str(namespace), &msg));
    }
    causes
}

/// `validateV1EventSeries`.
fn event_series(event: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let series = &event["series"];
    if series.is_object() {
        if series["count"].as_i64().unwrap_or(0) < 2 {
            causes.push(Cause::invalid("series.count", Bad::Str(""), "should be at least 2"));
        }
        if !set(&series["lastObservedTime"]) {
            causes.push(Cause::required("series.lastObservedTime", ""));
        }
    }
    causes
}

/// An ObjectReference as the internal Go type renders in JSON (no json tags: Go field names,
/// every field). `null` for a nil pointer.
fn internal_reference(value: &Value) -> String {
    if !value.is_object() {
        return "null".into();
    }
    let field = |k: &str| go_json(&json!(value[k].as_str().unwrap_or("")));
    format!(
        "{{\"Kind\":{},\"Namespace\":{},\"Name\":{},\"UID\":{},\"APIVersion\":{},\"ResourceVersion\":{},\"FieldPath\":{}}}",
        field("kind"),
        field("namespace"),
        field("name"),
        field("uid"),
        field("apiVersion"),
        field("resourceVersion"),
        field("fieldPath")
    )
}

/// `ValidateEventUpdate`'s immutable fields, in its order (reason is listed twice there: the
/// causes repeat, the message shows it once). Values render as `field.ErrorBody` does since
/// Kubernetes 1.34 (JSON for structs and times); that rendering of internal structs is this
/// emulator's best reading of the source.
fn event_immutables(new: &Value, old: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let string = |o: &Value, k: &str| Value::String(o[k].as_str().unwrap_or("").to_owned());
    let source = |o: &Value| {
        format!(
            "{{\"Component\":{},\"Host\":{}}}",
            go_quote(text(o, "/deprecatedSource/component")),
            go_quote(text(o, "/deprecatedSource/host"))
        )
    };
    let time = |o: &Value, k: &str| if set(&o[k]) { go_json(&o[k]) } else { "null".into() };
    let count = |o: &Value| o["deprecatedCount"].as_i64().unwrap_or(0);
    let mut check = |field: &str, new_value: String, old_value: String| {
        if new_value != old_value {
            causes.push(Cause::invalid(field, Bad::Raw(new_value), "field is immutable"));
        }
    };
    let quoted = |o: &Value, k: &str| go_quote(string(o, k).as_str().unwrap_or(""));
    check("involvedObject", internal_reference(&new["regarding"]), internal_reference(&old["regarding"]));
    check("reason", quoted(new, "reason"), quoted(old, "reason"));
    check("message", quoted(new, "note"), quoted(old, "note"));
    check("source", source(new), source(old));
    check("firstTimestamp", time(new, "deprecatedFirstTimestamp"), time(old, "deprecatedFirstTimestamp"));
    check("lastTimestamp", time(new, "deprecatedLastTimestamp"), time(old, "deprecatedLastTimestamp"));
    check("count", count(new).to_string(), count(old).to_string());
    check("reason", quoted(new, "reason"), quoted(old, "reason"));
    check("type", quoted(new, "type"), quoted(old, "type"));
    check("eventTime", time(new, "eventTime"), time(old, "eventTime"));
    check("action", quoted(new, "action"), quoted(old, "action"));
    check("related", internal_reference(&new["related"]), internal_reference(&old["related"]));
    check("reportingController", quoted(new, "reportingController"), quoted(old, "reportingController"));
    check("reportingInstance", quoted(new, "reportingInstance"), quoted(old, "reportingInstance"));
    causes
}
