//! `integration-response-operator export`: the integration responses that already exist in AWS,
//! as `IntegrationResponse` objects ready for `kubectl apply` or a Git repository.
//!
//! What it prints can never delete production by accident: every object carries the adopt
//! annotation (so the operator takes the response over instead of refusing it) and
//! `deletionPolicy: Retain` unless asked otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;
use std::sync::Arc;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use clap::ValueEnum;
use kube::api::ObjectMeta;

use crate::aws::{AwsClients, AwsError, ErrorKind, IntegrationResponses};
use crate::crd::{ADOPT_ANNOTATION, DeletionPolicy, IntegrationResponse, IntegrationResponseSpec, ManagementPolicy};
use crate::domain::{Observed, Target};
use crate::metrics::Metrics;
use crate::pacing::Pacer;

/// Flags of the `export` subcommand.
#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    /// The WebSocket API whose integration responses to export (all its integrations).
    #[arg(long)]
    pub api_id: String,

    /// Export only this integration's responses.
    #[arg(long)]
    pub integration_id: Option<String>,

    /// AWS region of the API; defaults to the AWS chain's (AWS_REGION, profile).
    #[arg(long)]
    pub region: Option<String>,

    /// Namespace written into every object; left out when not given (kubectl then uses the
    /// current context's namespace).
    #[arg(long)]
    pub namespace: Option<String>,

    /// Write `managementPolicy: Observe`, so the operator only reports differences until the
    /// objects are switched to Manage.
    #[arg(long)]
    pub observe: bool,

    /// deletionPolicy of the objects. Retain (the default) keeps the responses in AWS when the
    /// objects are deleted.
    #[arg(long, value_enum, ignore_case = true, default_value = "Retain")]
    pub deletion_policy: ExportDeletionPolicy,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportDeletionPolicy {
    #[value(name = "Retain")]
    Retain,
    #[value(name = "Delete")]
    Delete,
}

/// Why an export could not be made, in words that say what to do.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("no AWS region: pass --region or set AWS_REGION")]
    NoRegion,
    #[error("API {api_id} was not found in {region}: check --api-id and --region")]
    ApiNotFound { api_id: String, region: String },
    #[error("API {api_id} is an {protocol} API; integration responses exist only on WebSocket APIs")]
    NotWebSocket { api_id: String, protocol: String },
    #[error("integration {integration_id} was not found on API {api_id}: check --integration-id")]
    IntegrationNotFound { api_id: String, integration_id: String },
    #[error(
        "no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run where the \
         instance, IRSA or Pod Identity provides them ({0})"
    )]
    NoCredentials(String),
    #[error(
        "AWS denied {operation}: {message}. export needs apigateway:GET on \
         arn:aws:apigateway:{region}::/apis/{api_id} and everything under it"
    )]
    AccessDenied { operation: &'static str, message: String, region: String, api_id: String },
    #[error("{0}")]
    Aws(AwsError),
}

/// One integration response found in AWS.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    pub integration_id: String,
    pub response: Observed,
}

