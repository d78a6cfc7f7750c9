//! Pure decisions: where the response lives, what it should look like, and what must change.
//! No I/O here, so every rule is tested with plain values.

use crate::crd::{IntegrationResponseSpec, IntegrationResponseStatus};
use crate::domain::{Changes, Desired, Observed, Target};
use crate::failure::Failure;
use crate::references::Referenced;
use crate::roles::Identity;

impl Target {
    /// Region: the spec's, else the referenced object's, else the one recorded in status when
    /// the response was made (so a change of the operator's default region never moves an
    /// existing response), else the operator's default. Ids: the spec's, or what
    /// spec.integrationRef resolved to (`referenced`). Once something may exist in AWS, neither
    /// may point elsewhere.
    pub fn resolve(
        spec: &IntegrationResponseSpec,
        status: &IntegrationResponseStatus,
        default_region: Option<&str>,
        referenced: Option<&Referenced>,
        identity: Identity,
    ) -> Result<Self, Failure> {
        let region = spec
            .region
            .as_deref()
            .or(referenced.and_then(|r| r.region.as_deref()))
            .or(status.region.as_deref())
            .or(default_region)
            .ok_or_else(|| {
                Failure::stalled(
                    "RegionMissing",
                    "No AWS region: set spec.region, or start the operator with --default-region (AWS_REGION).",
                )
            })?;
        let ids = match (referenced, &spec.api_id, &spec.integration_id) {
            (Some(r), _, _) => Some((r.api_id.clone(), r.integration_id.clone())),
            (None, Some(api), Some(integration)) => Some((api.clone(), integration.clone())),
            _ => None,
        };
        let Some((api_id, integration_id)) = ids else {
            // The CRD's rules refuse this; an object stored before them could still hold it.
            return Err(Failure::stalled("InvalidSpec", "Set either apiId and integrationId, or integrationRef."));
        };
        let target = Self { region: region.to_owned(), api_id, integration_id, identity };
        if status.integration_response_id.is_some() || status.claimed_key().is_some() {
            let (was, now) = (status.account_id.as_deref(), target.identity.account_id());
            if was != now {
                let was = was.map_or("with the operator's own identity".to_owned(), |a| format!("in account {a}"));
                let now = match &target.identity {
                    Identity::Own => "the operator's own identity (no IAMRoleSelector selects it now)".to_owned(),
                    Identity::Role(role) => format!("account {} (IAMRoleSelector {})", role.account_id, role.selector),
                };
                return Err(Failure::stalled(
                    "ImmutableFieldChanged",
                    format!(
                        "The integration response was created {was}, but this namespace now uses {now}; a response \
                         cannot move between accounts. Restore the IAMRoleSelector, or move it: set deletionPolicy: \
                         Retain, delete this object, and create it again (with the adopt annotation if the response \
                         should be taken over in the new account)."
                    ),
                ));
            }
            let recorded = [
                ("region", status.region.as_deref(), &target.region),
                ("apiId", status.api_id.as_deref(), &target.api_id),
                ("integrationId", status.integration_id.as_deref(), &target.integration_id),
            ];
            for (field, was, now) in recorded {
                if let Some(was) = was.filter(|was| *was != now.as_str()) {
                    let source = if referenced.is_some() && !(field == "region" && spec.region.is_some()) {
                        format!("spec.integrationRef now resolves to {field} {now}")
                    } else {
                        format!("spec.{field} is {now}")
                    };
                    return Err(Failure::stalled(
                        "ImmutableFieldChanged",
                        format!(
                            "{source}, but the integration response was created with {field} {was} and cannot \
                             move. Delete this object (set deletionPolicy: Retain first to keep the response in \
                             AWS) and create a new IntegrationResponse for {now}."
                        ),
                    ));
                }
            }
        }
        Ok(target)
    }
}

/// How to bring an existing response in line with the spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    InSync,
    Update(Changes),
    /// UpdateIntegrationResponse cannot unset contentHandlingStrategy (there is no
    /// "pass-through" value to send), so the response is deleted and created again.
    Replace,
}

