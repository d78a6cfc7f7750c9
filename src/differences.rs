//! How AWS differs from a spec, as shown in `status.differences` under managementPolicy Observe.
//!
//! Status is readable by everyone who may read the object, while a response template may hold
//! what only AWS principals should see: templates appear by size only, never as text (nor as
//! a hash, which could be reversed for a short secret). Other values are shortened so status stays small.

use std::collections::{BTreeMap, BTreeSet};

use crate::crd::Difference;
use crate::domain::Desired;

/// Differences listed in status at most; the message counts the rest.
pub const MAX_LISTED: usize = 16;
/// Characters of a value shown before it is cut.
const MAX_VALUE_CHARS: usize = 100;

/// Every field where `aws` differs from `spec`, in the order of the spec's fields, maps by key.
pub fn differences(spec: &Desired, aws: &Desired) -> Vec<Difference> {
    let mut found = Vec::new();
    let mut scalar = |field: &str, spec: Option<&str>, aws: Option<&str>| {
        if spec != aws {
            found.push(Difference { field: field.to_owned(), spec: spec.map(shorten), aws: aws.map(shorten) });
        }
    };
    scalar("integrationResponseKey", Some(&spec.key), Some(&aws.key));
    scalar(
        "contentHandlingStrategy",
        spec.content_handling.map(|c| c.as_str()),
        aws.content_handling.map(|c| c.as_str()),
    );
    scalar(
        "templateSelectionExpression",
        spec.template_selection_expression.as_deref(),
        aws.template_selection_expression.as_deref(),
    );
    map_differences(&mut found, "responseTemplates", &spec.response_templates, &aws.response_templates, |t| {
        template_summary(t)
    });
    map_differences(&mut found, "responseParameters", &spec.response_parameters, &aws.response_parameters, shorten);
    found
}

/// The spec's fields that differ, each named once, e.g. `responseTemplates, responseParameters`.
pub fn field_names(differences: &[Difference]) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for difference in differences {
        let name = difference.field.split('[').next().unwrap_or_default();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

fn map_differences(
    found: &mut Vec<Difference>,
    field: &str,
    spec: &BTreeMap<String, String>,
    aws: &BTreeMap<String, String>,
    show: impl Fn(&str) -> String,
) {
    let keys: BTreeSet<&String> = spec.keys().chain(aws.keys()).collect();
    for key in keys {
        let (want, have) = (spec.get(key), aws.get(key));
        if want != have {
            found.push(Difference {
                field: format!("{field}[{}]", shorten(key)),
                spec: want.map(|v| show(v)),
                aws: have.map(|v| show(v)),
            });
        }
    }
}

/// A template by its size only: a fingerprint of a short secret in a known template could be
/// reversed offline by anyone who may read status. The entry itself says the two differ.
fn template_summary(template: &str) -> String {
    format!("{} bytes (text not shown)", template.len())
}

fn shorten(value: &str) -> String {
    match value.char_indices().nth(MAX_VALUE_CHARS) {
        None => value.to_owned(),
        Some((cut, _)) => format!("{}… ({} bytes)", &value[..cut], value.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ContentHandlingStrategy;

    fn desired() -> Desired {
        Desired {
            key: "/4\\d\\d/".into(),
            content_handling: None,
            template_selection_expression: Some("$integration.response.statuscode".into()),
            response_templates: BTreeMap::from([("application/json".into(), "{\"secret\": \"s3cr3t\"}".into())]),
            response_parameters: BTreeMap::from([("method.response.header.X".into(), "'a'".into())]),
        }
    }

    #[test]
    fn identical_fields_have_no_differences() {
        assert!(differences(&desired(), &desired()).is_empty());
    }

    #[test]
    fn each_differing_field_is_listed_with_both_values() {
        let spec = desired();
        let mut aws = desired();
        aws.content_handling = Some(ContentHandlingStrategy::ConvertToText);
        aws.template_selection_expression = None;
        aws.response_parameters.insert("method.response.header.X".into(), "'b'".into());
        aws.response_parameters.insert("method.response.header.Y".into(), "'c'".into());
        let found = differences(&spec, &aws);
        let fields: Vec<&str> = found.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "contentHandlingStrategy",
                "templateSelectionExpression",
                "responseParameters[method.response.header.X]",
                "responseParameters[method.response.header.Y]"
            ]
        );
        assert_eq!(found[0].spec, None);
        assert_eq!(found[0].aws.as_deref(), Some("CONVERT_TO_TEXT"));
        assert_eq!(found[1].spec.as_deref(), Some("$integration.response.statuscode"));
        assert_eq!(found[1].aws, None);
        assert_eq!((found[2].spec.as_deref(), found[2].aws.as_deref()), (Some("'a'"), Some("'b'")));
        assert_eq!((found[3].spec.as_deref(), found[3].aws.as_deref()), (None, Some("'c'")));
        assert_eq!(
            field_names(&found),
            ["contentHandlingStrategy", "templateSelectionExpression", "responseParameters"]
        );
    }

    #[test]
    fn templates_are_shown_by_size_never_as_text_or_a_hash() {
        let spec = desired();
        let mut aws = desired();
        aws.response_templates.insert("application/json".into(), "{\"secret\": \"other\"}".into());
        let found = differences(&spec, &aws);
        assert_eq!(found.len(), 1);
        let (want, have) = (found[0].spec.as_deref().unwrap(), found[0].aws.as_deref().unwrap());
        assert_eq!(found[0].field, "responseTemplates[application/json]");
        assert_eq!(want, "20 bytes (text not shown)");
        assert_eq!(have, "19 bytes (text not shown)");
        for shown in [want, have] {
            assert!(!shown.contains("secret") && !shown.contains("s3cr3t"), "{shown}");
        }
    }

    #[test]
    fn long_values_are_cut_on_a_character_boundary() {
        let spec = desired();
        let mut aws = desired();
        let long = "é".repeat(300);
        aws.template_selection_expression = Some(long.clone());
        let found = differences(&spec, &aws);
        let shown = found[0].aws.as_deref().unwrap();
        assert!(shown.starts_with(&"é".repeat(100)), "{shown}");
        assert!(shown.ends_with("… (600 bytes)"), "{shown}");
    }
}
