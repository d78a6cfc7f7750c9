//! Field validation in kube-apiserver's words: name formats, object metadata (names, labels,
//! annotations, finalizers, owner references, managed fields) and how a field error is rendered.
//!
//! Sources followed (Kubernetes 1.34 to 1.36): `k8s.io/apimachinery/pkg/api/validation`
//! (`ValidateObjectMetaAccessor`, `ValidateObjectMetaAccessorUpdate`, `NameIsDNSSubdomain`,
//! `maskTrailingDash`, `ValidateAnnotations`, `ValidateFinalizers`, owner references),
//! `pkg/apis/meta/v1/validation` (`ValidateLabels`, `ValidateManagedFields`),
//! `pkg/util/validation` (`IsDNS1123Subdomain`, `IsDNS1123Label`: "characters") and
//! `pkg/api/validate/content` (`IsLabelKey` = `IsQualifiedName`, `IsLabelValue`: "bytes"),
//! `pkg/util/validation/field` (`ErrorBody`), and core's `validateKubeFinalizerName`.

use serde_json::Value;

use crate::schema::Cause;

pub const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
pub const DNS1123_SUBDOMAIN_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const LABEL_KEY_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_KEY_MSG: &str =
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// `metav1validation`'s annotation limit: keys plus values, in bytes.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// `validation.RegexError`.
pub fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    if examples.is_empty() {
        return format!("{msg} (regex used for validation is '{fmt}')");
    }
    let mut text = format!("{msg} (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            text.push_str(" or ");
        }
        text.push_str(&format!("'{example}', "));
    }
    text.push_str(&format!("regex used for validation is '{fmt}')"));
    text
}

fn is_alnum_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn matches_dns_label(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && is_alnum_lower(b[0])
        && is_alnum_lower(b[b.len() - 1])
        && b.iter().all(|c| is_alnum_lower(*c) || *c == b'-')
}

fn matches_dns_subdomain(value: &str) -> bool {
    value.split('.').all(matches_dns_label)
}

fn matches_label_key_name(value: &str) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `util/validation.IsDNS1123Subdomain` (its length message says "characters").
pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push("must be no more than 253 characters".to_owned());
    }
    if !matches_dns_subdomain(value) {
        errs.push(regex_error(DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, &["example.com"]));
    }
    errs
}

/// `util/validation.IsDNS1123Label`.
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_owned());
    }
    if !matches_dns_label(value) {
        if matches_dns_subdomain(value) {
            errs.push("must not contain dots".to_owned());
        } else {
            errs.push(regex_error(DNS1123_LABEL_MSG, DNS1123_LABEL_FMT, &["my-name", "123-abc"]));
        }
    }
    errs
}

/// `content.IsDNS1123Subdomain` (the newer copy, whose length message says "bytes"), as
/// used for the prefix of qualified names.
fn content_is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 253 {
        errs.push("must be no more than 253 bytes".to_owned());
    }
    if !matches_dns_subdomain(value) {
        errs.push(regex_error(DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, &["example.com"]));
    }
    errs
}

/// `content.IsLabelKey`, which `validation.IsQualifiedName` now is: label keys, annotation
/// keys, finalizers, Event's reportingController.
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_owned());
            } else {
                errs.extend(content_is_dns1123_subdomain(prefix).into_iter().map(|m| format!("prefix part {m}")));
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a valid label key {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(LABEL_KEY_MSG, LABEL_KEY_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_owned());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 bytes".to_owned());
    }
    if !matches_label_key_name(name) {
        errs.push(format!(
            "name part {}",
            regex_error(LABEL_KEY_MSG, LABEL_KEY_FMT, &["MyName", "my.name", "123-abc"])
        ));
    }
    errs
}

/// `content.IsLabelValue`.
pub fn is_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 bytes".to_owned());
    }
    if !value.is_empty() && !matches_label_key_name(value) {
        errs.push(regex_error(LABEL_VALUE_MSG, LABEL_VALUE_FMT, &["MyValue", "my_value", "12345"]));
    }
    errs
}

/// How names of a kind are checked (`ValidateNameFunc`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NameRule {
    /// `NameIsDNSSubdomain`: Events, Leases, custom resources.
    DnsSubdomain,
    /// `NameIsDNSLabel` (`ValidateNamespaceName`): Namespaces.
    DnsLabel,
}

