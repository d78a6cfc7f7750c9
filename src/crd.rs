//! The `IntegrationResponse` custom resource: spec, status and condition helpers.
//!
//! The CRD YAML in `crds/` is generated from these types (`cargo run --bin crdgen`), so the
//! doc comments here are what `kubectl explain` shows.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

pub const GROUP: &str = "apigatewayv2.aws.operator.rs";
pub const FINALIZER: &str = "apigatewayv2.aws.operator.rs/finalizer";
/// Opt-in annotation that lets the operator take over a response it did not create.
pub const ADOPT_ANNOTATION: &str = "apigatewayv2.aws.operator.rs/adopt";
pub const FIELD_MANAGER: &str = "integration-response-operator";

/// Response templates may be up to 32 KiB each (API Gateway's documented limit).
const MAX_TEMPLATE_BYTES: u32 = 32 * 1024;

/// An API Gateway V2 integration response on a WebSocket API's non-proxy integration.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "apigatewayv2.aws.operator.rs",
    version = "v1alpha1",
    kind = "IntegrationResponse",
    plural = "integrationresponses",
    singular = "integrationresponse",
    shortname = "apigwir",
    namespaced,
    doc = "An AWS API Gateway V2 integration response, kept in line with this object by integration-response-operator.",
    status = "IntegrationResponseStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Integration Response Id","type":"string","jsonPath":".status.integrationResponseId"}"#,
    printcolumn = r#"{"name":"Key","type":"string","jsonPath":".spec.integrationResponseKey"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
// A region added later could differ from the one the response was created in, and the rule on
// the field itself would then forbid both changing and removing it: a state with no way out. So
// whether region is set is fixed at creation.
#[x_kube(validation = Rule::new("has(oldSelf.region) == has(self.region)").message("region can only be set when the object is created: it cannot be added or removed later (the region in use is in status.region)").field_path(".region"))]
// Where the response lives is named one way: ids, or a reference to another controller's object.
#[x_kube(validation = Rule::new("has(self.integrationRef) ? !has(self.apiId) && !has(self.integrationId) : has(self.apiId) && has(self.integrationId)").message("set either apiId and integrationId, or integrationRef, but not both"))]
#[x_kube(validation = Rule::new("has(oldSelf.integrationRef) == has(self.integrationRef)").message("integrationRef can only be set when the object is created: switching between ids and a reference is not allowed (create a new IntegrationResponse)").field_path(".integrationRef"))]
#[serde(rename_all = "camelCase")]
pub struct IntegrationResponseSpec {
    /// AWS region of the API, e.g. us-east-1. Defaults to the operator's default region
    /// (--default-region / AWS_REGION). Set it when creating the object or never: it cannot be
    /// added, changed or removed later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("region is immutable; create a new IntegrationResponse to use another region"))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z]{2}(-[a-z]+)+-[0-9]+$')").message("region must be an AWS region name such as us-east-1"))]
    pub region: Option<String>,

    /// Id of the WebSocket API that holds the integration. Immutable. Set it with
    /// integrationId, or use integrationRef instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("apiId is immutable; create a new IntegrationResponse to move it to another API"))]
    pub api_id: Option<String>,

    /// Id of the non-proxy integration the response belongs to. Immutable. Set it with apiId,
    /// or use integrationRef instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("integrationId is immutable; create a new IntegrationResponse to move it to another integration"))]
    pub integration_id: Option<String>,

    /// The integration as an object of another controller (ACK or Crossplane), instead of
    /// apiId and integrationId: its ids and region are read from that object once it is ready.
    /// Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("integrationRef is immutable; create a new IntegrationResponse to use another integration"))]
    pub integration_ref: Option<IntegrationRef>,

    /// Which integration responses this applies to: `$default`, or a regular expression wrapped
    /// in slashes that is matched against the backend's status code, e.g. `/4\d\d/`.
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new("self == '$default' || (self.size() > 2 && self.startsWith('/') && self.endsWith('/'))").message("integrationResponseKey must be $default or a regular expression wrapped in slashes, such as /4\\d\\d/"))]
    pub integration_response_key: String,

    /// How to convert the response payload: CONVERT_TO_BINARY or CONVERT_TO_TEXT.
    /// Leave it out to pass the payload through unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "content_handling_schema")]
    pub content_handling_strategy: Option<ContentHandlingStrategy>,

    /// Selection expression that picks one of responseTemplates, e.g. `$integration.response.statuscode`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub template_selection_expression: Option<String>,

    /// Response templates keyed by template selection value (often a content type). Each value is
    /// a mapping template of at most 32 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "response_templates_schema")]
    pub response_templates: Option<BTreeMap<String, String>>,

    /// Response parameters to pass to the client, keyed by destination
    /// (e.g. `method.response.header.X-Request-Id`), valued by source expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "response_parameters_schema")]
    pub response_parameters: Option<BTreeMap<String, String>>,

    /// What happens in AWS when this object is deleted: Delete (the default) removes the
    /// integration response, Retain keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "deletion_policy_schema")]
    pub deletion_policy: Option<DeletionPolicy>,

    /// Manage (the default) creates, updates and deletes the integration response. Observe
    /// never writes to AWS: it finds the response (by the recorded id, else by key), records
    /// its id, and lists in status.differences how AWS differs from this spec. Deleting an
    /// object in Observe never deletes in AWS. Switching to Manage applies the differences; a
    /// response that was only observed is managed only with the adopt annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "management_policy_schema")]
    pub management_policy: Option<ManagementPolicy>,
}

