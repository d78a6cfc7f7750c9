//! `spec.integrationRef`: where the response lives, read from an `Integration` object of ACK or
//! Crossplane instead of ids copied by hand.
//!
//! Field paths, from the providers' published CRDs:
//! - ACK `apigatewayv2.services.k8s.aws/v1alpha1` Integration (namespaced): integration id in
//!   `status.integrationID`; API id in `spec.apiID`, or through `spec.apiRef.from.name` in the
//!   referenced ACK `API`'s `status.apiID`; region in the `services.k8s.aws/region` annotation or
//!   `status.ackResourceMetadata.region`; usable when the `ACK.ResourceSynced` condition is True.
//! - Crossplane `apigatewayv2.aws.upbound.io/v1beta1` (cluster-scoped) and
//!   `apigatewayv2.aws.m.upbound.io/v1beta1` (namespaced) Integration: integration id in the
//!   `crossplane.io/external-name` annotation or `status.atProvider.id`; API id and region in
//!   `spec.forProvider`; usable when `Ready` and `Synced` are True.

use kube::api::{Api, ApiResource, DynamicObject};
use kube::{Client, ResourceExt};
use serde_json::Value;

use crate::crd::{IntegrationRef, IntegrationResponse};
use crate::failure::Failure;

/// The kinds a reference may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefKind {
    Ack,
    /// Crossplane's cluster-scoped Integration.
    Crossplane,
    /// Crossplane v2's namespaced Integration.
    CrossplaneNamespaced,
}

impl RefKind {
    pub const ALL: [Self; 3] = [Self::Ack, Self::Crossplane, Self::CrossplaneNamespaced];

    pub fn of(reference: &IntegrationRef) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.api_version() == reference.api_version && reference.kind == "Integration")
    }

    pub fn group(self) -> &'static str {
        match self {
            Self::Ack => "apigatewayv2.services.k8s.aws",
            Self::Crossplane => "apigatewayv2.aws.upbound.io",
            Self::CrossplaneNamespaced => "apigatewayv2.aws.m.upbound.io",
        }
    }

    pub fn version(self) -> &'static str {
        match self {
            Self::Ack => "v1alpha1",
            Self::Crossplane | Self::CrossplaneNamespaced => "v1beta1",
        }
    }

    pub fn api_version(self) -> String {
        format!("{}/{}", self.group(), self.version())
    }

    pub fn namespaced(self) -> bool {
        self != Self::Crossplane
    }

    pub fn integrations(self) -> ApiResource {
        resource(self.group(), self.version(), "Integration", "integrations")
    }

    /// Whether the kind belongs to ACK (else Crossplane), for the chart's switches.
    pub fn is_ack(self) -> bool {
        self == Self::Ack
    }
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// ACK's `API` kind, read when an ACK Integration names its API by reference.
fn ack_apis() -> ApiResource {
    resource("apigatewayv2.services.k8s.aws", "v1alpha1", "API", "apis")
}

/// What a usable reference resolves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Referenced {
    pub api_id: String,
    pub integration_id: String,
    pub region: Option<String>,
}

