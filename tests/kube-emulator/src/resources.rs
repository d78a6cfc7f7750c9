//! The resource types served: built-ins the operator uses, plus custom resources from CRDs.

use std::sync::Arc;

use serde_json::Value;

use crate::builtin::Builtin;
use crate::schema::Schema;
use crate::table::{Column, JsonPath};

#[derive(Clone)]
pub struct ResourceType {
    /// Empty for the core group.
    pub group: String,
    pub version: String,
    pub plural: String,
    pub kind: String,
    pub namespaced: bool,
    pub status_subresource: bool,
    /// metadata.generation is kept (custom resources): bumped when anything but metadata and
    /// status changes, and when deletion starts.
    pub generation: bool,
    pub schema: Option<Arc<Schema>>,
    /// The built-in kinds' own rules; `None` for custom resources.
    pub builtin: Option<Builtin>,
    /// For discovery: `spec.names.singular`, `shortNames`, `categories` of a CRD, or the
    /// built-in kind's.
    pub singular: String,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// A CRD version's `additionalPrinterColumns` (Table responses).
    pub columns: Vec<Column>,
    /// How stored objects are served through this resource.
    pub view: View,
}

/// Core `v1` Events are the `events.k8s.io/v1` Events read through the core API, converted as
/// kube-apiserver converts them (one storage, two APIs). The emulator serves that view
/// read-only.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum View {
    Stored,
    CoreEvent,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// `integrationresponses.apigatewayv2.aws.operator.rs`, as NotFound, AlreadyExists and
    /// Conflict errors name it (the request's group and resource).
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    /// The group that 422 messages and details name: the internal type's, which for Events
    /// is the core group (`Event "x" is invalid`).
    pub fn invalid_group(&self) -> &str {
        if self.builtin == Some(Builtin::Event) { "" } else { &self.group }
    }

    /// `Lease.coordination.k8s.io`, `Event`, `IntegrationResponse.apigatewayv2.aws.operator.rs`.
    pub fn qualified_kind(&self) -> String {
        match self.invalid_group() {
            "" => self.kind.clone(),
            group => format!("{}.{group}", self.kind),
        }
    }

    /// `AllowCreateOnUpdate` of the registry strategy.
    pub fn allow_create_on_update(&self) -> bool {
        self.builtin.is_some_and(Builtin::allow_create_on_update)
    }

    /// `AllowUnconditionalUpdate`: custom resources need a resourceVersion on update.
    pub fn allow_unconditional_update(&self) -> bool {
        self.builtin.is_some_and(Builtin::allow_unconditional_update)
    }

    /// The verbs discovery lists, as kube-apiserver lists them for the resource.
    pub fn verbs(&self) -> &'static [&'static str] {
        match (self.builtin, self.view) {
            (Some(Builtin::Namespace), _) => &["create", "delete", "get", "list", "patch", "update", "watch"],
            (None, _) => &["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
            _ => &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
        }
    }

    /// Subresources discovery lists (the real server's; the emulator implements `status` of
    /// custom resources only, the others answer 501).
    pub fn subresources(&self) -> Vec<&'static str> {
        match self.builtin {
            Some(Builtin::Namespace) => vec!["finalize", "status"],
            _ if self.status_subresource => vec!["status"],
            _ => vec![],
        }
    }

    fn builtin(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool, short_names: &[&str]) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            kind: kind.into(),
            namespaced,
            status_subresource: false,
            generation: false,
            schema: None,
            builtin: Builtin::of(group, kind),
            singular: kind.to_lowercase(),
            short_names: short_names.iter().map(|s| s.to_string()).collect(),
            categories: Vec::new(),
            columns: Vec::new(),
            view: View::Stored,
        }
    }
}

pub struct Resources {
    types: Vec<ResourceType>,
}