/// An `Integration` of ACK (`apigatewayv2.services.k8s.aws/v1alpha1`) or Crossplane
/// (`apigatewayv2.aws.upbound.io/v1beta1`, cluster-scoped; `apigatewayv2.aws.m.upbound.io/v1beta1`,
/// namespaced). A namespaced one is looked up in this object's namespace only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationRef {
    /// apiVersion of the referenced object.
    #[x_kube(validation = Rule::new("self in ['apigatewayv2.services.k8s.aws/v1alpha1', 'apigatewayv2.aws.upbound.io/v1beta1', 'apigatewayv2.aws.m.upbound.io/v1beta1']").message("integrationRef.apiVersion must be apigatewayv2.services.k8s.aws/v1alpha1 (ACK), apigatewayv2.aws.upbound.io/v1beta1 or apigatewayv2.aws.m.upbound.io/v1beta1 (Crossplane)"))]
    pub api_version: String,
    /// Kind of the referenced object: Integration.
    #[x_kube(validation = Rule::new("self == 'Integration'").message("integrationRef.kind must be Integration"))]
    pub kind: String,
    /// Name of the referenced object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ContentHandlingStrategy {
    #[serde(rename = "CONVERT_TO_BINARY")]
    ConvertToBinary,
    #[serde(rename = "CONVERT_TO_TEXT")]
    ConvertToText,
}

impl ContentHandlingStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConvertToBinary => "CONVERT_TO_BINARY",
            Self::ConvertToText => "CONVERT_TO_TEXT",
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Delete,
    Retain,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ManagementPolicy {
    #[default]
    Manage,
    Observe,
}

// Optional enums get a hand-written schema: the derived one carries a `null` member, which the
// API server then lists among the allowed values in its error messages.
fn content_handling_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "enum": ["CONVERT_TO_BINARY", "CONVERT_TO_TEXT"]})
}

fn deletion_policy_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "enum": ["Delete", "Retain"]})
}

fn management_policy_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "enum": ["Manage", "Observe"]})
}

fn response_templates_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": 64,
        "additionalProperties": {"type": "string", "maxLength": MAX_TEMPLATE_BYTES},
    })
}

fn response_parameters_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "maxProperties": 64,
        "additionalProperties": {"type": "string", "maxLength": 1024},
    })
}

/// What the operator has observed and done. Written only by the operator (server-side apply).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationResponseStatus {
    /// The AWS IntegrationResponseId, present as soon as the response exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_response_id: Option<String>,
    /// Region the response lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// AWS account the response lives in, when an IAMRoleSelector's role reconciles it (absent
    /// for the operator's own identity). Fixed once the response exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// API the response was created under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_id: Option<String>,
    /// Integration the response was created under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_id: Option<String>,
    /// A create in flight: written (conditionally on the object's resourceVersion) just before
    /// CreateIntegrationResponse is sent, cleared once the id is recorded or AWS's answer proves
    /// nothing was made. After a crash it tells the operator to look the response up by key
    /// instead of creating a second one; another operator instance that finds a fresh claim waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_create: Option<PendingCreate>,
    /// The claim as written by earlier versions (key only). Still read; never written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_create_key: Option<String>,
    /// Set when the recorded response was found under managementPolicy Observe rather than
    /// created or adopted by this object: managing it then needs the adopt annotation, and
    /// deleting this object never deletes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub observed_only: bool,
    /// Under managementPolicy Observe, each field where AWS differs from the spec (empty when
    /// they match). Response templates are shown by size only, never their text.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub differences: Vec<Difference>,
    /// The metadata.generation that the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling and Stalled, as kstatus expects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// Who is creating which key, since when.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingCreate {
    /// The integrationResponseKey being created.
    pub key: String,
    /// The operator instance (pod name) that sent the create.
    pub holder: String,
    /// When the claim was taken (RFC 3339).
    pub since: String,
}

/// One field where AWS differs from the spec. An absent side means the field is not set there.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Difference {
    /// The spec field, with the map key for templates and parameters, e.g.
    /// `responseTemplates[application/json]`.
    pub field: String,
    /// The spec's value, shortened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<String>,
    /// AWS's value, shortened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<String>,
}