/// Reads the referenced object (and, for an ACK Integration that names its API by reference,
/// that API) and resolves it; `ReferenceNotReady` until it exists and is usable.
pub async fn resolve(
    client: &Client,
    obj: &IntegrationResponse,
    enabled: &[RefKind],
    allow_cluster_scoped: bool,
) -> Result<Referenced, Failure> {
    let reference = obj.spec.integration_ref.as_ref().expect("called for objects with integrationRef");
    let kind = RefKind::of(reference).ok_or_else(|| {
        Failure::stalled(
            "UnsupportedReference",
            format!(
                "integrationRef names {} {}, which the operator cannot read.",
                reference.api_version, reference.kind
            ),
        )
    })?;
    let namespace = obj.namespace().unwrap_or_default();
    let what = describe(reference, kind, &namespace);
    if !enabled.contains(&kind) {
        let value = if kind.is_ack() { "references.ack.enabled" } else { "references.crossplane.enabled" };
        return Err(Failure::stalled(
            "ReferenceDisabled",
            format!(
                "{what} cannot be followed: the operator runs without {} references (chart value {value}).",
                kind.group()
            ),
        ));
    }
    if !kind.namespaced() && !allow_cluster_scoped {
        return Err(Failure::stalled(
            "ClusterScopedReference",
            format!(
                "{what} is cluster-scoped; the operator only follows such references when started with \
                 --allow-cluster-scoped-refs, since any namespace could otherwise attach responses to another team's \
                 integration."
            ),
        ));
    }
    let integrations: Api<DynamicObject> = if kind.namespaced() {
        Api::namespaced_with(client.clone(), &namespace, &kind.integrations())
    } else {
        Api::all_with(client.clone(), &kind.integrations())
    };
    let integration = get(&integrations, &reference.name, &what).await?;
    let integration = serde_json::to_value(&integration).unwrap_or_default();
    match kind {
        RefKind::Ack => {
            let api_name = ack_api_reference(&integration, &namespace)
                .map_err(|message| Failure::stalled("InvalidReference", format!("{what}: {message}")))?;
            let api = match api_name {
                None => None,
                Some(name) => {
                    let apis: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &ack_apis());
                    let api_what = format!("ACK API {namespace}/{name} (referenced by {what})");
                    let api = get(&apis, &name, &api_what).await?;
                    Some(serde_json::to_value(&api).unwrap_or_default())
                }
            };
            from_ack(&integration, api.as_ref()).map_err(|waits| not_ready(&what, &waits))
        }
        RefKind::Crossplane | RefKind::CrossplaneNamespaced => {
            from_crossplane(&integration).map_err(|waits| not_ready(&what, &waits))
        }
    }
}

async fn get(api: &Api<DynamicObject>, name: &str, what: &str) -> Result<DynamicObject, Failure> {
    match api.get_opt(name).await {
        Ok(Some(object)) => Ok(object),
        // Also what a kind whose CRD is not installed (yet) answers.
        Ok(None) => Err(not_ready(what, "it to be created")),
        Err(kube::Error::Api(status)) if status.code == 403 => Err(Failure::stalled(
            "ReferenceForbidden",
            format!(
                "The operator may not read {what} ({}). Enable the kind in the chart's values (references.ack.enabled, \
                 references.crossplane.enabled).",
                status.message
            ),
        )),
        Err(err) => Err(Failure::Transient {
            reason: "KubernetesUnavailable",
            message: format!("Could not read {what}; retrying. ({})", short_error(&err)),
        }),
    }
}

fn short_error(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => format!("HTTP {}", status.code),
        _ => "no answer".into(),
    }
}

fn describe(reference: &IntegrationRef, kind: RefKind, namespace: &str) -> String {
    let owner = if kind.is_ack() { "ACK" } else { "Crossplane" };
    if kind.namespaced() {
        format!("{owner} Integration {namespace}/{}", reference.name)
    } else {
        format!("{owner} Integration {}", reference.name)
    }
}

fn not_ready(what: &str, waits_for: &str) -> Failure {
    Failure::ReferenceNotReady { message: format!("Waiting for {what}: waiting for {waits_for}.") }
}

fn text<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(value, |v, key| v.get(key))?.as_str().filter(|s| !s.is_empty())
}

fn condition_true(object: &Value, type_: &str) -> bool {
    object["status"]["conditions"]
        .as_array()
        .is_some_and(|all| all.iter().any(|c| c["type"] == type_ && c["status"] == "True"))
}

/// The ACK API an ACK Integration names by reference, if it does: `Err` when that API is in
/// another namespace (only the object's own namespace may be read).
fn ack_api_reference(integration: &Value, namespace: &str) -> Result<Option<String>, String> {
    if text(integration, &["spec", "apiID"]).is_some() {
        return Ok(None);
    }
    let Some(name) = text(integration, &["spec", "apiRef", "from", "name"]) else { return Ok(None) };
    match text(integration, &["spec", "apiRef", "from", "namespace"]) {
        Some(other) if other != namespace => Err(format!(
            "its apiRef names an API in namespace {other}; only references within {namespace} are followed"
        )),
        _ => Ok(Some(name.to_owned())),
    }
}

