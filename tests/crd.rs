//! The committed CRD: generated from the types, and refusing bad input with messages a person
//! understands. CEL rules are evaluated with kube's CEL implementation against the committed file.

use integration_response_operator::crd::crd_yaml;
use serde_json::{Value, json};

const CRD_PATH: &str = "crds/integrationresponses.apigatewayv2.aws.operator.rs.yaml";

fn committed() -> Value {
    let text = std::fs::read_to_string(CRD_PATH).expect("committed CRD");
    serde_saphyr::from_str(&text).expect("CRD YAML parses")
}

fn schema() -> Value {
    committed()["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn spec_schema() -> Value {
    schema()["properties"]["spec"].clone()
}

fn object(spec: Value) -> Value {
    json!({
        "apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1",
        "kind": "IntegrationResponse",
        "metadata": {"name": "a", "namespace": "default"},
        "spec": spec,
    })
}

fn valid_spec() -> Value {
    json!({"apiId": "a1b2c3", "integrationId": "i9", "integrationResponseKey": "$default"})
}

/// CEL messages from the API server's point of view: Ok, or each failing rule's message.
fn cel(new: &Value, old: Option<&Value>) -> Result<(), Vec<String>> {
    kube::core::cel::Validator::new()
        .validate(&schema(), new, old)
        .map_err(|errors| errors.into_vec().into_iter().map(|e| format!("{}: {}", e.field_path, e.message)).collect())
}

#[test]
fn committed_crd_matches_the_types() {
    let on_disk = std::fs::read_to_string(CRD_PATH).unwrap();
    assert!(on_disk == crd_yaml(), "{CRD_PATH} is stale: run `cargo run --bin crdgen > {CRD_PATH}` and commit it");
}

#[test]
fn committed_role_selector_crd_matches_the_types() {
    let path = "crds/iamroleselectors.apigatewayv2.aws.operator.rs.yaml";
    let on_disk = std::fs::read_to_string(path).unwrap();
    assert!(
        on_disk == integration_response_operator::crd::role_selector_crd_yaml(),
        "{path} is stale: run `cargo run --bin crdgen -- iamroleselectors > {path}` and commit it"
    );
    let crd: Value = serde_saphyr::from_str(&on_disk).unwrap();
    assert_eq!(crd["spec"]["scope"], "Cluster", "only cluster administrators create selectors");
}

#[test]
fn names_and_printer_columns_follow_the_contract() {
    let crd = committed();
    assert_eq!(crd["metadata"]["name"], "integrationresponses.apigatewayv2.aws.operator.rs");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["names"]["shortNames"], json!(["apigwir"]));
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert_eq!(version["subresources"]["status"], json!({}));
    let columns: Vec<_> =
        version["additionalPrinterColumns"].as_array().unwrap().iter().map(|c| c["name"].clone()).collect();
    assert_eq!(columns, ["Ready", "Reason", "Integration Response Id", "Key", "Age"]);
}

#[test]
fn every_field_is_described_for_kubectl_explain() {
    for (name, field) in spec_schema()["properties"].as_object().unwrap() {
        assert!(field["description"].as_str().is_some_and(|d| d.len() > 10), "spec.{name} has no description");
    }
    for (name, field) in schema()["properties"]["status"]["properties"].as_object().unwrap() {
        assert!(field["description"].as_str().is_some(), "status.{name} has no description");
    }
}

#[test]
fn schema_requires_ids_and_key_and_has_clean_enums_without_defaults() {
    let spec = spec_schema();
    // apiId and integrationId, or integrationRef: required by a rule, not by the schema.
    assert_eq!(spec["required"], json!(["integrationResponseKey"]));
    let props = &spec["properties"];
    assert_eq!(props["contentHandlingStrategy"]["enum"], json!(["CONVERT_TO_BINARY", "CONVERT_TO_TEXT"]));
    assert_eq!(props["deletionPolicy"]["enum"], json!(["Delete", "Retain"]));
    assert_eq!(props["managementPolicy"]["enum"], json!(["Manage", "Observe"]));
    assert!(props["managementPolicy"].get("default").is_none(), "absent means Manage, decided by the operator");
    assert_eq!(props["responseTemplates"]["additionalProperties"]["maxLength"], 32768);
    let text = serde_json::to_string(&spec).unwrap();
    assert!(!text.contains("\"default\""), "no schema defaults on spec fields (Argo CD would never sync)");
    assert!(!props["contentHandlingStrategy"].get("nullable").is_some_and(|n| n == true));
}

