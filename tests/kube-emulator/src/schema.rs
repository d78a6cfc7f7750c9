//! Validation of custom resources as kube-apiserver does it: pruning of unknown fields, the
//! OpenAPI v3 schema (with a JSON-schema validator), then the CEL rules (with kube's CEL).

use serde_json::{Map, Value, json};

/// One field error, in the words kube-apiserver uses: a `StatusCause` (`reason`, `field`, and
/// `message` without the field, as `field.Error.ErrorBody`); `text()` is `<field>: <message>`.
#[derive(Clone, Debug, PartialEq)]
pub struct Cause {
    /// FieldValueRequired, FieldValueNotSupported, FieldValueInvalid, FieldValueTooLong, ...
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

pub struct Schema {
    openapi: Value,
    validator: jsonschema::Validator,
}

impl Schema {
    pub fn new(openapi: Value, kind: &str) -> Result<Self, String> {
        let mut as_json_schema = openapi.clone();
        nullable_to_json_schema(&mut as_json_schema);
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .build(&as_json_schema)
            .map_err(|e| format!("CRD schema of {kind} is not a valid schema: {e}"))?;
        Ok(Self { openapi, validator })
    }

    /// The CRD version's `openAPIV3Schema`, as written.
    pub fn openapi(&self) -> &Value {
        &self.openapi
    }

    /// Drops fields the schema does not declare, as the API server does for structural schemas;
    /// returns their paths as the pruning reports them (`spec.colour`, `status.conditions[0].x`).
    pub fn prune(&self, object: &mut Value) -> Vec<String> {
        let mut pruned = Vec::new();
        let Some(map) = object.as_object_mut() else {
            return pruned;
        };
        let props = self.openapi["properties"].as_object().cloned().unwrap_or_default();
        for key in map.keys() {
            if !matches!(key.as_str(), "apiVersion" | "kind" | "metadata") && !props.contains_key(key) {
                pruned.push(key.clone());
            }
        }
        map.retain(|k, _| matches!(k.as_str(), "apiVersion" | "kind" | "metadata") || props.contains_key(k));
        // metadata follows ObjectMeta's own rules, whatever the CRD's schema says of it
        // (published CRDs, ACK's and Crossplane's among them, declare it as a bare object).
        for (key, schema) in props.iter().filter(|(key, _)| !matches!(key.as_str(), "apiVersion" | "kind" | "metadata"))
        {
            if let Some(value) = map.get_mut(key) {
                prune(value, schema, key, &mut pruned);
            }
        }
        pruned
    }

    /// The fields `prune` would drop from `object`.
    pub fn unknown_fields(&self, object: &Value) -> Vec<String> {
        self.prune(&mut object.clone())
    }

    /// Schema then CEL validation; `old` is the stored object on updates (transition rules).
    pub fn validate(&self, object: &Value, old: Option<&Value>) -> Result<(), Vec<Cause>> {
        let mut causes: Vec<Cause> = self.validator.iter_errors(object).map(|e| cause_from(&e, object)).collect();
        causes.dedup();
        if !causes.is_empty() {
            return Err(causes);
        }
        kube_core::cel::Validator::new().validate(&self.openapi, object, old).map_err(|errors| {
            errors
                .into_vec()
                .into_iter()
                .map(|e| {
                    let value = pointer_for(&e.field_path).and_then(|p| object.pointer(&p).cloned());
                    let type_name = value.as_ref().map_or("object", json_type);
                    Cause {
                        reason: "FieldValueInvalid",
                        message: format!("Invalid value: \"{type_name}\": {}", e.message),
                        field: e.field_path,
                    }
                })
                .collect()
        })
    }
}

fn pointer_for(field_path: &str) -> Option<String> {
    if field_path.is_empty() {
        return None;
    }
    Some(format!("/{}", field_path.replace('.', "/")))
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn quoted(value: &Value) -> String {
    match value {
        Value::String(s) => crate::validation::go_quote(s),
        other => other.to_string(),
    }
}

fn cause_from(error: &jsonschema::ValidationError<'_>, object: &Value) -> Cause {
    use jsonschema::error::ValidationErrorKind as Kind;
    let pointer = error.instance_path().to_string();
    let field = pointer.trim_start_matches('/').replace('/', ".");
    let value = object.pointer(&pointer).cloned().unwrap_or(Value::Null);
    match error.kind() {
        Kind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let field = if field.is_empty() { name.to_owned() } else { format!("{field}.{name}") };
            Cause { reason: "FieldValueRequired", message: "Required value".into(), field }
        }
        Kind::Enum { options } => {
            let supported: Vec<_> = options.as_array().into_iter().flatten().map(quoted).collect();
            Cause {
                reason: "FieldValueNotSupported",
                message: format!("Unsupported value: {}: supported values: {}", quoted(&value), supported.join(", ")),
                field,
            }
        }
        Kind::MaxLength { limit } => Cause {
            reason: "FieldValueTooLong",
            message: format!("Too long: may not be more than {limit} bytes"),
            field,
        },
        Kind::MinLength { limit } => Cause {
            reason: "FieldValueInvalid",
            message: format!(
                "Invalid value: {}: {field} in body should be at least {limit} chars long",
                quoted(&value)
            ),
            field,
        },
        Kind::MaxProperties { limit } => {
            Cause { reason: "FieldValueTooMany", message: format!("Too many: must have at most {limit} items"), field }
        }
        Kind::Type { .. } => Cause {
            reason: "FieldValueTypeInvalid",
            message: format!(
                "Invalid value: {}: {field} in body must be of type {}",
                quoted(&value),
                expected_type(error)
            ),
            field,
        },
        _ => {
            Cause { reason: "FieldValueInvalid", message: format!("Invalid value: {}: {error}", quoted(&value)), field }
        }
    }
}

fn expected_type(error: &jsonschema::ValidationError<'_>) -> String {
    // The validator's message reads `<value> is not of type "string"`.
    let text = error.to_string();
    text.rsplit("of type ").next().unwrap_or("").trim_matches('"').to_owned()
}

/// OpenAPI's `nullable: true` is JSON Schema's `type: [T, "null"]`.
fn nullable_to_json_schema(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.get("nullable") == Some(&Value::Bool(true))
                && let Some(Value::String(t)) = map.get("type").cloned()
            {
                map.insert("type".into(), json!([t, "null"]));
                if let Some(Value::Array(values)) = map.get_mut("enum") {
                    values.push(Value::Null);
                }
            }
            for value in map.values_mut() {
                nullable_to_json_schema(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(nullable_to_json_schema),
        _ => {}
    }
}

fn prune(value: &mut Value, schema: &Value, path: &str, pruned: &mut Vec<String>) {
    if schema["x-kubernetes-preserve-unknown-fields"] == true {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(props) = schema["properties"].as_object() {
                pruned.extend(map.keys().filter(|k| !props.contains_key(*k)).map(|k| format!("{path}.{k}")));
                map.retain(|k, _| props.contains_key(k));
                for (k, v) in map.iter_mut() {
                    prune(v, &props[k], &format!("{path}.{k}"), pruned);
                }
            } else if schema["additionalProperties"].is_object() {
                for (k, v) in map.iter_mut() {
                    prune(v, &schema["additionalProperties"], &format!("{path}.{k}"), pruned);
                }
            } else if schema.get("type") == Some(&json!("object")) && schema.get("additionalProperties").is_none() {
                pruned.extend(map.keys().map(|k| format!("{path}.{k}")));
                *map = Map::new();
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                prune(item, &schema["items"], &format!("{path}[{i}]"), pruned);
            }
        }
        _ => {}
    }
}
