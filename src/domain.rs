//! The values the pipeline's steps share: where a response lives (`Target`), what the spec
//! asks for (`Desired`), what AWS reports (`Observed`) and what an update sends (`Changes`).
//! The AWS adapter and the planner both depend on these, and on nothing of each other.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::crd::{ContentHandlingStrategy, IntegrationResponseSpec};
use crate::roles::Identity;

/// The integration an object's response lives on, and the identity (account) it is reached with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub region: String,
    pub api_id: String,
    pub integration_id: String,
    pub identity: Identity,
}

/// The response as the spec wants it, normalised like [`Observed`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Desired {
    pub key: String,
    pub content_handling: Option<ContentHandlingStrategy>,
    pub template_selection_expression: Option<String>,
    pub response_templates: BTreeMap<String, String>,
    pub response_parameters: BTreeMap<String, String>,
}

impl Desired {
    pub fn from_spec(spec: &IntegrationResponseSpec) -> Self {
        Self {
            key: spec.integration_response_key.clone(),
            content_handling: spec.content_handling_strategy,
            template_selection_expression: spec.template_selection_expression.clone().filter(|s| !s.is_empty()),
            response_templates: spec.response_templates.clone().unwrap_or_default(),
            response_parameters: spec.response_parameters.clone().unwrap_or_default(),
        }
    }
}

/// Fields of an UpdateIntegrationResponse call; `None` leaves a field alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub key: Option<String>,
    pub content_handling: Option<ContentHandlingStrategy>,
    /// `Some("")` clears the expression.
    pub template_selection_expression: Option<String>,
    /// `Some(empty)` clears the map.
    pub response_templates: Option<BTreeMap<String, String>>,
    pub response_parameters: Option<BTreeMap<String, String>>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// Spec field names, for events and logs.
    pub fn fields(&self) -> Vec<&'static str> {
        let set = [
            ("integrationResponseKey", self.key.is_some()),
            ("contentHandlingStrategy", self.content_handling.is_some()),
            ("templateSelectionExpression", self.template_selection_expression.is_some()),
            ("responseTemplates", self.response_templates.is_some()),
            ("responseParameters", self.response_parameters.is_some()),
        ];
        set.into_iter().filter_map(|(name, changed)| changed.then_some(name)).collect()
    }
}

/// An integration response as AWS reports it: its id and the same fields a spec asks for,
/// normalised alike (absent maps are empty, absent strings are `None`), so the two compare.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub id: String,
    pub fields: Desired,
}

impl Desired {
    /// A hash of every managed field (not the id), the same for a spec and for what AWS reports.
    pub fn fingerprint(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        self.hash(&mut hasher);
        hasher.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_match_exactly_when_the_managed_fields_do() {
        let desired = Desired {
            key: "$default".into(),
            content_handling: Some(ContentHandlingStrategy::ConvertToText),
            template_selection_expression: Some("$x".into()),
            response_templates: BTreeMap::from([("a".into(), "b".into())]),
            response_parameters: BTreeMap::new(),
        };
        let observed = desired.clone();
        assert_eq!(desired.fingerprint(), observed.fingerprint());
        let mut drifted = observed.clone();
        drifted.response_templates.insert("a".into(), "c".into());
        assert_ne!(desired.fingerprint(), drifted.fingerprint());
        let mut moved = observed;
        moved.response_parameters.insert("a".into(), "b".into());
        moved.response_templates.clear();
        assert_ne!(desired.fingerprint(), moved.fingerprint(), "a value moving between maps is a change");
    }
}