/// An ACK Integration (with its API, when it names it by reference); `Err` says what it waits for.
pub fn from_ack(integration: &Value, api: Option<&Value>) -> Result<Referenced, String> {
    if condition_true(integration, "ACK.Terminal") {
        return Err("ACK to recover it from a terminal error (its ACK.Terminal condition is True)".into());
    }
    if !condition_true(integration, "ACK.ResourceSynced") {
        return Err("its ACK.ResourceSynced condition to be True".into());
    }
    let integration_id = text(integration, &["status", "integrationID"]).ok_or("status.integrationID to be set")?;
    let api_id = match api {
        None => text(integration, &["spec", "apiID"]).ok_or("spec.apiID or spec.apiRef to be set")?,
        Some(api) => {
            if !condition_true(api, "ACK.ResourceSynced") {
                return Err("the referenced ACK API's ACK.ResourceSynced condition to be True".into());
            }
            text(api, &["status", "apiID"]).ok_or("the referenced ACK API's status.apiID to be set")?
        }
    };
    let region = text(integration, &["metadata", "annotations", "services.k8s.aws/region"])
        .or_else(|| text(integration, &["status", "ackResourceMetadata", "region"]));
    Ok(Referenced { api_id: api_id.into(), integration_id: integration_id.into(), region: region.map(str::to_owned) })
}

