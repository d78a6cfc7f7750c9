//! Discovery and OpenAPI v3, as kube-apiserver serves them to `kubectl`:
//!
//! - aggregated discovery (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList` at `/api` and
//!   `/apis`, when the client's `Accept` asks for it, as client-go 1.30+ does), and the legacy
//!   documents (`APIVersions`, `APIGroupList`, `APIGroup`, `APIResourceList`) otherwise;
//! - `/openapi/v3` (the index of group-versions) and `/openapi/v3/api/v1`,
//!   `/openapi/v3/apis/<group>/<version>`: custom resources built from the CRD schema the way
//!   apiextensions-apiserver publishes it (apiVersion, kind and `metadata` added), built-in
//!   kinds from their Kubernetes schemas; each with `x-kubernetes-group-version-kind` and PATCH
//!   operations listing `fieldValidation`, so kubectl validates on the server.
//!
//! `openapi_k8s.json` holds the schemas of the built-in kinds served (Namespace, core and
//! `events.k8s.io` Event, Lease) and of `ObjectMeta`, `ListMeta` and what they refer to, with the
//! real server's descriptions, as k8s-openapi 0.29 (`v1_33`, feature `schemars`) generates them
//! under schemars' OpenAPI 3 settings (`#/components/schemas/...` references). They lack the
//! real documents' `x-kubernetes-patch-strategy` extensions, so kubectl's strategic merge
//! patches of built-in kinds replace lists whole (as the emulator applies them anyway).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde_json::{Map, Value, json};

use crate::resources::{ResourceType, Resources};

pub const AGGREGATED_V2: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Which discovery document a client's `Accept` asks for.
#[derive(Debug, PartialEq)]
pub enum Wanted {
    Aggregated,
    Legacy,
    /// Only media types the emulator does not serve (e.g. aggregated v2beta1 alone, protobuf).
    Unsupported(String),
}

/// One `Accept` entry: the media type and its parameters.
pub fn media_types(accept: &str) -> Vec<(String, BTreeMap<String, String>)> {
    accept
        .split(',')
        .filter(|e| !e.trim().is_empty())
        .map(|entry| {
            let mut parts = entry.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let params = parts
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
                .collect();
            (media, params)
        })
        .collect()
}

pub fn wanted(accept: &str) -> Wanted {
    if accept.trim().is_empty() {
        return Wanted::Legacy;
    }
    let entries = media_types(accept);
    for (media, params) in &entries {
        let get = |k: &str| params.get(k).map(String::as_str);
        match (media.as_str(), get("as")) {
            ("application/json", Some("APIGroupDiscoveryList"))
                if get("g") == Some("apidiscovery.k8s.io") && get("v") == Some("v2") =>
            {
                return Wanted::Aggregated;
            }
            ("application/json" | "*/*" | "application/*", None) => return Wanted::Legacy,
            _ => {}
        }
    }
    Wanted::Unsupported(accept.to_owned())
}

/// A group's versions, each with its resources.
type Versions<'a> = Vec<(String, Vec<&'a ResourceType>)>;

