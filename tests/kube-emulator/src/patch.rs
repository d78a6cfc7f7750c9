//! Patch formats kube-apiserver accepts for custom resources.

use json_patch::{Patch, PatchOperation};
use serde_json::{Map, Value, json};

/// RFC 7386 JSON merge patch.
pub fn merge(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// RFC 6902 JSON patch. Like kube-apiserver's library, a `test` against `null` passes when the
/// path is absent (the json-patch crate alone would fail it).
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, String> {
    let patch: Patch = serde_json::from_value(patch.clone()).map_err(|e| format!("invalid JSON patch: {e}"))?;
    let mut operations = Vec::new();
    for operation in patch.0 {
        match &operation {
            PatchOperation::Test(test) if test.value.is_null() => {
                if !target.pointer(test.path.as_str()).is_none_or(Value::is_null) {
                    return Err(format!("testing value {} failed: test failed", test.path));
                }
            }
            _ => operations.push(operation),
        }
    }
    let mut patched = target.clone();
    json_patch::patch(&mut patched, &operations).map_err(|e| e.to_string())?;
    Ok(patched)
}

/// Server-side apply of the `status` subresource, at the granularity of status's top-level
/// fields: the manager owns the fields it applies; fields it owned before and leaves out are
/// removed; a field another manager owns is a conflict unless `force`.
pub fn apply_status(stored: &Value, applied: &Value, manager: &str, force: bool, now: &str) -> Result<Value, String> {
    let applied_status = applied.get("status").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut object = stored.clone();
    let mut status = object.get("status").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut managed: Vec<Value> = object["metadata"]["managedFields"].as_array().cloned().unwrap_or_default();

    let owned_by = |entry: &Value| -> Vec<String> {
        entry["fieldsV1"]["f:status"]
            .as_object()
            .map_or_else(Vec::new, |m| m.keys().filter_map(|k| k.strip_prefix("f:")).map(str::to_owned).collect())
    };
    let is_status_entry = |entry: &Value| entry["subresource"] == "status";
    let mine_before: Vec<String> =
        managed.iter().filter(|e| e["manager"] == manager && is_status_entry(e)).flat_map(owned_by).collect();

    let mut conflicts = Vec::new();
    for entry in managed.iter_mut().filter(|e| e["manager"] != manager && is_status_entry(e)) {
        for field in owned_by(entry) {
            if applied_status.get(&field).is_some_and(|v| status.get(&field) != Some(v)) {
                if !force {
                    conflicts.push(format!(
                        "conflict with \"{}\": .status.{field}",
                        entry["manager"].as_str().unwrap_or("")
                    ));
                } else if let Some(fields) = entry["fieldsV1"]["f:status"].as_object_mut() {
                    fields.remove(&format!("f:{field}"));
                }
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(format!("Apply failed with {} conflict(s): {}", conflicts.len(), conflicts.join(", ")));
    }
    let owned_by_others: Vec<String> =
        managed.iter().filter(|e| e["manager"] != manager && is_status_entry(e)).flat_map(owned_by).collect();
    for field in mine_before {
        if !applied_status.contains_key(&field) && !owned_by_others.contains(&field) {
            status.remove(&field);
        }
    }
    for (field, value) in &applied_status {
        status.insert(field.clone(), value.clone());
    }

    managed.retain(|e| !(e["manager"] == manager && is_status_entry(e)));
    managed.retain(|e| !is_status_entry(e) || !owned_by(e).is_empty());
    let fields: Map<String, Value> = applied_status.keys().map(|k| (format!("f:{k}"), json!({}))).collect();
    managed.push(json!({
        "manager": manager,
        "operation": "Apply",
        "apiVersion": applied["apiVersion"],
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:status": fields},
        "subresource": "status",
    }));
    if status.is_empty() {
        object.as_object_mut().unwrap().remove("status");
    } else {
        object["status"] = Value::Object(status);
    }
    object["metadata"]["managedFields"] = Value::Array(managed);
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_patch_test_of_null_passes_on_a_missing_path() {
        let doc = json!({"metadata": {"name": "a"}});
        let patch = json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": ["f"]},
        ]);
        let patched = json_patch(&doc, &patch).unwrap();
        assert_eq!(patched["metadata"]["finalizers"], json!(["f"]));
        assert!(json_patch(&patched, &patch).is_err(), "test of null fails once the path holds a value");
        let failing = json!([{"op": "test", "path": "/metadata/name", "value": "b"}]);
        assert!(json_patch(&doc, &failing).is_err());
    }

    #[test]
    fn apply_removes_what_the_manager_dropped_and_keeps_others_fields() {
        let stored = json!({"metadata": {}, "status": {"other": 1}});
        let first = apply_status(&stored, &json!({"status": {"a": 1, "b": 2}}), "op", true, "t").unwrap();
        assert_eq!(first["status"], json!({"other": 1, "a": 1, "b": 2}));
        let second = apply_status(&first, &json!({"status": {"a": 3}}), "op", true, "t").unwrap();
        assert_eq!(second["status"], json!({"other": 1, "a": 3}));
    }

    #[test]
    fn apply_conflicts_with_another_manager_unless_forced() {
        let stored = json!({"metadata": {}});
        let theirs = apply_status(&stored, &json!({"status": {"a": 1}}), "them", false, "t").unwrap();
        let err = apply_status(&theirs, &json!({"status": {"a": 2}}), "us", false, "t").unwrap_err();
        assert!(err.contains("conflict with \"them\": .status.a"), "{err}");
        let forced = apply_status(&theirs, &json!({"status": {"a": 2}}), "us", true, "t").unwrap();
        assert_eq!(forced["status"]["a"], 2);
    }
}