/// A Crossplane Integration (either scope); `Err` says what it waits for.
pub fn from_crossplane(integration: &Value) -> Result<Referenced, String> {
    if !(condition_true(integration, "Ready") && condition_true(integration, "Synced")) {
        return Err("its Ready and Synced conditions to be True".into());
    }
    let integration_id = text(integration, &["metadata", "annotations", "crossplane.io/external-name"])
        .or_else(|| text(integration, &["status", "atProvider", "id"]))
        .ok_or("its external name (status.atProvider.id) to be set")?;
    let api_id = text(integration, &["spec", "forProvider", "apiId"])
        .or_else(|| text(integration, &["status", "atProvider", "apiId"]))
        .ok_or("spec.forProvider.apiId to be set")?;
    let region = text(integration, &["spec", "forProvider", "region"]);
    Ok(Referenced { api_id: api_id.into(), integration_id: integration_id.into(), region: region.map(str::to_owned) })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ack(synced: bool) -> Value {
        json!({
            "apiVersion": "apigatewayv2.services.k8s.aws/v1alpha1", "kind": "Integration",
            "metadata": {"name": "chat", "namespace": "team-a", "annotations": {"services.k8s.aws/region": "eu-west-1"}},
            "spec": {"apiID": "api123", "integrationType": "MOCK"},
            "status": {
                "integrationID": "int456",
                "ackResourceMetadata": {"ownerAccountID": "111111111111", "region": "us-east-2"},
                "conditions": [{"type": "ACK.ResourceSynced", "status": if synced { "True" } else { "False" }}],
            },
        })
    }

    fn crossplane(ready: &str, synced: &str) -> Value {
        json!({
            "apiVersion": "apigatewayv2.aws.upbound.io/v1beta1", "kind": "Integration",
            "metadata": {"name": "chat", "annotations": {"crossplane.io/external-name": "int789"}},
            "spec": {"forProvider": {"apiId": "api321", "region": "ap-southeast-2", "integrationType": "MOCK"}},
            "status": {"atProvider": {"id": "int789"}, "conditions": [
                {"type": "Ready", "status": ready}, {"type": "Synced", "status": synced}]},
        })
    }

    #[test]
    fn a_synced_ack_integration_gives_ids_and_the_annotated_region() {
        let resolved = from_ack(&ack(true), None).unwrap();
        assert_eq!(
            resolved,
            Referenced { api_id: "api123".into(), integration_id: "int456".into(), region: Some("eu-west-1".into()) }
        );
        let mut unannotated = ack(true);
        unannotated["metadata"]["annotations"] = json!({});
        assert_eq!(
            from_ack(&unannotated, None).unwrap().region.as_deref(),
            Some("us-east-2"),
            "from resource metadata"
        );
    }

    #[test]
    fn an_ack_integration_waits_until_synced_and_its_id_is_known() {
        assert_eq!(from_ack(&ack(false), None).unwrap_err(), "its ACK.ResourceSynced condition to be True");
        let mut no_id = ack(true);
        no_id["status"].as_object_mut().unwrap().remove("integrationID");
        assert_eq!(from_ack(&no_id, None).unwrap_err(), "status.integrationID to be set");
        let mut terminal = ack(true);
        terminal["status"]["conditions"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "ACK.Terminal", "status": "True"}));
        assert!(from_ack(&terminal, None).unwrap_err().contains("terminal"));
    }

    #[test]
    fn an_ack_integration_naming_its_api_by_reference_takes_the_id_from_that_api() {
        let mut integration = ack(true);
        integration["spec"] = json!({"apiRef": {"from": {"name": "chat-api"}}, "integrationType": "MOCK"});
        assert_eq!(ack_api_reference(&integration, "team-a"), Ok(Some("chat-api".into())));
        let api =
            json!({"status": {"apiID": "fromref", "conditions": [{"type": "ACK.ResourceSynced", "status": "True"}]}});
        assert_eq!(from_ack(&integration, Some(&api)).unwrap().api_id, "fromref");
        let unsynced = json!({"status": {"apiID": "fromref"}});
        assert!(from_ack(&integration, Some(&unsynced)).unwrap_err().contains("referenced ACK API"));
        integration["spec"]["apiRef"]["from"]["namespace"] = json!("team-b");
        assert!(ack_api_reference(&integration, "team-a").unwrap_err().contains("namespace team-b"));
        assert_eq!(ack_api_reference(&ack(true), "team-a"), Ok(None), "apiID given directly");
    }

    #[test]
    fn a_crossplane_integration_is_usable_when_ready_and_synced() {
        let resolved = from_crossplane(&crossplane("True", "True")).unwrap();
        assert_eq!(
            resolved,
            Referenced {
                api_id: "api321".into(),
                integration_id: "int789".into(),
                region: Some("ap-southeast-2".into())
            }
        );
        for (ready, synced) in [("False", "True"), ("True", "False"), ("Unknown", "Unknown")] {
            assert_eq!(
                from_crossplane(&crossplane(ready, synced)).unwrap_err(),
                "its Ready and Synced conditions to be True"
            );
        }
        let mut by_status = crossplane("True", "True");
        by_status["metadata"]["annotations"] = json!({});
        assert_eq!(from_crossplane(&by_status).unwrap().integration_id, "int789");
        by_status["status"]["atProvider"] = json!({});
        assert!(from_crossplane(&by_status).unwrap_err().contains("external name"));
    }

    #[test]
    fn only_the_three_integration_kinds_are_supported() {
        let reference = |api_version: &str, kind: &str| IntegrationRef {
            api_version: api_version.into(),
            kind: kind.into(),
            name: "x".into(),
        };
        assert_eq!(
            RefKind::of(&reference("apigatewayv2.services.k8s.aws/v1alpha1", "Integration")),
            Some(RefKind::Ack)
        );
        assert_eq!(
            RefKind::of(&reference("apigatewayv2.aws.upbound.io/v1beta1", "Integration")),
            Some(RefKind::Crossplane)
        );
        assert_eq!(
            RefKind::of(&reference("apigatewayv2.aws.m.upbound.io/v1beta1", "Integration")),
            Some(RefKind::CrossplaneNamespaced)
        );
        assert_eq!(RefKind::of(&reference("apigatewayv2.services.k8s.aws/v1alpha1", "API")), None);
        assert!(!RefKind::Crossplane.namespaced() && RefKind::CrossplaneNamespaced.namespaced());
    }
}