#[test]
fn a_valid_object_passes_every_rule() {
    let full = object(json!({
        "region": "eu-west-1",
        "apiId": "a1b2c3",
        "integrationId": "i9",
        "integrationResponseKey": "/4\\d\\d/",
        "responseTemplates": {"application/json": "{}"},
    }));
    assert_eq!(cel(&full, None), Ok(()));
    assert_eq!(cel(&full, Some(&full)), Ok(()));
}

#[test]
fn a_key_that_is_neither_default_nor_a_slashed_regex_is_refused() {
    for key in ["foo", "/", "//", "$DEFAULT", "/4xx"] {
        let mut spec = valid_spec();
        spec["integrationResponseKey"] = json!(key);
        let errors = cel(&object(spec), None).expect_err(key);
        assert!(errors[0].contains("must be $default or a regular expression wrapped in slashes"), "{key}: {errors:?}");
        assert!(errors[0].starts_with("spec.integrationResponseKey"), "names the field: {errors:?}");
    }
}

#[test]
fn ids_are_immutable_and_the_error_names_the_field() {
    let old = object(valid_spec());
    for field in ["apiId", "integrationId"] {
        let mut spec = valid_spec();
        spec[field] = json!("other");
        let errors = cel(&object(spec), Some(&old)).expect_err(field);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].starts_with(&format!("spec.{field}")), "{errors:?}");
        assert!(errors[0].contains(&format!("{field} is immutable")), "{errors:?}");
    }
}

#[test]
fn region_is_fixed_at_creation_it_cannot_be_added_changed_or_removed() {
    let without = object(valid_spec());
    let mut spec = valid_spec();
    spec["region"] = json!("us-east-1");
    let with = object(spec.clone());
    assert_eq!(cel(&with, None), Ok(()), "set when the object is created");
    assert_eq!(cel(&with, Some(&with)), Ok(()), "kept as it is");

    // Added later it could differ from the region the response lives in, and could then be
    // neither changed nor removed: refused at apply time instead.
    let errors = cel(&with, Some(&without)).expect_err("added");
    assert!(errors[0].contains("region can only be set when the object is created"), "{errors:?}");

    spec["region"] = json!("us-west-2");
    let errors = cel(&object(spec), Some(&with)).expect_err("changed");
    assert!(errors[0].contains("region is immutable"), "{errors:?}");

    let errors = cel(&without, Some(&with)).expect_err("removed");
    assert!(errors[0].contains("region can only be set when the object is created"), "{errors:?}");
}

#[test]
fn region_must_look_like_an_aws_region() {
    let mut spec = valid_spec();
    spec["region"] = json!("Mars");
    let errors = cel(&object(spec), None).expect_err("bad region");
    assert!(errors[0].contains("region must be an AWS region name such as us-east-1"), "{errors:?}");
}

fn ack_ref() -> Value {
    json!({"apiVersion": "apigatewayv2.services.k8s.aws/v1alpha1", "kind": "Integration", "name": "chat"})
}

fn ref_spec() -> Value {
    json!({"integrationRef": ack_ref(), "integrationResponseKey": "$default"})
}

#[test]
fn ids_or_a_reference_exactly_one_of_the_two() {
    assert_eq!(cel(&object(ref_spec()), None), Ok(()));
    let mut both = ref_spec();
    both["apiId"] = json!("a1");
    both["integrationId"] = json!("i1");
    let mut neither = valid_spec();
    neither.as_object_mut().unwrap().remove("apiId");
    neither.as_object_mut().unwrap().remove("integrationId");
    let mut half = valid_spec();
    half.as_object_mut().unwrap().remove("integrationId");
    for spec in [both, neither, half] {
        let errors = cel(&object(spec.clone()), None).expect_err("refused");
        assert_eq!(errors, ["spec: set either apiId and integrationId, or integrationRef, but not both"], "{spec}");
    }
}