impl NameRule {
    /// `prefix` is true for generateName, which kube-apiserver checks after `maskTrailingDash`.
    pub fn check(self, name: &str, prefix: bool) -> Vec<String> {
        let masked;
        let name = if prefix && name.len() > 1 && name.ends_with('-') {
            // maskTrailingDash: `name[:len(name)-2] + "a"`, as the Go source has it (it drops
            // the character before the dash too). A generateName of "-" alone would make the
            // real server's slice expression panic (1.36 has no length guard); here it is
            // checked as is, which refuses it too.
            masked = format!("{}a", &name[..name.len() - 2]);
            masked.as_str()
        } else {
            name
        };
        match self {
            NameRule::DnsSubdomain => is_dns1123_subdomain(name),
            NameRule::DnsLabel => is_dns1123_label(name),
        }
    }
}

/// `names.SimpleNameGenerator`: the base cut to 58 bytes, then 5 random characters.
pub fn generate_name(base: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = base.as_bytes();
    let base = String::from_utf8_lossy(&bytes[..bytes.len().min(63 - 5)]).into_owned();
    let suffix: String = (0..5).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect();
    format!("{base}{suffix}")
}

/// Go's `strconv.Quote`, as `%q` renders a string in messages.
pub fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `encoding/json` output of a value: compact, map keys sorted, `<`, `>` and `&` escaped.
pub fn go_json(value: &Value) -> String {
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, key) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&escape_html(&Value::String((*key).clone()).to_string()));
                    out.push(':');
                    write(&map[key.as_str()], out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&escape_html(&other.to_string())),
        }
    }
    fn escape_html(text: &str) -> String {
        text.replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
            .replace('\u{2028}', "\\u2028")
            .replace('\u{2029}', "\\u2029")
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// A field error's bad value, rendered as `field.ErrorBody` does since Kubernetes 1.34: strings
/// quoted, integers plain, anything else (structs, lists, maps, times, nil) as JSON.
pub enum Bad<'a> {
    Str(&'a str),
    Int(i64),
    /// Already rendered (JSON of a Go struct, in the struct's field order).
    Raw(String),
    Json(&'a Value),
}

impl Bad<'_> {
    fn render(&self) -> String {
        match self {
            Bad::Str(s) => go_quote(s),
            Bad::Int(n) => n.to_string(),
            Bad::Raw(text) => text.clone(),
            Bad::Json(value) => match value {
                Value::String(s) => go_quote(s),
                Value::Number(n) if n.is_i64() => n.to_string(),
                other => go_json(other),
            },
        }
    }
}

fn with_detail(body: String, detail: &str) -> String {
    if detail.is_empty() { body } else { format!("{body}: {detail}") }
}

impl Cause {
    pub fn required(field: impl Into<String>, detail: &str) -> Self {
        Self {
            reason: "FieldValueRequired",
            field: field.into(),
            message: with_detail("Required value".into(), detail),
        }
    }

    pub fn invalid(field: impl Into<String>, value: Bad<'_>, detail: &str) -> Self {
        Self {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: with_detail(format!("Invalid value: {}", value.render()), detail),
        }
    }

    pub fn forbidden(field: impl Into<String>, detail: &str) -> Self {
        Self { reason: "FieldValueForbidden", field: field.into(), message: with_detail("Forbidden".into(), detail) }
    }

    pub fn too_long(field: impl Into<String>, max: usize) -> Self {
        let unit = if max == 1 { "byte" } else { "bytes" };
        Self {
            reason: "FieldValueTooLong",
            field: field.into(),
            message: format!("Too long: may not be more than {max} {unit}"),
        }
    }

    pub fn not_supported(field: impl Into<String>, value: Bad<'_>, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
        Self {
            reason: "FieldValueNotSupported",
            field: field.into(),
            message: with_detail(
                format!("Unsupported value: {}", value.render()),
                &format!("supported values: {}", list.join(", ")),
            ),
        }
    }

    /// `field.ErrorList.ToAggregate` renders each error as `<field>: <body>`.
    pub fn text(&self) -> String {
        if self.field.is_empty() { self.message.clone() } else { format!("{}: {}", self.field, self.message) }
    }
}

/// The message of a 422: `<Kind> "<name>" is invalid: <error>`, several errors in brackets,
/// repeated messages once (`ToAggregate`).
pub fn invalid_message(qualified_kind: &str, name: &str, causes: &[Cause]) -> String {
    let mut texts: Vec<String> = Vec::new();
    for cause in causes {
        let text = cause.text();
        if !texts.contains(&text) {
            texts.push(text);
        }
    }
    let joined = match texts.len() {
        0 => return format!("{qualified_kind} {} is invalid", go_quote(name)),
        1 => texts.remove(0),
        _ => format!("[{}]", texts.join(", ")),
    };
    format!("{qualified_kind} {} is invalid: {joined}", go_quote(name))
}

fn strings_of(value: &Value) -> Vec<&str> {
    value.as_array().into_iter().flatten().filter_map(Value::as_str).collect()
}

fn sorted_pairs(value: &Value) -> Vec<(&String, &str)> {
    let mut pairs: Vec<(&String, &str)> =
        value.as_object().into_iter().flatten().map(|(k, v)| (k, v.as_str().unwrap_or(""))).collect();
    pairs.sort();
    pairs
}

/// `ValidateLabels`: errors in key order (the real server's order follows Go's map iteration,
/// which is random).
fn labels(metadata: &Value, causes: &mut Vec<Cause>) {
    for (key, value) in sorted_pairs(&metadata["labels"]) {
        for msg in is_qualified_name(key) {
            causes.push(Cause::invalid("metadata.labels", Bad::Str(key), &msg));
        }
        for msg in is_label_value(value) {
            causes.push(Cause::invalid("metadata.labels", Bad::Str(value), &msg));
        }
    }
}

/// `ValidateAnnotations`: keys are qualified names once lowercased; keys plus values at most
/// 256 KiB.
fn annotations(metadata: &Value, causes: &mut Vec<Cause>) {
    let pairs = sorted_pairs(&metadata["annotations"]);
    for (key, _) in &pairs {
        for msg in is_qualified_name(&key.to_lowercase()) {
            causes.push(Cause::invalid("metadata.annotations", Bad::Str(key), &msg));
        }
    }
    let total: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        causes.push(Cause::too_long("metadata.annotations", TOTAL_ANNOTATION_SIZE_LIMIT));
    }
}

