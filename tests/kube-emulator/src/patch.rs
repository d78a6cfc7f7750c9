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
pub fn apply_status(
    stored: &Value,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, Vec<Conflict>> {
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
                    conflicts.push(Conflict { manager: manager_label(entry), path: format!(".status.{field}") });
                } else if let Some(fields) = entry["fieldsV1"]["f:status"].as_object_mut() {
                    fields.remove(&format!("f:{field}"));
                }
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
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

/// A field another manager owns with a different value, as structured-merge-diff reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    /// The manager as the real server prints it: `"kubectl"`, `"op" with subresource "status"`,
    /// `"kubectl-client-side-apply" using apps/v1` (an Update).
    pub manager: String,
    /// `.spec.apiId`, `.metadata.labels.app`, `.metadata.finalizers[="x"]`.
    pub path: String,
}

/// `internal.NewConflictError`'s message: one conflict inline, several grouped by manager.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [one] = conflicts {
        return format!("Apply failed with 1 conflict: conflict with {}: {}", one.manager, one.path);
    }
    let mut managers: Vec<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
    managers.sort();
    managers.dedup();
    let mut lines = Vec::new();
    for manager in managers {
        lines.push(format!("conflicts with {manager}:"));
        lines.extend(conflicts.iter().filter(|c| c.manager == manager).map(|c| format!("- {}", c.path)));
    }
    format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
}

/// `printManager`: the manager quoted, its subresource, and for an Update the API version.
fn manager_label(entry: &Value) -> String {
    let mut label = crate::validation::go_quote(entry["manager"].as_str().unwrap_or(""));
    if let Some(sub) = entry["subresource"].as_str().filter(|s| !s.is_empty()) {
        label = format!("{label} with subresource {}", crate::validation::go_quote(sub));
    }
    if entry["operation"] == "Update" {
        label = format!("{label} using {}", entry["apiVersion"].as_str().unwrap_or(""));
    }
    label
}

/// One owned field: keys from the root; a finalizer is `v:"name"` under `finalizers`.
type FieldPath = Vec<String>;

/// The fields an applied configuration sets, as server-side apply owns them on the main
/// resource: every leaf of `spec` (and any other top-level field but `status`), each label,
/// annotation and finalizer. Lists other than finalizers are atomic; an empty object is a leaf.
fn applied_fields(applied: &Value) -> Vec<FieldPath> {
    fn walk(value: &Value, path: &mut FieldPath, out: &mut Vec<FieldPath>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    path.push(key.clone());
                    walk(child, path, out);
                    path.pop();
                }
            }
            _ => out.push(path.clone()),
        }
    }
    let mut out = Vec::new();
    for (key, value) in applied.as_object().into_iter().flatten() {
        match key.as_str() {
            "apiVersion" | "kind" | "status" => {}
            "metadata" => {
                for map in ["labels", "annotations"] {
                    for k in value[map].as_object().into_iter().flatten().map(|(k, _)| k) {
                        out.push(vec!["metadata".into(), map.into(), k.clone()]);
                    }
                }
                for f in value["finalizers"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                    out.push(vec![
                        "metadata".into(),
                        "finalizers".into(),
                        format!("v:{}", serde_json::to_string(f).unwrap()),
                    ]);
                }
            }
            _ => walk(value, &mut vec![key.clone()], &mut out),
        }
    }
    out
}

/// `fieldsV1` of a set of paths.
fn to_fields_v1(paths: &[FieldPath]) -> Value {
    let mut root = Map::new();
    for path in paths {
        let mut node = &mut root;
        for key in path {
            let key = if key.starts_with("v:") { key.clone() } else { format!("f:{key}") };
            node = node.entry(key).or_insert_with(|| json!({})).as_object_mut().unwrap();
        }
    }
    Value::Object(root)
}

/// The paths a `fieldsV1` owns (its leaves).
fn from_fields_v1(fields: &Value) -> Vec<FieldPath> {
    fn walk(node: &Map<String, Value>, path: &mut FieldPath, out: &mut Vec<FieldPath>) {
        if (node.is_empty() || node.contains_key(".")) && !path.is_empty() {
            out.push(path.clone());
        }
        for (key, child) in node {
            let key = if let Some(f) = key.strip_prefix("f:") {
                f.to_owned()
            } else if key.starts_with("v:") {
                key.clone()
            } else {
                continue;
            };
            path.push(key);
            walk(child.as_object().unwrap_or(&Map::new()), path, out);
            path.pop();
        }
    }
    let mut out = Vec::new();
    if let Some(map) = fields.as_object() {
        walk(map, &mut Vec::new(), &mut out);
    }
    out
}