/// Reads the responses of `api_id` (of one integration when given), following every page.
/// `progress` hears one line per integration when there are several.
pub async fn collect(
    aws: &IntegrationResponses,
    region: &str,
    api_id: &str,
    integration_id: Option<&str>,
    mut progress: impl FnMut(String),
) -> Result<Vec<Found>, ExportError> {
    let failed = |err: AwsError| classify(err, region, api_id);
    let protocol = aws.api_protocol(api_id).await.map_err(|err| match err.kind {
        ErrorKind::NotFound => ExportError::ApiNotFound { api_id: api_id.into(), region: region.into() },
        _ => failed(err),
    })?;
    if !protocol.is_empty() && protocol != "WEBSOCKET" {
        return Err(ExportError::NotWebSocket { api_id: api_id.into(), protocol });
    }
    let integrations: Vec<String> = match integration_id {
        Some(id) => vec![id.to_owned()],
        None => aws.integrations(api_id).await.map_err(failed)?.into_iter().map(|(id, _)| id).collect(),
    };
    let mut found = Vec::new();
    let total = integrations.len();
    for (n, integration) in integrations.into_iter().enumerate() {
        let target = Target {
            region: region.into(),
            api_id: api_id.into(),
            integration_id: integration.clone(),
            identity: crate::roles::Identity::Own,
        };
        let responses = match aws.list(&target).await {
            Ok(responses) => responses,
            Err(err) if err.kind == ErrorKind::NotFound && integration_id.is_some() => {
                return Err(ExportError::IntegrationNotFound { api_id: api_id.into(), integration_id: integration });
            }
            Err(err) => return Err(failed(err)),
        };
        if total > 1 {
            progress(format!("integration {}/{total} {integration}: {} responses", n + 1, responses.len()));
        }
        found.extend(responses.into_iter().map(|response| Found { integration_id: integration.clone(), response }));
    }
    found.sort_by(|a, b| (&a.integration_id, &a.response.fields.key).cmp(&(&b.integration_id, &b.response.fields.key)));
    Ok(found)
}

fn classify(err: AwsError, region: &str, api_id: &str) -> ExportError {
    match err.kind {
        ErrorKind::AccessDenied => ExportError::AccessDenied {
            operation: err.operation,
            message: err.message,
            region: region.into(),
            api_id: api_id.into(),
        },
        // The SDK fails before sending when no credentials provider has any.
        ErrorKind::Network if err.message.to_lowercase().contains("credentials") => {
            ExportError::NoCredentials(err.message)
        }
        _ => ExportError::Aws(err),
    }
}

/// What to write into every object besides what AWS holds.
#[derive(Clone, Debug)]
pub struct Options {
    pub region: String,
    pub api_id: String,
    pub namespace: Option<String>,
    pub observe: bool,
    pub deletion_policy: DeletionPolicy,
}

/// The objects for `found`, named after integration and key: DNS-1123 names, unique in the export.
pub fn objects(found: &[Found], options: &Options) -> Vec<IntegrationResponse> {
    let mut taken = BTreeSet::new();
    found
        .iter()
        .map(|item| {
            let name = unique(name_for(&item.integration_id, &item.response.fields.key), &mut taken);
            let fields = &item.response.fields;
            let spec = IntegrationResponseSpec {
                region: Some(options.region.clone()),
                api_id: Some(options.api_id.clone()),
                integration_id: Some(item.integration_id.clone()),
                integration_ref: None,
                integration_response_key: fields.key.clone(),
                content_handling_strategy: fields.content_handling,
                template_selection_expression: fields.template_selection_expression.clone(),
                response_templates: non_empty(&fields.response_templates),
                response_parameters: non_empty(&fields.response_parameters),
                deletion_policy: Some(options.deletion_policy),
                management_policy: options.observe.then_some(ManagementPolicy::Observe),
            };
            let mut object = IntegrationResponse::new(&name, spec);
            object.metadata = ObjectMeta {
                name: Some(name),
                namespace: options.namespace.clone(),
                annotations: Some(BTreeMap::from([(ADOPT_ANNOTATION.to_owned(), "true".to_owned())])),
                ..ObjectMeta::default()
            };
            object
        })
        .collect()
}

fn non_empty(map: &BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!map.is_empty()).then(|| map.clone())
}

/// FNV-1a, 64 bits: stable across Rust versions and platforms (unlike `DefaultHasher`), so the
/// same template shows the same fingerprint everywhere.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

/// Longest name written: a DNS-1123 label, so the name also works as a label value.
const MAX_NAME: usize = 63;

/// `<integration>-<key>`: `$default` as `default`, any other key as its letters and digits plus
/// a hash of the whole key (regular expressions that differ only in punctuation stay apart,
/// and a name never changes when other keys come or go).
pub fn name_for(integration_id: &str, key: &str) -> String {
    let integration = slug(integration_id);
    if key == "$default" {
        return format!("{integration}-default");
    }
    let hash = format!("{:08x}", fnv1a(key.as_bytes()) as u32);
    let room = MAX_NAME.saturating_sub(integration.len() + hash.len() + 2);
    let mut words = slug(key);
    words.truncate(room);
    let words = words.trim_end_matches('-');
    if words.is_empty() { format!("{integration}-{hash}") } else { format!("{integration}-{words}-{hash}") }
}