/// An OwnerReference as Go's JSON renders it (struct field order, omitempty).
fn owner_reference_json(reference: &Value) -> String {
    let mut fields = Vec::new();
    for key in ["apiVersion", "kind", "name", "uid"] {
        fields.push(format!("\"{key}\":{}", go_json(&Value::String(reference[key].as_str().unwrap_or("").into()))));
    }
    for key in ["controller", "blockOwnerDeletion"] {
        if let Some(b) = reference[key].as_bool() {
            fields.push(format!("\"{key}\":{b}"));
        }
    }
    format!("{{{}}}", fields.join(","))
}

/// `ValidateOwnerReferences`. The wording for a malformed apiVersion follows the 1.36 source's
/// tests ("must be <group>/<version> or <version>"); which field it is reported on is a guess.
fn owner_references(metadata: &Value, causes: &mut Vec<Cause>) {
    let path = "metadata.ownerReferences";
    let references = metadata["ownerReferences"].as_array().cloned().unwrap_or_default();
    let mut first_controller: Option<String> = None;
    for reference in &references {
        let api_version = reference["apiVersion"].as_str().unwrap_or("");
        let kind = reference["kind"].as_str().unwrap_or("");
        let parts: Vec<&str> = api_version.split('/').collect();
        let (group, version) = match parts.as_slice() {
            [version] => ("", *version),
            [group, version] => (*group, *version),
            _ => ("", ""),
        };
        if parts.len() > 2 || (parts.len() == 2 && (group.is_empty() || version.is_empty())) {
            causes.push(Cause::invalid(
                format!("{path}.apiVersion"),
                Bad::Str(api_version),
                "must be <group>/<version> or <version>",
            ));
        } else if version.is_empty() {
            causes.push(Cause::invalid(
                format!("{path}.apiVersion"),
                Bad::Str(api_version),
                "version must not be empty",
            ));
        }
        if kind.is_empty() {
            causes.push(Cause::invalid(format!("{path}.kind"), Bad::Str(kind), "must not be empty"));
        }
        for key in ["name", "uid"] {
            let value = reference[key].as_str().unwrap_or("");
            if value.is_empty() {
                causes.push(Cause::invalid(format!("{path}.{key}"), Bad::Str(value), "must not be empty"));
            }
        }
        if group.is_empty() && version == "v1" && kind == "Event" {
            causes.push(Cause::invalid(
                path,
                Bad::Raw(owner_reference_json(reference)),
                "/v1, Kind=Event is disallowed from being an owner",
            ));
        }
        if reference["controller"] == true {
            let this = format!("{kind}/{}", reference["name"].as_str().unwrap_or(""));
            match &first_controller {
                Some(first) => causes.push(Cause::invalid(
                    path,
                    Bad::Raw(format!("[{}]", references.iter().map(owner_reference_json).collect::<Vec<_>>().join(","))),
                    &format!("Only one reference can have Controller set to true. Found \"true\" in references for {first} and {this}"),
                )),
                None => first_controller = Some(this),
            }
        }
    }
}

