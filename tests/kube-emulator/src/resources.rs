//! The resource types served: built-ins the operator uses, plus custom resources from CRDs.

use std::sync::Arc;

use serde_json::Value;

use crate::builtin::Builtin;
use crate::schema::Schema;

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

    fn builtin(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
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
                ResourceType::builtin("", "v1", "namespaces", "Namespace", false),
                ResourceType::builtin("events.k8s.io", "v1", "events", "Event", true),
                ResourceType::builtin("coordination.k8s.io", "v1", "leases", "Lease", true),
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
        for version in spec["versions"].as_array().ok_or("CRD has no versions")? {
            if version["served"] != true {
                continue;
            }
            let openapi = version["schema"]["openAPIV3Schema"].clone();
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
            });
        }
        Ok(())
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