pub fn plan(desired: &Desired, observed: &Observed) -> Plan {
    let observed = &observed.fields;
    if desired == observed {
        return Plan::InSync;
    }
    if desired.content_handling.is_none() && observed.content_handling.is_some() {
        return Plan::Replace;
    }
    Plan::Update(Changes {
        key: (desired.key != observed.key).then(|| desired.key.clone()),
        content_handling: desired.content_handling.filter(|want| Some(*want) != observed.content_handling),
        template_selection_expression: (desired.template_selection_expression
            != observed.template_selection_expression)
            .then(|| desired.template_selection_expression.clone().unwrap_or_default()),
        response_templates: (desired.response_templates != observed.response_templates)
            .then(|| desired.response_templates.clone()),
        response_parameters: (desired.response_parameters != observed.response_parameters)
            .then(|| desired.response_parameters.clone()),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::crd::ContentHandlingStrategy;

    fn spec() -> IntegrationResponseSpec {
        serde_json::from_value(serde_json::json!({
            "apiId": "api1",
            "integrationId": "int1",
            "integrationResponseKey": "/4\\d\\d/",
            "templateSelectionExpression": "$integration.response.statuscode",
            "responseTemplates": {"application/json": "{\"error\": true}"},
            "responseParameters": {"method.response.header.X-Err": "'yes'"},
        }))
        .unwrap()
    }

    fn observed_like(desired: &Desired) -> Observed {
        Observed { id: "irid".into(), fields: desired.clone() }
    }

    #[test]
    fn spec_maps_to_the_aws_request_fields() {
        let desired = Desired::from_spec(&spec());
        assert_eq!(desired.key, "/4\\d\\d/");
        assert_eq!(desired.template_selection_expression.as_deref(), Some("$integration.response.statuscode"));
        assert_eq!(desired.response_templates["application/json"], "{\"error\": true}");
        assert_eq!(desired.response_parameters["method.response.header.X-Err"], "'yes'");
        assert_eq!(desired.content_handling, None);
    }

    #[test]
    fn identical_state_needs_nothing() {
        let desired = Desired::from_spec(&spec());
        assert_eq!(plan(&desired, &observed_like(&desired)), Plan::InSync);
    }

    #[test]
    fn only_changed_fields_are_sent() {
        let desired = Desired::from_spec(&spec());
        let mut observed = observed_like(&desired);
        observed.fields.response_templates.insert("application/json".into(), "drifted".into());
        let Plan::Update(changes) = plan(&desired, &observed) else { panic!("expected an update") };
        assert_eq!(changes.fields(), ["responseTemplates"]);
        assert_eq!(changes.response_templates.as_ref(), Some(&desired.response_templates));
        assert_eq!(changes.key, None);
        assert_eq!(changes.response_parameters, None);
    }

    #[test]
    fn key_change_is_an_update() {
        let desired = Desired::from_spec(&spec());
        let mut observed = observed_like(&desired);
        observed.fields.key = "$default".into();
        let Plan::Update(changes) = plan(&desired, &observed) else { panic!("expected an update") };
        assert_eq!(changes.fields(), ["integrationResponseKey"]);
        assert_eq!(changes.key.as_deref(), Some("/4\\d\\d/"));
    }

    #[test]
    fn fields_removed_from_the_spec_are_cleared_in_aws() {
        let mut spec = spec();
        spec.response_parameters = None;
        spec.template_selection_expression = None;
        let desired = Desired::from_spec(&spec);
        let mut observed = observed_like(&desired);
        observed.fields.response_parameters.insert("method.response.header.Old".into(), "'x'".into());
        observed.fields.template_selection_expression = Some("$request.body.action".into());
        let Plan::Update(changes) = plan(&desired, &observed) else { panic!("expected an update") };
        assert_eq!(changes.fields(), ["templateSelectionExpression", "responseParameters"]);
        assert_eq!(changes.response_parameters, Some(BTreeMap::new()));
        assert_eq!(changes.template_selection_expression.as_deref(), Some(""));
    }

    #[test]
    fn content_handling_set_is_an_update_and_unset_is_a_replace() {
        let mut spec = spec();
        spec.content_handling_strategy = Some(ContentHandlingStrategy::ConvertToText);
        let desired = Desired::from_spec(&spec);
        let mut observed = observed_like(&desired);
        observed.fields.content_handling = Some(ContentHandlingStrategy::ConvertToBinary);
        let Plan::Update(changes) = plan(&desired, &observed) else { panic!("expected an update") };
        assert_eq!(changes.content_handling, Some(ContentHandlingStrategy::ConvertToText));
        assert_eq!(changes.fields(), ["contentHandlingStrategy"]);

        spec.content_handling_strategy = None;
        assert_eq!(plan(&Desired::from_spec(&spec), &observed), Plan::Replace);
    }

    #[test]
    fn empty_values_in_the_spec_equal_absent_ones_in_aws() {
        let mut spec = spec();
        spec.response_templates = Some(BTreeMap::new());
        spec.template_selection_expression = Some(String::new());
        let desired = Desired::from_spec(&spec);
        let mut observed = observed_like(&desired);
        observed.fields.response_templates.clear();
        observed.fields.template_selection_expression = None;
        assert_eq!(plan(&desired, &observed), Plan::InSync);
    }

    #[test]
    fn region_comes_from_spec_then_status_then_default() {
        let mut spec = spec();
        let mut status = IntegrationResponseStatus::default();
        assert_eq!(
            Target::resolve(&spec, &status, Some("eu-west-1"), None, Identity::Own).unwrap().region,
            "eu-west-1"
        );
        status.region = Some("us-east-2".into());
        assert_eq!(
            Target::resolve(&spec, &status, Some("eu-west-1"), None, Identity::Own).unwrap().region,
            "us-east-2"
        );
        spec.region = Some("us-east-2".into());
        assert_eq!(Target::resolve(&spec, &status, None, None, Identity::Own).unwrap().region, "us-east-2");
    }

    #[test]
    fn no_region_anywhere_stalls() {
        let failure =
            Target::resolve(&spec(), &IntegrationResponseStatus::default(), None, None, Identity::Own).unwrap_err();
        assert!(failure.is_stalled());
        assert_eq!(failure.reason(), "RegionMissing");
    }

    #[test]
    fn a_reference_gives_ids_and_region_and_may_not_move_an_existing_response() {
        let mut spec = spec();
        spec.api_id = None;
        spec.integration_id = None;
        let referenced =
            Referenced { api_id: "apiR".into(), integration_id: "intR".into(), region: Some("eu-west-1".into()) };
        let mut status = IntegrationResponseStatus::default();
        let target = Target::resolve(&spec, &status, Some("us-east-1"), Some(&referenced), Identity::Own).unwrap();
        assert_eq!(
            target,
            Target {
                region: "eu-west-1".into(),
                api_id: "apiR".into(),
                integration_id: "intR".into(),
                identity: Identity::Own
            }
        );
        status.integration_response_id = Some("irid".into());
        status.region = Some("eu-west-1".into());
        status.api_id = Some("apiR".into());
        status.integration_id = Some("intR".into());
        let moved = Referenced { integration_id: "intOther".into(), ..referenced.clone() };
        let failure = Target::resolve(&spec, &status, None, Some(&moved), Identity::Own).unwrap_err();
        assert_eq!(failure.reason(), "ImmutableFieldChanged");
        assert!(
            failure.message().starts_with("spec.integrationRef now resolves to integrationId intOther, but the integration response was created with integrationId intR"),
            "{}",
            failure.message()
        );
        assert_eq!(Target::resolve(&spec, &status, None, None, Identity::Own).unwrap_err().reason(), "InvalidSpec");
    }

    #[test]
    fn moving_an_existing_response_stalls() {
        let status = IntegrationResponseStatus {
            integration_response_id: Some("irid".into()),
            region: Some("us-east-1".into()),
            api_id: Some("api0".into()),
            integration_id: Some("int1".into()),
            ..Default::default()
        };
        let failure = Target::resolve(&spec(), &status, None, None, Identity::Own).unwrap_err();
        assert_eq!(failure.reason(), "ImmutableFieldChanged");
        assert!(
            failure.message().contains("spec.apiId is api1, but the integration response was created with apiId api0"),
            "{}",
            failure.message()
        );
    }
}