/// How structured-merge-diff prints a path.
fn path_string(path: &FieldPath) -> String {
    path.iter()
        .map(|k| match k.strip_prefix("v:") {
            Some(v) => format!("[={v}]"),
            None => format!(".{k}"),
        })
        .collect()
}

fn value_at<'a>(object: &'a Value, path: &FieldPath) -> Option<&'a Value> {
    let mut current = object;
    for key in path {
        if let Some(v) = key.strip_prefix("v:") {
            let wanted: Value = serde_json::from_str(v).ok()?;
            return current.as_array()?.iter().find(|x| **x == wanted);
        }
        current = current.get(key.as_str())?;
    }
    Some(current)
}

fn remove_at(object: &mut Value, path: &FieldPath) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut current = object;
    for key in parents {
        match current.get_mut(key.as_str()) {
            Some(next) => current = next,
            None => return,
        }
    }
    if let Some(v) = last.strip_prefix("v:") {
        if let (Some(items), Ok(wanted)) = (current.as_array_mut(), serde_json::from_str::<Value>(v)) {
            items.retain(|x| *x != wanted);
        }
    } else if let Some(map) = current.as_object_mut() {
        map.remove(last);
    }
}

/// Objects merge key by key; lists and scalars are replaced; finalizers are a set.
fn merge_applied(target: &mut Value, applied: &Value, path: &mut Vec<String>) {
    match (target, applied) {
        (Value::Object(t), Value::Object(a)) => {
            for (key, value) in a {
                path.push(key.clone());
                if path == &["metadata", "finalizers"] {
                    let mut items = t.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
                    for f in value.as_array().into_iter().flatten() {
                        if !items.contains(f) {
                            items.push(f.clone());
                        }
                    }
                    t.insert(key.clone(), Value::Array(items));
                } else {
                    match t.get_mut(key) {
                        Some(existing) if existing.is_object() && value.is_object() => {
                            merge_applied(existing, value, path)
                        }
                        _ => {
                            t.insert(key.clone(), value.clone());
                        }
                    }
                }
                path.pop();
            }
        }
        (target, applied) => *target = applied.clone(),
    }
}

/// The fields of an object as field ownership counts them: for the main resource, as
/// [`applied_fields`]; for the status subresource, status's top-level fields.
fn owned_fields(object: &Value, status: bool) -> Vec<FieldPath> {
    if status {
        return object["status"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| vec!["status".to_owned(), k.clone()])
            .collect();
    }
    applied_fields(object)
}

/// Records a write that is not an apply (create, PUT, merge/JSON/strategic patch) in
/// `managedFields`, as kube-apiserver's field manager does: the writer (`manager`, operation
/// `Update`) comes to own every field it set or changed, and fields it changed or removed leave
/// every other manager's set. An Update never conflicts. `old` is `None` for a create.
pub fn record_update(old: Option<&Value>, new: &mut Value, manager: &str, status: bool, now: &str) {
    if manager.is_empty() {
        return;
    }
    let empty = json!({});
    let old = old.unwrap_or(&empty);
    let before = owned_fields(old, status);
    let after = owned_fields(new, status);
    let set: Vec<FieldPath> = after.iter().filter(|p| value_at(old, p) != value_at(new, p)).cloned().collect();
    let removed: Vec<FieldPath> = before.iter().filter(|p| value_at(new, p).is_none()).cloned().collect();
    if set.is_empty() && removed.is_empty() {
        return;
    }
    let in_scope = |e: &Value| {
        let sub = e.get("subresource").and_then(Value::as_str).unwrap_or("");
        if status { sub == "status" } else { sub.is_empty() }
    };
    let touches = |owned: &FieldPath| set.iter().chain(&removed).any(|p| owned.starts_with(p) || p.starts_with(owned));
    let mut managed: Vec<Value> = new["metadata"]["managedFields"].as_array().cloned().unwrap_or_default();
    let mut mine: Vec<FieldPath> = Vec::new();
    for entry in managed.iter_mut().filter(|e| in_scope(e)) {
        let owned = from_fields_v1(&entry["fieldsV1"]);
        if entry["manager"] == manager && entry["operation"] == "Update" {
            mine = owned.into_iter().filter(|p| !removed.contains(p)).collect();
            entry["fieldsV1"] = json!({});
        } else {
            let kept: Vec<FieldPath> = owned.iter().filter(|p| !touches(p)).cloned().collect();
            if kept.len() != owned.len() {
                entry["fieldsV1"] = to_fields_v1(&kept);
            }
        }
    }
    for path in set {
        if !mine.contains(&path) {
            mine.push(path);
        }
    }
    managed.retain(|e| !(in_scope(e) && e["manager"] == manager && e["operation"] == "Update"));
    managed.retain(|e| !in_scope(e) || !from_fields_v1(&e["fieldsV1"]).is_empty());
    if !mine.is_empty() {
        let mut entry = json!({
            "manager": manager,
            "operation": "Update",
            "apiVersion": new["apiVersion"],
            "time": now,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(&mine),
        });
        if status {
            entry["subresource"] = json!("status");
        }
        managed.push(entry);
    }
    if managed.is_empty() {
        if let Some(meta) = new["metadata"].as_object_mut() {
            meta.remove("managedFields");
        }
    } else {
        new["metadata"]["managedFields"] = Value::Array(managed);
    }
}