/// `ValidateFinalizers`: qualified names; orphan and foregroundDeletion exclude each other.
fn finalizers(metadata: &Value, causes: &mut Vec<Cause>) {
    let names = strings_of(&metadata["finalizers"]);
    for name in &names {
        for msg in is_qualified_name(name) {
            causes.push(Cause::invalid("metadata.finalizers", Bad::Str(name), &msg));
        }
    }
    if names.contains(&"orphan") && names.contains(&"foregroundDeletion") {
        causes.push(Cause::invalid(
            "metadata.finalizers",
            Bad::Json(&metadata["finalizers"]),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
}

/// core's `validateKubeFinalizerName`, run for built-in core kinds (Events, Namespaces): a
/// finalizer without a domain must be one of Kubernetes' own.
fn kube_finalizer_names(metadata: &Value, causes: &mut Vec<Cause>) {
    for (i, name) in strings_of(&metadata["finalizers"]).into_iter().enumerate() {
        if !name.contains('/') && !matches!(name, "kubernetes" | "orphan" | "foregroundDeletion") {
            causes.push(Cause::invalid(
                format!("metadata.finalizers[{i}]"),
                Bad::Str(name),
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
}

/// `ValidateManagedFields` (managers are at most 128 bytes and printable; subresources 256).
fn managed_fields(metadata: &Value, causes: &mut Vec<Cause>) {
    for (i, entry) in metadata["managedFields"].as_array().into_iter().flatten().enumerate() {
        let path = format!("metadata.managedFields[{i}]");
        let operation = entry["operation"].as_str().unwrap_or("");
        if !matches!(operation, "Apply" | "Update") {
            causes.push(Cause::invalid(
                format!("{path}.operation"),
                Bad::Str(operation),
                "must be `Apply` or `Update`",
            ));
        }
        let fields_type = entry["fieldsType"].as_str().unwrap_or("");
        if !fields_type.is_empty() && fields_type != "FieldsV1" {
            causes.push(Cause::invalid(format!("{path}.fieldsType"), Bad::Str(fields_type), "must be `FieldsV1`"));
        }
        let manager = entry["manager"].as_str().unwrap_or("");
        if manager.len() > 128 {
            causes.push(Cause::too_long(format!("{path}.manager"), 128));
        }
        for (position, c) in manager.char_indices() {
            if c.is_control() {
                causes.push(Cause::invalid(
                    format!("{path}.manager"),
                    Bad::Str(manager),
                    &format!("invalid character U+{:04X} (at position {position})", c as u32),
                ));
            }
        }
        if entry["subresource"].as_str().unwrap_or("").len() > 256 {
            causes.push(Cause::too_long(format!("{path}.subresource"), 256));
        }
    }
}

/// Whether a kind runs core's extra finalizer-name check (`core/validation.ValidateObjectMeta`)
/// or only apimachinery's (Leases, custom resources).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MetaFlavour {
    Apimachinery,
    Core,
}

/// `ValidateObjectMetaAccessor` on create: `metadata.name` is already generated from
/// `metadata.generateName` when that was given.
pub fn object_meta_create(object: &Value, rule: NameRule, flavour: MetaFlavour) -> Vec<Cause> {
    let metadata = &object["metadata"];
    let mut causes = Vec::new();
    let generate_name = metadata["generateName"].as_str().unwrap_or("");
    if !generate_name.is_empty() {
        for msg in rule.check(generate_name, true) {
            causes.push(Cause::invalid("metadata.generateName", Bad::Str(generate_name), &msg));
        }
    }
    let name = metadata["name"].as_str().unwrap_or("");
    if name.is_empty() {
        causes.push(Cause::required("metadata.name", "name or generateName is required"));
    } else {
        for msg in rule.check(name, false) {
            causes.push(Cause::invalid("metadata.name", Bad::Str(name), &msg));
        }
    }
    labels(metadata, &mut causes);
    annotations(metadata, &mut causes);
    owner_references(metadata, &mut causes);
    finalizers(metadata, &mut causes);
    managed_fields(metadata, &mut causes);
    if flavour == MetaFlavour::Core {
        kube_finalizer_names(metadata, &mut causes);
    }
    causes
}

/// `ValidateObjectMetaAccessorUpdate`: no new finalizers once deletion started, then labels,
/// annotations, owner references and managed fields of the new object. (Finalizer names are
/// not checked on update by apimachinery; core kinds check the kube finalizer names.) System
/// fields are restored from the stored object before this runs; `immutable` carries what the
/// request tried to change anyway.
pub fn object_meta_update(new: &Value, old: &Value, flavour: MetaFlavour) -> Vec<Cause> {
    let metadata = &new["metadata"];
    let mut causes = Vec::new();
    if old["metadata"].get("deletionTimestamp").is_some_and(|t| !t.is_null()) {
        let before = strings_of(&old["metadata"]["finalizers"]);
        let mut added: Vec<&str> =
            strings_of(&metadata["finalizers"]).into_iter().filter(|f| !before.contains(f)).collect();
        added.sort();
        added.dedup();
        if !added.is_empty() {
            let list: Vec<String> = added.iter().map(|f| go_quote(f)).collect();
            causes.push(Cause::forbidden(
                "metadata.finalizers",
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    list.join(", ")
                ),
            ));
        }
    }
    labels(metadata, &mut causes);
    annotations(metadata, &mut causes);
    owner_references(metadata, &mut causes);
    managed_fields(metadata, &mut causes);
    if flavour == MetaFlavour::Core {
        kube_finalizer_names(metadata, &mut causes);
    }
    causes
}

/// What `rest.BeforeUpdate` cannot quietly restore: a request changing `uid`, or setting a
/// deletionTimestamp / deletionGracePeriodSeconds the stored object does not have.
pub fn immutable_system_fields(new: &Value, old: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let (new_meta, old_meta) = (&new["metadata"], &old["metadata"]);
    if let Some(uid) = new_meta["uid"].as_str().filter(|u| !u.is_empty())
        && Some(uid) != old_meta["uid"].as_str()
    {
        causes.push(Cause::invalid("metadata.uid", Bad::Str(uid), "field is immutable"));
    }
    let unset = |v: &Value| v.is_null();
    if unset(&old_meta["deletionTimestamp"]) && !unset(&new_meta["deletionTimestamp"]) {
        causes.push(Cause::invalid(
            "metadata.deletionTimestamp",
            Bad::Json(&new_meta["deletionTimestamp"]),
            "field is immutable",
        ));
    }
    if unset(&old_meta["deletionGracePeriodSeconds"]) && !unset(&new_meta["deletionGracePeriodSeconds"]) {
        causes.push(Cause::invalid(
            "metadata.deletionGracePeriodSeconds",
            Bad::Json(&new_meta["deletionGracePeriodSeconds"]),
            "field is immutable",
        ));
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_name_is_checked_after_masking_a_trailing_dash() {
        assert!(NameRule::DnsSubdomain.check("name-", true).is_empty());
        assert_eq!(
            NameRule::DnsSubdomain.check("name.", true),
            [
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
            ]
        );
        // maskTrailingDash drops the character before the dash as well.
        assert!(NameRule::DnsSubdomain.check("a.-", true).is_empty());
        assert!(!NameRule::DnsSubdomain.check("name-", false).is_empty());
    }

    #[test]
    fn generated_names_cut_the_base_to_58_bytes_and_add_five_characters() {
        let name = generate_name(&"a".repeat(100));
        assert_eq!(name.len(), 63);
        assert!(name[58..].bytes().all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)), "{name}");
    }

    #[test]
    fn qualified_names_and_label_values() {
        assert!(is_qualified_name("example.com/My_name.1").is_empty());
        assert_eq!(is_qualified_name("a/b/c").len(), 1);
        assert_eq!(is_qualified_name(""), vec![
            "name part must be non-empty".to_owned(),
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_owned(),
        ]);
        assert_eq!(
            is_qualified_name("Bad.Prefix/x")[0].split(" (").next().unwrap(),
            "prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
        );
        assert!(is_label_value("").is_empty());
        assert_eq!(is_label_value(&"a".repeat(64)), ["must be no more than 63 bytes"]);
    }

    #[test]
    fn go_quoting_and_json() {
        assert_eq!(go_quote("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(go_json(&serde_json::json!({"b": "<", "a": [1, null]})), "{\"a\":[1,null],\"b\":\"\\u003c\"}");
    }
}