/// Lowercase letters and digits; every other run of characters becomes one dash.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

/// `name`, or `name-2`, `name-3`… when already taken in this export.
fn unique(name: String, taken: &mut BTreeSet<String>) -> String {
    let mut candidate = name.clone();
    let mut n = 2;
    while taken.contains(&candidate) {
        let suffix = format!("-{n}");
        let mut base = name.clone();
        base.truncate(MAX_NAME - suffix.len());
        candidate = format!("{}{suffix}", base.trim_end_matches('-'));
        n += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

/// A YAML stream, one document per object, with a header saying where it came from.
pub fn render(objects: &[IntegrationResponse], options: &Options) -> String {
    let mut out = format!(
        "# {} integration responses of API {} in {}, exported by integration-response-operator.\n",
        objects.len(),
        options.api_id,
        options.region
    );
    for object in objects {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(object).expect("an IntegrationResponse serialises to YAML"));
    }
    out
}

/// Runs the subcommand: YAML on stdout, progress and errors on stderr.
pub async fn run(args: ExportArgs) -> ExitCode {
    match export(&args).await {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn export(args: &ExportArgs) -> Result<String, ExportError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        // One-shot reads: the SDK's own retries ride out throttling here.
        .retry_config(RetryConfig::standard().with_max_attempts(5));
    if let Some(region) = &args.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    let config = loader.load().await;
    // `AWS_REGION=` (set but empty) is no region either.
    let region =
        config.region().map(|r| r.as_ref().to_owned()).filter(|r| !r.is_empty()).ok_or(ExportError::NoRegion)?;
    let client = aws_sdk_apigatewayv2::Client::new(&config);
    // Paced like the operator's default, leaving the account's shared quota to others.
    let clients = AwsClients::fixed(client, Arc::new(Pacer::new(5.0, 5)), Arc::new(Metrics::default()));
    let aws = clients.for_region(&region);
    let found =
        collect(&aws, &region, &args.api_id, args.integration_id.as_deref(), |line| eprintln!("{line}")).await?;
    eprintln!("exported {} integration responses", found.len());
    let options = Options {
        region,
        api_id: args.api_id.clone(),
        namespace: args.namespace.clone(),
        observe: args.observe,
        deletion_policy: match args.deletion_policy {
            ExportDeletionPolicy::Retain => DeletionPolicy::Retain,
            ExportDeletionPolicy::Delete => DeletionPolicy::Delete,
        },
    };
    Ok(render(&objects(&found, &options), &options))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Desired;

    fn found(integration_id: &str, key: &str) -> Found {
        Found {
            integration_id: integration_id.into(),
            response: Observed {
                id: "ir1".into(),
                fields: Desired {
                    key: key.into(),
                    content_handling: None,
                    template_selection_expression: None,
                    response_templates: BTreeMap::new(),
                    response_parameters: BTreeMap::new(),
                },
            },
        }
    }

    fn is_dns1123_label(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 63
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-')
    }

    #[test]
    fn the_name_hash_is_stable_fnv1a() {
        // FNV-1a test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn names_are_dns_labels_derived_from_integration_and_key() {
        assert_eq!(name_for("Abc123", "$default"), "abc123-default");
        let regex = name_for("abc123", "/4\\d\\d/");
        assert!(regex.starts_with("abc123-4-d-d-"), "{regex}");
        for key in ["/4\\d\\d/", "/.*/", "/[^a-z]+$/", &format!("/{}/", "x".repeat(500)), "/é/"] {
            let name = name_for("abc123", key);
            assert!(is_dns1123_label(&name), "{key:?} → {name:?}");
        }
        assert_eq!(name_for("abc123", "/5\\d\\d/"), name_for("abc123", "/5\\d\\d/"), "stable");
    }

    #[test]
    fn keys_that_differ_only_in_punctuation_get_different_names() {
        let a = name_for("i1", "/5\\d\\d/");
        let b = name_for("i1", "/5.d.d/");
        let c = name_for("i1", "/5-d-d/");
        assert_ne!(a, b);
        assert_ne!(b, c);
        assert_ne!(name_for("i1", "/default/"), name_for("i1", "$default"));
    }

    #[test]
    fn a_name_taken_in_the_export_gets_a_suffix() {
        let mut taken = BTreeSet::new();
        assert_eq!(unique("a-b".into(), &mut taken), "a-b");
        assert_eq!(unique("a-b".into(), &mut taken), "a-b-2");
        assert_eq!(unique("a-b".into(), &mut taken), "a-b-3");
        let long = "x".repeat(63);
        assert_eq!(unique(long.clone(), &mut taken), long);
        let second = unique(long.clone(), &mut taken);
        assert!(second.len() <= 63 && second.ends_with("-2"), "{second}");
    }

    #[test]
    fn objects_carry_the_adopt_annotation_and_retain_unless_asked() {
        let options = Options {
            region: "eu-west-1".into(),
            api_id: "api1".into(),
            namespace: Some("team-a".into()),
            observe: false,
            deletion_policy: DeletionPolicy::Retain,
        };
        let made = objects(&[found("i1", "$default"), found("i2", "/4\\d\\d/")], &options);
        assert_eq!(made.len(), 2);
        let first = &made[0];
        assert_eq!(first.metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(first.metadata.annotations.as_ref().unwrap()[ADOPT_ANNOTATION], "true");
        assert_eq!(first.spec.deletion_policy, Some(DeletionPolicy::Retain));
        assert_eq!(first.spec.management_policy, None);
        assert_eq!(first.spec.region.as_deref(), Some("eu-west-1"));
        assert_eq!(made[1].spec.integration_id.as_deref(), Some("i2"));

        let observe = Options { observe: true, deletion_policy: DeletionPolicy::Delete, ..options };
        let made = objects(&[found("i1", "$default")], &observe);
        assert_eq!(made[0].spec.management_policy, Some(ManagementPolicy::Observe));
        assert_eq!(made[0].spec.deletion_policy, Some(DeletionPolicy::Delete));
    }

    #[test]
    fn yaml_round_trips_every_field_exactly() {
        let mut item = found("1234567", "/4\\d\\d/");
        item.response.fields.template_selection_expression = Some("$integration.response.statuscode".into());
        item.response.fields.response_templates = BTreeMap::from([
            ("application/json".into(), "{\"message\": \"it's \\\"quoted\\\"\"}\n  indented\n\ttab \n".into()),
            ("on".into(), "yes".into()),
            ("text/plain".into(), "---\n# not a comment\n...".into()),
        ]);
        item.response.fields.response_parameters =
            BTreeMap::from([("method.response.header.X-Id".into(), "'0x1F'".into())]);
        item.response.fields.content_handling = Some(crate::crd::ContentHandlingStrategy::ConvertToText);
        let options = Options {
            region: "us-east-1".into(),
            api_id: "0123".into(),
            namespace: None,
            observe: true,
            deletion_policy: DeletionPolicy::Retain,
        };
        let made = objects(&[item, found("1234567", "$default")], &options);
        let yaml = render(&made, &options);
        assert!(yaml.starts_with("# 2 integration responses of API 0123 in us-east-1"), "{yaml}");
        assert!(!yaml.contains("\nstatus:"), "no status in what users apply: {yaml}");
        let parsed: Vec<IntegrationResponse> = serde_saphyr::from_multiple(&yaml).expect("valid YAML stream");
        assert_eq!(parsed.len(), 2);
        for (read, written) in parsed.iter().zip(&made) {
            assert_eq!(read.spec, written.spec);
            assert_eq!(read.metadata.name, written.metadata.name);
            assert_eq!(read.metadata.annotations, written.metadata.annotations);
        }
    }
}