impl Resources {
    pub fn builtin() -> Self {
        Self {
            types: vec![
                ResourceType::builtin("", "v1", "namespaces", "Namespace", false, &["ns"]),
                ResourceType::builtin("events.k8s.io", "v1", "events", "Event", true, &["ev"]),
                ResourceType::builtin("coordination.k8s.io", "v1", "leases", "Lease", true, &[]),
                // After events.k8s.io, so that `by_plural("events")` names the stored kind.
                ResourceType {
                    view: View::CoreEvent,
                    builtin: Some(Builtin::Event),
                    ..ResourceType::builtin("", "v1", "events", "Event", true, &["ev"])
                },
            ],
        }
    }

    /// Adds every served version of a CustomResourceDefinition (YAML).
    pub fn add_crd(&mut self, yaml: &str) -> Result<(), String> {
        let crd: Value = serde_saphyr::from_str(yaml).map_err(|e| format!("CRD is not valid YAML: {e}"))?;
        if crd["kind"] != "CustomResourceDefinition" {
            return Err("not a CustomResourceDefinition".into());
        }
        let spec = &crd["spec"];
        let text = |v: &Value, what: &str| v.as_str().map(str::to_owned).ok_or(format!("CRD has no {what}"));
        let group = text(&spec["group"], "spec.group")?;
        let plural = text(&spec["names"]["plural"], "spec.names.plural")?;
        let kind = text(&spec["names"]["kind"], "spec.names.kind")?;
        let namespaced = spec["scope"] == "Namespaced";
        // Objects are stored by plural: two groups with one plural would share their objects,
        // which kube-apiserver never does. Refused rather than served wrongly.
        if let Some(other) = self.types.iter().find(|t| t.plural == plural && t.group != group) {
            return Err(format!(
                "kube-emulator stores objects by plural, so it cannot serve {plural}.{group} beside {plural}.{}; \
                 install one of them per emulator",
                other.group
            ));
        }
        let names = |v: &Value| -> Vec<String> {
            v.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
        };
        let singular = spec["names"]["singular"].as_str().map_or_else(|| kind.to_lowercase(), str::to_owned);
        for version in spec["versions"].as_array().ok_or("CRD has no versions")? {
            if version["served"] != true {
                continue;
            }
            let openapi = version["schema"]["openAPIV3Schema"].clone();
            let mut columns = Vec::new();
            for column in version["additionalPrinterColumns"].as_array().into_iter().flatten() {
                let json_path = text(&column["jsonPath"], "additionalPrinterColumns[].jsonPath")?;
                columns.push(Column {
                    name: text(&column["name"], "additionalPrinterColumns[].name")?,
                    type_: text(&column["type"], "additionalPrinterColumns[].type")?,
                    format: column["format"].as_str().unwrap_or("").to_owned(),
                    description: column["description"].as_str().map_or_else(
                        || format!("Custom resource definition column (in JSONPath format): {json_path}"),
                        str::to_owned,
                    ),
                    priority: column["priority"].as_i64().unwrap_or(0),
                    path: JsonPath::parse(&json_path)?,
                });
            }
            self.types.push(ResourceType {
                group: group.clone(),
                version: text(&version["name"], "version name")?,
                plural: plural.clone(),
                kind: kind.clone(),
                namespaced,
                status_subresource: version["subresources"].get("status").is_some(),
                generation: true,
                schema: Some(Arc::new(Schema::new(openapi, &kind)?)),
                builtin: None,
                singular: singular.clone(),
                short_names: names(&spec["names"]["shortNames"]),
                categories: names(&spec["names"]["categories"]),
                columns,
                view: View::Stored,
            });
        }
        Ok(())
    }

    pub fn all(&self) -> &[ResourceType] {
        &self.types
    }

    pub fn by_plural(&self, plural: &str) -> Option<&ResourceType> {
        self.types.iter().find(|t| t.plural == plural)
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types.iter().find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    /// Groups kube-apiserver itself serves: a resource of theirs the emulator does not have is
    /// one it does not implement (501), not one that does not exist (404).
    pub fn is_builtin_group(group: &str) -> bool {
        group.is_empty()
            || group.ends_with(".k8s.io")
            || matches!(group, "apps" | "batch" | "autoscaling" | "policy" | "extensions")
    }
}