/// One kstatus-compatible condition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Ready, Reconciling or Stalled.
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    /// One CamelCase word saying why.
    pub reason: String,
    /// What is wrong and what to do about it.
    pub message: String,
    /// The generation this condition was computed for.
    pub observed_generation: Option<i64>,
    /// When status last changed (RFC 3339).
    pub last_transition_time: String,
}

fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    let item = generator.subschema_for::<Condition>();
    json_schema!({
        "type": "array",
        "items": item,
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
    })
}

impl IntegrationResponseSpec {
    pub fn deletion_policy(&self) -> DeletionPolicy {
        self.deletion_policy.unwrap_or_default()
    }

    pub fn management_policy(&self) -> ManagementPolicy {
        self.management_policy.unwrap_or_default()
    }
}

impl IntegrationResponseStatus {
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// The key of a create in flight, from the claim or its older key-only form.
    pub fn claimed_key(&self) -> Option<&str> {
        self.pending_create.as_ref().map(|c| c.key.as_str()).or(self.pending_create_key.as_deref())
    }

    pub fn claim(&mut self, key: &str, holder: &str, since: String) {
        self.pending_create = Some(PendingCreate { key: key.to_owned(), holder: holder.to_owned(), since });
        self.pending_create_key = None;
    }

    pub fn clear_claim(&mut self) {
        self.pending_create = None;
        self.pending_create_key = None;
    }
}

/// The CRD as YAML, exactly as committed in `crds/`.
pub fn crd_yaml() -> String {
    use kube::CustomResourceExt;
    serde_saphyr::to_string(&IntegrationResponse::crd()).expect("the CRD serialises to YAML")
}

/// Which AWS account objects of some namespaces are reconciled in: the operator assumes
/// `roleArn` with STS for them. Cluster-scoped, so only cluster administrators create these.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "apigatewayv2.aws.operator.rs",
    version = "v1alpha1",
    kind = "IAMRoleSelector",
    plural = "iamroleselectors",
    singular = "iamroleselector",
    doc = "Namespaces whose IntegrationResponses integration-response-operator reconciles with an assumed IAM role (another AWS account).",
    status = "IAMRoleSelectorStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Account","type":"string","jsonPath":".status.accountId"}"#,
    printcolumn = r#"{"name":"Role","type":"string","jsonPath":".spec.roleArn"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct IAMRoleSelectorSpec {
    /// The role to assume, e.g. arn:aws:iam::111111111111:role/integration-responses. Its trust
    /// policy must allow the operator's own role.
    #[schemars(length(max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$')").message("roleArn must be an IAM role ARN such as arn:aws:iam::111111111111:role/name"))]
    pub role_arn: String,

    /// External id the role's trust policy requires (sts:ExternalId), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 2, max = 1224))]
    pub external_id: Option<String>,

    /// Session name shown in CloudTrail; defaults to integration-response-operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z0-9+=,.@_-]{2,64}$')").message("sessionName must be 2 to 64 characters of letters, digits and +=,.@_-"))]
    pub session_name: Option<String>,

    /// The namespaces this role serves: by name, by labels, or both (a namespace matching either
    /// is selected).
    pub namespace_selector: NamespaceSelector,
}

/// Namespaces by name and/or by label.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[x_kube(validation = Rule::new("has(self.names) || has(self.matchLabels) || has(self.matchExpressions)").message("namespaceSelector needs names, matchLabels or matchExpressions"))]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSelector {
    /// Namespaces by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub names: Option<Vec<String>>,
    /// Namespaces whose labels include all of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    /// Namespaces whose labels meet all of these requirements (In, NotIn, Exists, DoesNotExist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_expressions: Option<Vec<LabelRequirement>>,
}

/// One label requirement, as in a Kubernetes label selector.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[x_kube(validation = Rule::new("self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0 : !has(self.values) || size(self.values) == 0").message("In and NotIn need values; Exists and DoesNotExist take none"))]
pub struct LabelRequirement {
    /// The label key.
    pub key: String,
    /// In, NotIn, Exists or DoesNotExist.
    #[schemars(schema_with = "label_operator_schema")]
    pub operator: String,
    /// The values for In and NotIn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

fn label_operator_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist"]})
}

/// Whether the role could be assumed, and in which account.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IAMRoleSelectorStatus {
    /// The account of the assumed role, from sts:GetCallerIdentity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// The metadata.generation that the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready: True when the role was assumed and GetCallerIdentity answered with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

/// The IAMRoleSelector CRD as YAML, exactly as committed in `crds/`.
pub fn role_selector_crd_yaml() -> String {
    use kube::CustomResourceExt;
    serde_saphyr::to_string(&IAMRoleSelector::crd()).expect("the CRD serialises to YAML")
}