/// Resources grouped by group, then version, in the order they were added (built-ins first).
fn groups(resources: &Resources) -> Vec<(String, Versions<'_>)> {
    let mut groups: Vec<(String, Versions<'_>)> = Vec::new();
    for rt in resources.all() {
        let group = match groups.iter_mut().find(|(g, _)| *g == rt.group) {
            Some(group) => group,
            None => {
                groups.push((rt.group.clone(), Vec::new()));
                groups.last_mut().unwrap()
            }
        };
        match group.1.iter_mut().find(|(v, _)| *v == rt.version) {
            Some(version) => version.1.push(rt),
            None => group.1.push((rt.version.clone(), vec![rt])),
        }
    }
    groups
}

fn gvk(rt: &ResourceType) -> Value {
    json!({"group": rt.group, "version": rt.version, "kind": rt.kind})
}

fn subresource_verbs(subresource: &str) -> Value {
    match subresource {
        "finalize" => json!(["update"]),
        _ => json!(["get", "patch", "update"]),
    }
}

fn aggregated_resource(rt: &ResourceType) -> Value {
    let mut resource = json!({
        "resource": rt.plural,
        "responseKind": gvk(rt),
        "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": rt.singular,
        "verbs": rt.verbs(),
    });
    if !rt.short_names.is_empty() {
        resource["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        resource["categories"] = json!(rt.categories);
    }
    let subresources: Vec<Value> = rt
        .subresources()
        .into_iter()
        .map(|s| json!({"subresource": s, "responseKind": gvk(rt), "verbs": subresource_verbs(s)}))
        .collect();
    if !subresources.is_empty() {
        resource["subresources"] = Value::Array(subresources);
    }
    resource
}

/// `/api` (core: true) or `/apis` as an `APIGroupDiscoveryList`.
pub fn aggregated(resources: &Resources, core: bool) -> Value {
    let items: Vec<Value> = groups(resources)
        .into_iter()
        .filter(|(group, _)| group.is_empty() == core)
        .map(|(group, versions)| {
            let mut metadata = json!({"creationTimestamp": null});
            if !group.is_empty() {
                metadata["name"] = json!(group);
            }
            let versions: Vec<Value> = versions
                .iter()
                .map(|(version, types)| {
                    json!({
                        "version": version,
                        "resources": types.iter().map(|rt| aggregated_resource(rt)).collect::<Vec<_>>(),
                        "freshness": "Current",
                    })
                })
                .collect();
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

/// `/api` as `APIVersions`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn api_group(group: &str, versions: &[(String, Vec<&ResourceType>)]) -> Value {
    let versions: Vec<Value> =
        versions.iter().map(|(v, _)| json!({"groupVersion": format!("{group}/{v}"), "version": v})).collect();
    json!({"name": group, "versions": versions, "preferredVersion": versions[0]})
}

/// `/apis` as `APIGroupList`.
pub fn api_group_list(resources: &Resources) -> Value {
    let groups: Vec<Value> = groups(resources)
        .into_iter()
        .filter(|(group, _)| !group.is_empty())
        .map(|(group, versions)| api_group(&group, &versions))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>` as `APIGroup`, if the group is served.
pub fn api_group_of(resources: &Resources, name: &str) -> Option<Value> {
    groups(resources).into_iter().find(|(group, _)| group == name && !group.is_empty()).map(|(group, versions)| {
        let mut doc = api_group(&group, &versions);
        doc["kind"] = json!("APIGroup");
        doc["apiVersion"] = json!("v1");
        doc
    })
}

/// `/api/v1` or `/apis/<group>/<version>` as `APIResourceList`, if served.
pub fn api_resource_list(resources: &Resources, group: &str, version: &str) -> Option<Value> {
    let types: Vec<&ResourceType> =
        resources.all().iter().filter(|rt| rt.group == group && rt.version == version).collect();
    if types.is_empty() {
        return None;
    }
    let mut list = Vec::new();
    for rt in types {
        let mut resource = json!({
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": rt.verbs(),
        });
        if !rt.short_names.is_empty() {
            resource["shortNames"] = json!(rt.short_names);
        }
        if !rt.categories.is_empty() {
            resource["categories"] = json!(rt.categories);
        }
        list.push(resource);
        for sub in rt.subresources() {
            list.push(json!({
                "name": format!("{}/{sub}", rt.plural),
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": subresource_verbs(sub),
            }));
        }
    }
    let group_version = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": list}))
}

static K8S_SCHEMAS: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(include_str!("openapi_k8s.json")).expect("openapi_k8s.json parses"));

/// Group-versions that have an OpenAPI v3 document: all served.
fn openapi_group_versions(resources: &Resources) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for rt in resources.all() {
        let gv = (rt.group.clone(), rt.version.clone());
        if !out.contains(&gv) {
            out.push(gv);
        }
    }
    out
}

/// A stable digest of a document, for the `hash` of its URL.
fn digest(doc: &Value) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    doc.to_string().hash(&mut hasher);
    format!("{:016X}", hasher.finish())
}

/// `/openapi/v3`: where each group-version's document is.
pub fn openapi_index(resources: &Resources) -> Value {
    let mut paths = Map::new();
    for (group, version) in openapi_group_versions(resources) {
        let doc = openapi_document(resources, &group, &version).expect("listed group-version has a document");
        let key = if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") };
        paths.insert(key.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={}", digest(&doc))}));
    }
    json!({"paths": paths})
}

/// The schema name apiextensions-apiserver gives a kind: the group reversed, then version and
/// kind (`rs.operator.aws.apigatewayv2.v1alpha1.IntegrationResponse`).
fn schema_name(rt: &ResourceType, kind: &str) -> String {
    let reversed: Vec<&str> = rt.group.split('.').rev().collect();
    format!("{}.{}.{kind}", reversed.join("."), rt.version)
}

const API_VERSION_DOC: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DOC: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn query(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn operation(
    rt: &ResourceType,
    action: &str,
    id: &str,
    schema: &Value,
    params: Vec<Value>,
    body: Option<&[&str]>,
) -> Value {
    let content: Map<String, Value> =
        ["application/json", "application/yaml"].iter().map(|m| (m.to_string(), json!({"schema": schema}))).collect();
    let mut op = json!({
        "tags": [format!("{}_{}", rt.group, rt.version)],
        "operationId": id,
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": content}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(rt),
    });
    if let Some(types) = body {
        let content: Map<String, Value> =
            types.iter().map(|m| (m.to_string(), json!({"schema": {"type": "object"}}))).collect();
        op["requestBody"] = json!({"content": content, "required": true});
    }
    op
}

/// The Kubernetes schema of a built-in kind (`io.k8s.api.coordination.v1.Lease`).
fn builtin_schema_name(rt: &ResourceType) -> String {
    let package = match rt.group.as_str() {
        "" => "core",
        group => group.split('.').next().unwrap_or(group),
    };
    format!("io.k8s.api.{package}.{}.{}", rt.version, rt.kind)
}

/// A custom resource's schema as apiextensions-apiserver publishes it.
fn crd_schema(crd: &Value) -> Value {
    let mut schema = crd.clone();
    let properties = schema["properties"].as_object_mut().map(std::mem::take).unwrap_or_default();
    let mut with_meta = Map::new();
    with_meta.insert("apiVersion".into(), json!({"description": API_VERSION_DOC, "type": "string"}));
    with_meta.insert("kind".into(), json!({"description": KIND_DOC, "type": "string"}));
    with_meta.insert(
        "metadata".into(),
        json!({
            "allOf": [reference("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")],
            "default": {},
            "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
        }),
    );
    with_meta.extend(properties);
    schema["properties"] = Value::Object(with_meta);
    schema
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/<group>/<version>`, if served.
pub fn openapi_document(resources: &Resources, group: &str, version: &str) -> Option<Value> {
    let types: Vec<&ResourceType> =
        resources.all().iter().filter(|rt| rt.group == group && rt.version == version).collect();
    if types.is_empty() {
        return None;
    }
    let mut schemas: Map<String, Value> = K8S_SCHEMAS.as_object().cloned().unwrap_or_default();
    let mut paths = Map::new();
    for rt in types {
        let (name, mut schema) = match &rt.schema {
            Some(crd) => (schema_name(rt, &rt.kind), crd_schema(crd.openapi())),
            None => {
                let name = builtin_schema_name(rt);
                let schema = schemas.get(&name).cloned().unwrap_or_else(|| panic!("openapi_k8s.json lacks {name}"));
                (name, schema)
            }
        };
        let list_name = format!("{name}List");
        schema["x-kubernetes-group-version-kind"] = json!([gvk(rt)]);
        schemas.insert(name.clone(), schema);
        schemas.insert(
            list_name.clone(),
            json!({
                "description": format!("{} is a list of {}", format!("{}List", rt.kind), rt.kind),
                "type": "object",
                "required": ["items"],
                "properties": {
                    "apiVersion": {"description": API_VERSION_DOC, "type": "string"},
                    "items": {"description": format!("List of {}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md", rt.plural), "type": "array", "items": reference(&name)},
                    "kind": {"description": KIND_DOC, "type": "string"},
                    "metadata": {"allOf": [reference("io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta")], "default": {}, "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"},
                },
                "x-kubernetes-group-version-kind": [{"group": rt.group, "version": rt.version, "kind": format!("{}List", rt.kind)}],
            }),
        );
        let object = reference(&name);
        let list = reference(&list_name);
        let write = || {
            vec![
                query("dryRun", "When present, indicates that modifications should not be persisted."),
                query(
                    "fieldManager",
                    "fieldManager is a name associated with the actor or entity that is making these changes.",
                ),
                query(
                    "fieldValidation",
                    "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict",
                ),
            ]
        };
        let list_params = || {
            [
                "allowWatchBookmarks",
                "continue",
                "fieldSelector",
                "labelSelector",
                "limit",
                "resourceVersion",
                "resourceVersionMatch",
                "sendInitialEvents",
                "timeoutSeconds",
                "watch",
            ]
            .iter()
            .map(|p| query(p, ""))
            .collect::<Vec<_>>()
        };
        let kind = &rt.kind;
        let root = if group.is_empty() { format!("/api/{version}") } else { format!("/apis/{group}/{version}") };
        let (base, scope) = if rt.namespaced {
            (format!("{root}/namespaces/{{namespace}}/{}", rt.plural), "Namespaced")
        } else {
            (format!("{root}/{}", rt.plural), "")
        };
        let path_param = |name: &str| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}});
        let mut collection_params = vec![];
        if rt.namespaced {
            collection_params.push(path_param("namespace"));
        }
        paths.insert(
            base.clone(),
            json!({
                "get": operation(rt, "list", &format!("list{scope}{kind}"), &list, list_params(), None),
                "post": operation(rt, "post", &format!("create{scope}{kind}"), &object, write(), Some(&["application/json", "application/yaml"])),
                "delete": operation(rt, "deletecollection", &format!("deletecollection{scope}{kind}"), &reference("io.k8s.apimachinery.pkg.apis.meta.v1.Status"), list_params(), None),
                "parameters": collection_params.clone(),
            }),
        );
        let mut item_params = collection_params.clone();
        item_params.insert(0, path_param("name"));
        let mut patch_params = write();
        patch_params.push(query("force", "Force is going to \"force\" Apply requests."));
        // Custom resources take no strategic merge patch (a 415), built-in kinds do.
        let patch_types: &[&str] = if rt.builtin.is_some() {
            &[
                "application/json-patch+json",
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
                "application/apply-patch+yaml",
            ]
        } else {
            &["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"]
        };
        paths.insert(
            format!("{base}/{{name}}"),
            json!({
                "get": operation(rt, "get", &format!("read{scope}{kind}"), &object, vec![query("resourceVersion", "")], None),
                "put": operation(rt, "put", &format!("replace{scope}{kind}"), &object, write(), Some(&["application/json", "application/yaml"])),
                "patch": operation(rt, "patch", &format!("patch{scope}{kind}"), &object, patch_params.clone(), Some(patch_types)),
                "delete": operation(rt, "delete", &format!("delete{scope}{kind}"), &reference("io.k8s.apimachinery.pkg.apis.meta.v1.Status"), vec![query("gracePeriodSeconds", ""), query("propagationPolicy", "")], None),
                "parameters": item_params.clone(),
            }),
        );
        if rt.status_subresource {
            paths.insert(
                format!("{base}/{{name}}/status"),
                json!({
                    "get": operation(rt, "get", &format!("read{scope}{kind}Status"), &object, vec![], None),
                    "put": operation(rt, "put", &format!("replace{scope}{kind}Status"), &object, write(), Some(&["application/json", "application/yaml"])),
                    "patch": operation(rt, "patch", &format!("patch{scope}{kind}Status"), &object, patch_params, Some(patch_types)),
                    "parameters": item_params,
                }),
            );
        }
        if rt.namespaced {
            paths.insert(
                format!("{root}/{}", rt.plural),
                json!({"get": operation(rt, "list", &format!("list{kind}ForAllNamespaces"), &list, list_params(), None)}),
            );
        }
    }
    // Responses name Status; the emulator's document carries a short one.
    schemas.entry("io.k8s.apimachinery.pkg.apis.meta.v1.Status").or_insert_with(|| {
        json!({"description": "Status is a return value for calls that don't return other objects.", "type": "object"})
    });
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes CRD Swagger", "version": "v0.1.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_choose_the_document() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(wanted(kubectl), Wanted::Aggregated);
        assert_eq!(wanted("application/json, */*"), Wanted::Legacy);
        assert_eq!(wanted(""), Wanted::Legacy);
        assert!(matches!(
            wanted("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"),
            Wanted::Unsupported(_)
        ));
    }
}