/// `lastAppliedManager`: kube-apiserver lets `kubectl`'s first server-side apply take over fields
/// that client-side apply set, without conflicts: when every conflict is on a field of the
/// object's `kubectl.kubernetes.io/last-applied-configuration`, the apply is forced.
pub fn upgrades_client_side_apply(live: &Value, manager: &str, conflicts: &[Conflict]) -> bool {
    if manager != "kubectl" {
        return false;
    }
    let Some(last) = live["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
    else {
        return false;
    };
    let allowed: Vec<String> = applied_fields(&last).iter().map(path_string).collect();
    conflicts.iter().all(|c| allowed.contains(&c.path))
}

/// Server-side apply of the main resource (not its status): `stored` is the current object
/// (for a create, the new object's skeleton). The manager comes to own every field it
/// applies; fields it owned before and no longer applies are removed unless another manager
/// owns them too; a field another manager owns with a different value is a conflict unless
/// `force`, which moves the field to this manager.
pub fn apply_main(
    stored: &Value,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, Vec<Conflict>> {
    let mut object = stored.clone();
    let mut managed: Vec<Value> = object["metadata"]["managedFields"].as_array().cloned().unwrap_or_default();
    let is_mine = |e: &Value| {
        e["manager"] == manager && e["operation"] == "Apply" && e.get("subresource").is_none_or(|s| s == "")
    };
    let is_main = |e: &Value| e.get("subresource").is_none_or(|s| s == "");
    let fields = applied_fields(applied);

    let mut conflicts = Vec::new();
    for entry in managed.iter_mut().filter(|e| is_main(e) && !is_mine(e)) {
        let owned = from_fields_v1(&entry["fieldsV1"]);
        let mut kept = owned.clone();
        for path in &fields {
            if owned.contains(path) && value_at(stored, path) != value_at(applied, path) {
                if force {
                    kept.retain(|p| p != path);
                } else {
                    conflicts.push(Conflict { manager: manager_label(entry), path: path_string(path) });
                }
            }
        }
        if kept.len() != owned.len() {
            entry["fieldsV1"] = to_fields_v1(&kept);
        }
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    let others: Vec<FieldPath> =
        managed.iter().filter(|e| is_main(e) && !is_mine(e)).flat_map(|e| from_fields_v1(&e["fieldsV1"])).collect();
    let mine_before: Vec<FieldPath> =
        managed.iter().filter(|e| is_mine(e)).flat_map(|e| from_fields_v1(&e["fieldsV1"])).collect();
    for path in mine_before.iter().filter(|p| !fields.contains(p) && !others.contains(p)) {
        remove_at(&mut object, path);
        // A map or struct left empty by the removal goes too (its owner applied it, as
        // structured-merge-diff's "." entry records), unless someone still sets something in it.
        for depth in (2..path.len()).rev() {
            let parent = &path[..depth];
            let still_used = fields.iter().chain(&others).any(|p| p.starts_with(parent));
            if still_used
                || !value_at(&object, &parent.to_vec()).is_some_and(|v| v.as_object().is_some_and(Map::is_empty))
            {
                break;
            }
            remove_at(&mut object, &parent.to_vec());
        }
    }
    let mut config = applied.clone();
    if let Some(map) = config.as_object_mut() {
        map.remove("status");
        map.remove("apiVersion");
        map.remove("kind");
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.retain(|k, _| matches!(k.as_str(), "labels" | "annotations" | "finalizers"));
        }
    }
    merge_applied(&mut object, &config, &mut Vec::new());

    managed.retain(|e| !is_mine(e));
    managed.retain(|e| !is_main(e) || !from_fields_v1(&e["fieldsV1"]).is_empty());
    if !fields.is_empty() {
        managed.push(json!({
            "manager": manager,
            "operation": "Apply",
            "apiVersion": applied["apiVersion"],
            "time": now,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(&fields),
        }));
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
        assert_eq!(
            conflict_message(&err),
            "Apply failed with 1 conflict: conflict with \"them\" with subresource \"status\": .status.a"
        );
        let forced = apply_status(&theirs, &json!({"status": {"a": 2}}), "us", true, "t").unwrap();
        assert_eq!(forced["status"]["a"], 2);
    }

    fn spec(body: Value) -> Value {
        json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"}, "spec": body})
    }

    #[test]
    fn apply_of_the_main_resource_owns_leaves_and_removes_what_it_dropped() {
        let stored = json!({"metadata": {"name": "a"}, "spec": {}});
        let first = apply_main(&stored, &spec(json!({"a": 1, "m": {"x": "1", "y": "2"}})), "one", false, "t").unwrap();
        assert_eq!(first["spec"], json!({"a": 1, "m": {"x": "1", "y": "2"}}));
        assert_eq!(
            first["metadata"]["managedFields"][0]["fieldsV1"],
            json!({"f:spec": {"f:a": {}, "f:m": {"f:x": {}, "f:y": {}}}})
        );
        let second = apply_main(&first, &spec(json!({"a": 1, "m": {"x": "1"}})), "one", false, "t").unwrap();
        assert_eq!(second["spec"], json!({"a": 1, "m": {"x": "1"}}));
    }

    #[test]
    fn a_second_manager_conflicts_on_a_different_value_shares_an_equal_one_and_forces() {
        let stored = json!({"metadata": {"name": "a"}, "spec": {}});
        let first = apply_main(&stored, &spec(json!({"a": 1, "b": 2})), "one", false, "t").unwrap();
        let shared = apply_main(&first, &spec(json!({"a": 1})), "two", false, "t").unwrap();
        assert_eq!(shared["metadata"]["managedFields"].as_array().unwrap().len(), 2);
        let err = apply_main(&shared, &spec(json!({"a": 5, "b": 6})), "two", false, "t").unwrap_err();
        assert_eq!(
            conflict_message(&err),
            "Apply failed with 2 conflicts: conflicts with \"one\":\n- .spec.a\n- .spec.b"
        );
        let forced = apply_main(&shared, &spec(json!({"a": 5})), "two", true, "t").unwrap();
        assert_eq!(forced["spec"], json!({"a": 5, "b": 2}));
        let one =
            forced["metadata"]["managedFields"].as_array().unwrap().iter().find(|e| e["manager"] == "one").unwrap();
        assert_eq!(one["fieldsV1"], json!({"f:spec": {"f:b": {}}}), "forcing moves the field");
    }

    #[test]
    fn finalizers_and_labels_are_owned_one_by_one() {
        let stored = json!({"metadata": {"name": "a", "finalizers": ["x/keep"], "labels": {"other": "1"}}});
        let applied = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a", "finalizers": ["x/mine"], "labels": {"app": "a"}}});
        let first = apply_main(&stored, &applied, "one", false, "t").unwrap();
        assert_eq!(first["metadata"]["finalizers"], json!(["x/keep", "x/mine"]));
        assert_eq!(first["metadata"]["labels"], json!({"other": "1", "app": "a"}));
        let dropped = json!({"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a"}});
        let second = apply_main(&first, &dropped, "one", false, "t").unwrap();
        assert_eq!(second["metadata"]["finalizers"], json!(["x/keep"]));
        assert_eq!(second["metadata"]["labels"], json!({"other": "1"}));
    }

    #[test]
    fn an_update_takes_the_fields_it_changes_from_their_appliers() {
        let stored = json!({"apiVersion": "x/v1", "metadata": {"name": "a"}, "spec": {}});
        let applied = apply_main(&stored, &spec(json!({"a": 1, "b": 2})), "applier", false, "t").unwrap();
        let mut edited = applied.clone();
        edited["spec"]["a"] = json!(5);
        edited["spec"].as_object_mut().unwrap().remove("b");
        edited["spec"]["c"] = json!(3);
        record_update(Some(&applied), &mut edited, "editor", false, "t");
        let managed = edited["metadata"]["managedFields"].as_array().unwrap();
        assert_eq!(managed.len(), 1, "the applier owns nothing any more: {managed:?}");
        assert_eq!(managed[0]["manager"], "editor");
        assert_eq!(managed[0]["operation"], "Update");
        assert_eq!(managed[0]["fieldsV1"], json!({"f:spec": {"f:a": {}, "f:c": {}}}));
        // The applier applying its old value again now conflicts with the editor.
        let err = apply_main(&edited, &spec(json!({"a": 1})), "applier", false, "t").unwrap_err();
        assert_eq!(
            conflict_message(&err),
            "Apply failed with 1 conflict: conflict with \"editor\" using x/v1: .spec.a"
        );
        // A write that changes nothing records nothing.
        let mut same = edited.clone();
        record_update(Some(&edited), &mut same, "other", false, "t");
        assert_eq!(same, edited);
    }
}