#[test]
fn a_reference_is_fixed_at_creation_and_names_a_supported_integration_kind() {
    let old = object(ref_spec());
    let mut renamed = ref_spec();
    renamed["integrationRef"]["name"] = json!("other");
    let errors = cel(&object(renamed), Some(&old)).expect_err("changed");
    assert!(
        errors.iter().any(|e| e.starts_with("spec.integrationRef") && e.contains("integrationRef is immutable")),
        "{errors:?}"
    );

    // Switching between the two forms is refused both ways, with the field named.
    let errors = cel(&object(valid_spec()), Some(&old)).expect_err("to ids");
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("spec.integrationRef: integrationRef can only be set when the object is created")),
        "{errors:?}"
    );
    let errors = cel(&old, Some(&object(valid_spec()))).expect_err("to a reference");
    assert!(
        errors.iter().any(|e| e.contains("integrationRef can only be set when the object is created")),
        "{errors:?}"
    );

    let mut wrong_kind = ref_spec();
    wrong_kind["integrationRef"]["kind"] = json!("API");
    let errors = cel(&object(wrong_kind), None).expect_err("kind");
    assert_eq!(errors, ["spec.integrationRef.kind: integrationRef.kind must be Integration"]);
    let mut wrong_group = ref_spec();
    wrong_group["integrationRef"]["apiVersion"] = json!("apigatewayv2.example.com/v1");
    let errors = cel(&object(wrong_group), None).expect_err("apiVersion");
    assert!(errors[0].starts_with("spec.integrationRef.apiVersion: integrationRef.apiVersion must be apigatewayv2.services.k8s.aws/v1alpha1 (ACK)"), "{errors:?}");
    for api_version in ["apigatewayv2.aws.upbound.io/v1beta1", "apigatewayv2.aws.m.upbound.io/v1beta1"] {
        let mut crossplane = ref_spec();
        crossplane["integrationRef"]["apiVersion"] = json!(api_version);
        assert_eq!(cel(&object(crossplane), None), Ok(()), "{api_version}");
    }
}

#[test]
fn every_example_parses_and_passes_the_crd_rules() {
    let mut seen = 0;
    for entry in std::fs::read_dir("examples").unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let example: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(cel(&example, None), Ok(()), "{}", path.display());
        let typed: Result<integration_response_operator::crd::IntegrationResponse, _> = serde_json::from_value(example);
        assert!(typed.is_ok(), "{}: {typed:?}", path.display());
        seen += 1;
    }
    assert!(seen >= 3, "the ids, ACK and Crossplane examples");
}

fn selector_cel(spec: Value) -> Result<(), Vec<String>> {
    let text = std::fs::read_to_string("crds/iamroleselectors.apigatewayv2.aws.operator.rs.yaml").unwrap();
    let crd: Value = serde_saphyr::from_str(&text).unwrap();
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    let object = json!({"apiVersion": "apigatewayv2.aws.operator.rs/v1alpha1", "kind": "IAMRoleSelector",
        "metadata": {"name": "team-a"}, "spec": spec});
    kube::core::cel::Validator::new()
        .validate(schema, &object, None)
        .map_err(|errors| errors.into_vec().into_iter().map(|e| format!("{}: {}", e.field_path, e.message)).collect())
}

#[test]
fn role_selectors_need_a_role_arn_and_some_namespaces() {
    let valid = json!({"roleArn": "arn:aws:iam::111111111111:role/iro", "externalId": "team-a-secret",
        "sessionName": "iro-team-a", "namespaceSelector": {"names": ["team-a"],
        "matchExpressions": [{"key": "tenant", "operator": "Exists"}]}});
    assert_eq!(selector_cel(valid.clone()), Ok(()));
    let mut bad_arn = valid.clone();
    bad_arn["roleArn"] = json!("arn:aws:iam::1111:user/x");
    assert_eq!(
        selector_cel(bad_arn),
        Err(vec!["spec.roleArn: roleArn must be an IAM role ARN such as arn:aws:iam::111111111111:role/name".into()])
    );
    let mut nothing = valid.clone();
    nothing["namespaceSelector"] = json!({});
    assert_eq!(
        selector_cel(nothing),
        Err(vec!["spec.namespaceSelector: namespaceSelector needs names, matchLabels or matchExpressions".into()])
    );
    let mut in_without_values = valid;
    in_without_values["namespaceSelector"]["matchExpressions"] = json!([{"key": "tenant", "operator": "In"}]);
    let errors = selector_cel(in_without_values).unwrap_err();
    assert!(errors[0].contains("In and NotIn need values"), "{errors:?}");
}
